// Cross-slot splitting, fan-out merging, SCAN cursors and redirect parsing: pure helpers, table-driven.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { splitScanReply } from '../../../src/engines/redis/cluster/fan-out.js';
import { concatArrays, mergeReplies } from '../../../src/engines/redis/cluster/merge.js';
import { keySlot } from '../../../src/engines/redis/cluster/key-slot.js';
import { mergeSplit, splitBySlot } from '../../../src/engines/redis/cluster/multi-key.js';
import {
  decodeScanCursor,
  encodeScanCursor,
  nextScanCursor,
} from '../../../src/engines/redis/cluster/scan-cursor.js';
import { parseRedirect } from '../../../src/engines/redis/cluster/redirect.js';
import { redirectKind } from '../../../src/engines/redis/cluster/sender.js';
import { CROSS_SLOT, KEYLESS, slotAt } from '../../../src/engines/redis/cluster/slots.js';
import { agentCommand } from '../../../src/engines/redis/parser.js';
import type { RedisReplyError } from '../../../src/engines/redis/router.js';

const b = (s: string) => Buffer.from(s);
const args = (line: string) => line.split(' ').map(b);
const text = (r: Buffer | RedisReplyError) =>
  Buffer.isBuffer(r) ? r.toString('latin1') : `${r.prefix} ${r.message}`;

describe('slotAt', () => {
  it.each([
    ['GET foo', [1], 12182],
    ['MGET {a}1 {a}2', [1, 2], keySlot(b('a'))],
    ['MGET a b', [1, 2], CROSS_SLOT],
    ['PING', [], KEYLESS],
  ])('%s', (line, positions, want) => expect(slotAt(agentCommand(args(line)), positions)).toBe(want));
});

describe('splitBySlot / mergeSplit', () => {
  it('MGET splits per slot and merges in key order', () => {
    const cmd = args('MGET a b {a}x c');
    const groups = splitBySlot(cmd, [1, 2, 3, 4], 1);
    expect(groups.map((g) => g.args.map(String).join(' '))).toEqual(
      expect.arrayContaining(['MGET a {a}x', 'MGET b', 'MGET c']),
    );
    const replies = groups.map((g) =>
      Buffer.concat([
        b(`*${g.units.length}\r\n`),
        ...g.units.map((u) => b(u === 2 ? '$-1\r\n' : `$2\r\nv${u}\r\n`)),
      ]),
    );
    expect(text(mergeSplit(undefined, groups, replies, 4))).toBe(
      '*4\r\n$2\r\nv0\r\n$2\r\nv1\r\n$-1\r\n$2\r\nv3\r\n',
    );
  });

  it('MSET keeps each value with its key', () => {
    const groups = splitBySlot(args('MSET a 1 b 2 {a}c 3'), [1, 3, 5], 2);
    const a = groups.find((g) => g.slot === keySlot(b('a')))!;
    expect(a.args.map(String)).toEqual(['MSET', 'a', '1', '{a}c', '3']);
    expect(a.units).toEqual([0, 2]);
  });

  it.each([
    ['agg_sum', [':1\r\n', ':2\r\n'], ':3\r\n'],
    ['all_succeeded', ['+OK\r\n', '+OK\r\n'], '+OK\r\n'],
    ['all_succeeded', ['+OK\r\n', '-ERR boom\r\n'], '-ERR boom\r\n'],
  ] as const)('%s %j → %j', (policy, parts, want) => {
    expect(text(mergeSplit(policy, [], parts.map(b), 0))).toBe(want);
  });
});

