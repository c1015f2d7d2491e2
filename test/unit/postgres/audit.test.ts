// Query audit events from the messages the relay hands over.
import { describe, expect, it } from 'vitest';
import { QueryAuditor, formatParam } from '../../../src/engines/postgres/audit.js';
import { fe } from './factory.js';

function audit(messages: Buffer[], cut?: number) {
  const events: Record<string, unknown>[] = [];
  const auditor = new QueryAuditor((e) => events.push(e));
  for (const m of messages) {
    const body = m.subarray(5);
    auditor.onMessage(m[0]!, cut === undefined ? body : body.subarray(0, cut), body.length);
  }
  return events;
}

describe('QueryAuditor', () => {
  it('audits a simple Query by its text', () => {
    expect(audit([fe.query('select 1')])).toEqual([{ query: 'select 1' }]);
  });

  it('audits each Bind with the statement text Parse remembered and its parameters', () => {
    const events = audit([
      fe.parse('', 'select $1::int'),
      fe.bind('', '', [], [Buffer.from('7')]),
      fe.parse('named', 'select $1::bytea, $2'),
      fe.bind('', 'named', [1, 0], [Buffer.from([0xde, 0xad]), null]),
      fe.bind('', 'named', [1, 0], [Buffer.from([0xbe]), Buffer.from('x')]),
    ]);
    expect(events).toEqual([
      { query: 'select $1::int', parameters: ['7'] },
      { query: 'select $1::bytea, $2', statement: 'named', parameters: ['\\xdead', null] },
      { query: 'select $1::bytea, $2', statement: 'named', parameters: ['\\xbe', 'x'] },
    ]);
  });

  it('forgets statements on Close, and audits unknown ones by name', () => {
    const events = audit([fe.parse('s', 'select 1'), fe.close('S', 's'), fe.bind('', 's', [], [])]);
    expect(events).toEqual([{ query: null, statement: 's', parameters: [] }]);
  });

  it('marks statements longer than the capture as truncated, with their full size', () => {
    const long = 'select ' + 'x'.repeat(500);
    expect(audit([fe.query(long)], 100)).toEqual([
      { query: long.slice(0, 100), truncated: true, messageBytes: long.length + 1 },
    ]);
    const events = audit([fe.parse('big', long), fe.bind('', 'big', [], [Buffer.from('v')])], 100);
    expect(events[0]).toMatchObject({ statement: 'big', parameters: ['v'] });
    expect(String(events[0]!.query)).toMatch(/^select x+…\[truncated\]$/);
    const bind = fe.bind('', 's', [], [Buffer.alloc(500)]);
    expect(audit([fe.parse('s', 'select $1'), bind], 50)[0]).toEqual({
      query: 'select $1',
      statement: 's',
      parameters: null,
      truncated: true,
      messageBytes: bind.length - 5,
    });
  });

  it('cuts long values the way the audit log does everywhere', () => {
    expect(formatParam(Buffer.from('a'.repeat(300)), false)).toMatch(
      /^a{256}…\[300 bytes sha256:[0-9a-f]{16}\]$/,
    );
    expect(formatParam(Buffer.alloc(200, 0xab), true)).toBe('\\x' + 'ab'.repeat(128) + '…[200 bytes]');
  });
});
