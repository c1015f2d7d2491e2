// Key positions and fan-out tips learned from a real Redis 7.0 `COMMAND INFO` reply (captured into
// cluster-command-info.resp), table-driven: the agent must hash exactly the arguments Redis will.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  type CommandRules,
  keyPositions,
  parseCommandReply,
} from '../../../src/engines/redis/cluster/command-rules.js';
import { decodeReply } from '../../../src/engines/redis/reply-parser.js';

const table = parseCommandReply(
  decodeReply(readFileSync(new URL('./cluster-command-info.resp', import.meta.url))),
);

function rules(name: string): CommandRules {
  const r = table.get(name);
  if (!r) throw new Error(`fixture has no ${name}`);
  return r;
}

function keysOf(line: string): string[] {
  const args = line.split(' ').map((a) => Buffer.from(a));
  const name = args[0]!.toString().toLowerCase();
  const sub = args[1]?.toString().toLowerCase();
  const r = table.get(`${name}|${sub}`) ?? rules(name);
  return keyPositions(r, args).map((i) => args[i]!.toString());
}

describe('keyPositions from key specs', () => {
  const cases: [string, string[]][] = [
    ['GET k', ['k']],
    ['SET k v EX 10', ['k']],
    ['MGET a b c', ['a', 'b', 'c']],
    ['MSET a 1 b 2', ['a', 'b']],
    ['DEL a b', ['a', 'b']],
    ['BLPOP a b 0', ['a', 'b']],
    ['BLMOVE src dst LEFT RIGHT 0', ['src', 'dst']],
    ['XREAD COUNT 2 STREAMS s1 s2 0 0', ['s1', 's2']],
    ['XREAD BLOCK 0 STREAMS s 0', ['s']],
    ['XREADGROUP GROUP g c STREAMS s1 s2 > >', ['s1', 's2']],
    ['EVAL return 2 k1 k2 a1', ['k1', 'k2']],
    ['EVAL return 0 a1', []],
    ['FCALL f 1 k a', ['k']],
    ['ZUNIONSTORE dst 2 a b WEIGHTS 1 2', ['dst', 'a', 'b']],
    ['LMPOP 2 l1 l2 LEFT', ['l1', 'l2']],
    ['GEORADIUS g 0 0 1 km STORE dst', ['g', 'dst']],
    ['GEORADIUS g 0 0 1 km', ['g']],
    ['OBJECT ENCODING k', ['k']],
    ['MEMORY USAGE k', ['k']],
    ['SPUBLISH ch msg', ['ch']],
    ['SSUBSCRIBE a b', ['a', 'b']],
    ['PUBLISH ch msg', []],
    ['DBSIZE', []],
    ['WATCH a b', ['a', 'b']],
    ['EVAL return 5 k', ['k']], // malformed: numkeys past the end yields what exists
  ];
  it.each(cases)('%s → %j', (line, keys) => {
    expect(keysOf(line)).toEqual(keys);
  });
});

describe('routing facts', () => {
  it('reads fan-out tips', () => {
    expect(rules('dbsize')).toMatchObject({ requestPolicy: 'all_shards', responsePolicy: 'agg_sum' });
    expect(rules('keys').requestPolicy).toBe('all_shards');
    expect(rules('keys').responsePolicy).toBeUndefined();
    expect(rules('script|load')).toMatchObject({
      requestPolicy: 'all_nodes',
      responsePolicy: 'all_succeeded',
    });
    expect(rules('script|exists').responsePolicy).toBe('agg_logical_and');
    expect(rules('info').responsePolicy).toBe('special');
    expect(rules('scan').requestPolicy).toBe('special');
    expect(rules('mget').requestPolicy).toBe('multi_shard');
    expect(rules('get').requestPolicy).toBeUndefined();
  });

  it('marks commands whose keys only the backend can find', () => {
    expect(rules('sort').needsGetKeys).toBe(true);
    expect(rules('migrate').needsGetKeys).toBe(true);
    expect(rules('georadius').needsGetKeys).toBe(false);
    expect(rules('get').needsGetKeys).toBe(false);
  });

  it('keeps flags that decide lanes and retries', () => {
    expect(rules('blpop').flags.has('blocking')).toBe(true);
    expect(rules('xread').flags.has('blocking')).toBe(true);
    expect(rules('get').flags.has('readonly')).toBe(true);
    expect(rules('set').flags.has('readonly')).toBe(false);
  });

  it('falls back to first/last/step without key specs (Redis 6)', () => {
    const legacy: CommandRules = { ...rules('mset'), specs: [] };
    const args = ['MSET', 'a', '1', 'b', '2'].map((a) => Buffer.from(a));
    expect(keyPositions(legacy, args)).toEqual([1, 3]);
  });
});

describe('runsCode', () => {
  it.each([
    ['eval', true],
    ['fcall', true],
    ['get', false],
    ['script', false],
    ['script|load', false],
  ])('%s: %s', (name, want) => expect(rules(name).runsCode).toBe(want));

  it("a module command the server lists in @scripting (Redis Stack's TFCALL)", () => {
    const entry = ['tfcall', -3, ['noscript'], 0, 0, 0, ['@slow', '@scripting'], [], []];
    expect(parseCommandReply([entry]).get('tfcall')?.runsCode).toBe(true);
  });
});
