// The bytes of a session's `query` events: written into the audit batch (the parts each statement
// keeps, the values copied from the message) as JSON.stringify writes the same events as objects.
import { describe, expect, it } from 'vitest';
import type { AgentRuntime } from '../../../src/agent/engine.js';
import { QueryAuditor } from '../../../src/engines/postgres/audit.js';
import { SessionAudit } from '../../../src/engines/postgres/session-audit.js';
import { fe } from './factory.js';

/** A session's auditor wired as PostgresSession wires it, its events as the audit log's JSON lines. */
function session(withBytes: boolean) {
  const lines: string[] = [];
  const database = { metadata: { name: 'db' }, spec: { audit: { maxValueLength: 256 } } };
  const audit = {
    emit: (event: object) => lines.push(JSON.stringify(event)),
    // The sink's own part (the time) left out: the event's fields follow its `{"time":…`.
    emitWith: withBytes
      ? (maxBytes: number, writer: { writeAuditEvent(buf: Buffer, at: number): number }) => {
          const buf = Buffer.alloc(maxBytes + 1);
          lines.push(`{${buf.toString('utf8', 1, writer.writeAuditEvent(buf, 0))}`);
        }
      : undefined,
  };
  const agent = { audit, state: { database } } as unknown as AgentRuntime;
  const events = new SessionAudit(agent, 's1', 'alice', 'app', 'appdb');
  const auditor = new QueryAuditor(
    (fields) => events.query(fields),
    () => database.spec.audit.maxValueLength,
    (info, statement, parameters) => events.bind(info, statement, parameters),
    (query) => events.text(query),
    (body, length) => events.plain(body, length),
    (info, statement, values) => events.bindPlain(info, statement, values),
  );
  const send = (m: Buffer) => auditor.onMessage(m[0]!, m.subarray(5), m.length - 5);
  return { lines, database, auditor, send };
}

describe('SessionAudit', () => {
  it('writes the Binds of statements in turn as JSON.stringify writes their events', () => {
    const sides = [session(true), session(false)];
    for (const s of sides) {
      // Six statements in turn, again, then ten (more than a session keeps), then six with the
      // Database renamed (every statement's kept part is written again).
      for (const count of [6, 6, 10, 6, 6]) {
        if (count === 6 && s.lines.length === 28) s.database.metadata.name = 'db2';
        for (let i = 0; i < count; i++) {
          const name = i % 3 ? '' : `s${i}`;
          const value = Buffer.from(i % 4 ? `v${i}` : `a"b\t${i}é`);
          s.send(fe.parse(name, `select $1 from "t${i}" where x = 'é${i}'`));
          s.send(fe.bind('', name, [], [value, null]));
          s.send(fe.sync());
          for (const code of '12Z') s.auditor.onServerMessage(code.charCodeAt(0));
        }
      }
    }
    const [bytes, objects] = sides.map((s) => s.lines);
    expect(bytes).toHaveLength(34);
    expect(bytes).toEqual(objects);
    expect(JSON.parse(bytes![33]!)).toMatchObject({
      database: 'db2',
      query: `select $1 from "t5" where x = 'é5'`,
    });
  });

  it('escapes what a log viewer would hide or act on, in statements and parameters', () => {
    const s = session(true);
    // Reads as `… where owner = 'alice'` in a viewer that applies the override.
    const text = "select * from t where owner = 'ecila\u202e' --\u200b\u0085\u007f\u2028";
    s.send(fe.query(text));
    s.send(fe.parse('', `${text} and $1`));
    s.send(fe.bind('', '', [], [Buffer.from('x\u2066y\u007f')]));
    s.send(fe.sync());
    for (const line of s.lines) expect(line).not.toMatch(/[\u007f-\u009f\u2028\u200b\u202e\u2066]/);
    expect(s.lines.map((l) => JSON.parse(l) as { query: string; parameters?: string[] })).toMatchObject([
      { query: text },
      { query: `${text} and $1`, parameters: ['x\u2066y\u007f'] },
    ]);
  });
});