describe('mergeReplies', () => {
  it.each([
    ['DBSIZE agg_sum', 'agg_sum', [':3\r\n', ':4\r\n', ':0\r\n'], ':7\r\n'],
    ['WAIT agg_min', 'agg_min', [':1\r\n', ':0\r\n'], ':0\r\n'],
    [
      'SCRIPT EXISTS and',
      'agg_logical_and',
      ['*2\r\n:1\r\n:1\r\n', '*2\r\n:1\r\n:0\r\n'],
      '*2\r\n:1\r\n:0\r\n',
    ],
    [
      'KEYS concat',
      undefined,
      ['*1\r\n$1\r\na\r\n', '*0\r\n', '*2\r\n$1\r\nb\r\n$1\r\nc\r\n'],
      '*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n',
    ],
    ['RANDOMKEY first non-null', undefined, ['$-1\r\n', '$1\r\nk\r\n'], '$1\r\nk\r\n'],
    ['PING all_succeeded', 'all_succeeded', ['+PONG\r\n', '+PONG\r\n'], '+PONG\r\n'],
    ['SCRIPT KILL one_succeeded', 'one_succeeded', ['-NOTBUSY x\r\n', '+OK\r\n'], '+OK\r\n'],
    ['error wins', 'agg_sum', [':1\r\n', '-NOPERM no\r\n'], '-NOPERM no\r\n'],
  ] as const)('%s', (_name, policy, parts, want) => {
    expect(text(mergeReplies(policy, parts.map(b), ['n1', 'n2', 'n3']))).toBe(want);
  });

  it('labels INFO-like text per node', () => {
    const out = text(
      mergeReplies('special', [b('$5\r\na:1\r\n\r\n'), b('$5\r\na:2\r\n\r\n')], ['h:1', 'h:2']),
    );
    expect(out).toContain('# Node h:1\r\na:1');
    expect(out).toContain('# Node h:2\r\na:2');
  });

  it('concatArrays keeps a null array null', () => {
    expect(concatArrays([b('*-1\r\n'), b('*-1\r\n')]).toString()).toBe('*-1\r\n');
  });
});

describe('SCAN cursors', () => {
  it.each([
    [0, '0', 3, encodeScanCursor({ node: 1, cursor: '0' })],
    [0, '17', 3, encodeScanCursor({ node: 0, cursor: '17' })],
    [2, '0', 3, '0'],
    [1, '0', 2, '0'],
  ])('after node %i answers %s of %i masters', (node, cursor, n, want) => {
    expect(nextScanCursor(node, cursor, n)).toBe(want);
  });

  it('round-trips any node cursor below 2^54 for any of 1024 nodes', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1023 }),
        fc.bigInt({ min: 0n, max: (1n << 54n) - 1n }),
        (node, c) => {
          const text = encodeScanCursor({ node, cursor: c.toString() });
          expect(BigInt(text) < 1n << 64n).toBe(true);
          expect(decodeScanCursor(text, 1024)).toEqual({ node, cursor: c.toString() });
        },
      ),
    );
  });

  it.each(['-1', 'abc', '18446744073709551616', '1'.repeat(21), String(5)])(
    'rejects %s with 3 masters',
    (c) => {
      expect(decodeScanCursor(c, 3)).toBeUndefined();
    },
  );

  it('starts at master 0', () => expect(decodeScanCursor('0', 3)).toEqual({ node: 0, cursor: '0' }));

  it('splits a SCAN reply without decoding the keys', () => {
    const r = splitScanReply(b('*2\r\n$2\r\n48\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n'));
    expect(r?.cursor).toBe('48');
    expect(r?.keys.toString()).toBe('*2\r\n$1\r\na\r\n$1\r\nb\r\n');
  });
});

describe('redirects', () => {
  it.each([
    ['-MOVED 3999 127.0.0.1:6381\r\n', 'moved'],
    ['-ASK 3999 127.0.0.1:6381\r\n', 'ask'],
    ['-TRYAGAIN Multiple keys request during rehashing of slot\r\n', 'retry'],
    ['-CLUSTERDOWN The cluster is down\r\n', 'retry'],
    ['-LOADING Redis is loading the dataset in memory\r\n', 'retry'],
    ['-ERR MOVED\r\n', undefined],
    ['+MOVED\r\n', undefined],
  ])('%j', (frame, kind) => expect(redirectKind(b(frame))).toBe(kind));

  it('parses the target', () => {
    expect(parseRedirect(b('-ASK 12 10.1.2.3:7000\r\n'))).toEqual({
      kind: 'ask',
      slot: 12,
      address: { host: '10.1.2.3', port: 7000 },
    });
  });
});
