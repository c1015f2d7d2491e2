// Pure parts of the Redis engine: command names, the catalog from COMMAND, reply ordering and write
// batching (audit arguments: audit.test.ts).
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { CommandPolicy } from '../../../src/authz/commands.js';
import { bindRoles } from '../../../src/authz/engine.js';
import { catalogFromCommandReply, helloFields } from '../../../src/engines/redis/command-catalog.js';
import { commandName, lowerAscii } from '../../../src/engines/redis/command-name.js';
import { decodeReply } from '../../../src/engines/redis/reply-parser.js';
import { ReplyQueue } from '../../../src/engines/redis/reply-queue.js';
import { encodeValue } from '../../../src/engines/redis/serializer.js';
import { WriteBatcher } from '../../../src/engines/redis/write-batcher.js';
import { db, person, role, user } from '../authz/fixtures.js';

const b = (s: string) => Buffer.from(s);

class Recorder extends Writable {
  writes: string[] = [];
  override _writev(chunks: { chunk: Buffer }[], cb: () => void): void {
    this.writes.push(chunks.map((c) => c.chunk.toString()).join('|'));
    cb();
  }
  override _write(chunk: Buffer, _e: string, cb: () => void): void {
    this.writes.push(chunk.toString());
    cb();
  }
}
const tick = () => new Promise((r) => setImmediate(r));

describe('command names', () => {
  it.each([
    [['GET', 'k'], 'get'],
    [['Config', 'GET', 'x'], 'config|get'],
    [['client', 'KILL'], 'client|kill'],
    [['CONFIG'], 'config'],
    [['get', 'CONFIG'], 'get'],
    [['\u00c9CHO'], '\u00c9cho'], // only ASCII letters fold, like Redis's strcasecmp
  ])('%j → %s', (args, name) => {
    expect(commandName(args.map((a) => Buffer.from(a, 'latin1')))).toBe(name);
  });

  it('interns names: the same string object comes back, and colliding names stay correct', () => {
    expect(lowerAscii(b('SET'))).toBe(lowerAscii(b('set')));
    const names = Array.from({ length: 5000 }, (_, i) => `cmd${i}`);
    for (const n of names) expect(lowerAscii(b(n.toUpperCase()))).toBe(n);
  });
});

describe('command catalog', () => {
  const reply = decodeReply(
    encodeValue([
      [b('get'), 2, ['readonly', 'fast'], 1, 1, 1, ['@read', '@string', '@fast'], [], [], []],
      [
        b('config'),
        -2,
        [],
        0,
        0,
        0,
        ['@slow'],
        [],
        [],
        [
          [b('config|get'), -3, [], 0, 0, 0, ['@admin', '@slow', '@dangerous'], [], [], []],
          [b('config|set'), -4, [], 0, 0, 0, ['@admin', '@slow', '@dangerous'], [], [], []],
        ],
      ],
    ]),
  );

  it('learns categories for commands and subcommands, and which commands are containers', () => {
    const { commands, containers } = catalogFromCommandReply(reply);
    expect(commands.get('get')).toEqual({ name: 'get', categories: ['read', 'string', 'fast'] });
    expect(commands.get('config|get')?.categories).toContain('dangerous');
    expect([...containers]).toEqual(['config']);
  });

  it("decides a module's container (not split by the parser) as every one of its subcommands", () => {
    // Redis 8's FT.CONFIG: the parser names `FT.CONFIG SET ...` ft.config, as it names no module's
    // containers apart; its categories alone say nothing of SET's @dangerous.
    const module = decodeReply(
      encodeValue([
        [
          b('ft.config'),
          -2,
          [],
          0,
          0,
          0,
          ['@slow'],
          [],
          [],
          [
            [b('ft.config|get'), 3, [], 0, 0, 0, ['@slow'], [], [], []],
            [b('ft.config|set'), 4, [], 0, 0, 0, ['@admin', '@slow', '@dangerous'], [], [], []],
          ],
        ],
      ]),
    );
    const { commands } = catalogFromCommandReply(module);
    expect(commandName([b('FT.CONFIG'), b('SET'), b('x'), b('1')])).toBe('ft.config');
    const policy = (deny: string[]) => {
      const r = role('dev', { databaseLabels: { env: '*' } }, { redisCommands: deny });
      const bound = bindRoles(person('u'), {
        roles: [r],
        users: [user('u', [{ kind: 'User', name: 'u' }], ['dev'])],
      });
      return new CommandPolicy(bound, bound, db('cache', {}, 'redis'));
    };
    for (const deny of [['@dangerous'], ['ft.config|set']]) {
      expect(policy(deny).check(commands.get('ft.config')!)).toMatchObject({
        allowed: false,
        rule: 'deny_rule',
        reason: `role "dev" denies "${deny[0]}"; "ft.config" counts as each of its subcommands, which the agent does not tell apart`,
      });
    }
    expect(policy(['flushall']).check(commands.get('ft.config')!).allowed).toBe(true);
    // Redis's own containers are split by the parser and keep their own entries.
    expect(catalogFromCommandReply(reply).commands.get('config')).toEqual({
      name: 'config',
      categories: ['slow'],
    });
  });

  it('reads version and cluster mode from HELLO', () => {
    const hello = (mode: string) =>
      decodeReply(
        encodeValue([b('server'), b('redis'), b('version'), b('7.0.15'), b('proto'), 2, b('mode'), b(mode)]),
      );
    expect(helloFields(hello('cluster'))).toEqual({ version: '7.0.15', clusterEnabled: true });
    expect(helloFields(hello('standalone')).clusterEnabled).toBe(false);
  });
});

describe('ReplyQueue', () => {
  it('writes replies in reservation order whatever order they are filled in', async () => {
    const out = new Recorder();
    const q = new ReplyQueue(out);
    const [a, bb, c] = [q.reserve(), q.reserve(), q.reserve()];
    q.fill(c, b('C'));
    q.fill(bb, b('B'));
    q.push(b('D')); // local reply: after the three reserved ones
    expect(q.pending).toBe(4);
    q.fill(a, b('A'));
    await tick();
    expect(out.writes).toEqual(['ABCD']); // in order, in one write
    expect(q.pending).toBe(0);
  });

  it('holds a partial batch one turn for the rest, then writes what it has', async () => {
    const out = new Recorder();
    const q = new ReplyQueue(out);
    const [a, bb, c] = [q.reserve(), q.reserve(), q.reserve()];
    q.fill(a, b('A'));
    await tick();
    expect(out.writes).toEqual([]); // B and C are due: A waits one turn for them
    q.fill(bb, b('B'));
    await tick();
    expect(out.writes).toEqual(['AB']); // not longer: C is still out
    q.fill(c, b('C'));
    await tick(); // nothing more is due: no wait
    expect(out.writes).toEqual(['AB', 'C']);
  });

  it('held replies leave together at the release, unless more are due: then at the end of the turn', async () => {
    const out = new Recorder();
    const q = new ReplyQueue(out);
    const [a, bb, c] = [q.reserve(), q.reserve(), q.reserve()];
    q.hold();
    q.fill(a, b('A'));
    q.fill(bb, b('B'));
    expect(out.writes).toEqual([]);
    q.release();
    expect(out.writes).toEqual([]); // C is due
    await tick();
    await tick();
    expect(out.writes).toEqual(['AB']);
    q.hold();
    q.fill(c, b('C'));
    q.release();
    expect(out.writes).toEqual(['AB', 'C']); // at the release, in the reader's own callback
  });

  it('writes at once when nothing is left pending, and batches while replies are still due', async () => {
    const out = new Recorder();
    const q = new ReplyQueue(out);
    q.fill(q.reserve(), b('A')); // a pipeline of one: out in the filler's own callback
    expect(out.writes).toEqual(['A']);
    const [bb, c, d] = [q.reserve(), q.reserve(), q.reserve()];
    q.fill(d, b('D'));
    q.fill(bb, b('B'));
    expect(out.writes).toEqual(['A']); // C is due: B waits for it
    q.fill(c, b('C')); // the last one due: B, C and D leave together, now
    expect(out.writes).toEqual(['A', 'BCD']);
    await tick();
    await tick();
    expect(out.writes).toEqual(['A', 'BCD']); // the turn's end finds nothing left to write
  });

  it('keeps many replies filled in place out of order as their ranges, across refills', async () => {
    const out = new Recorder();
    const q = new ReplyQueue(out);
    // Three "nodes" answering a pipeline of 9 out of order, each reply a range inside its node's chunk.
    const nodes = [b('xx+0\r\n+3\r\n+6\r\n'), b('+1\r\n+4\r\n+7\r\nyy'), b('z+2\r\n+5\r\n+8\r\n')];
    const starts = [2, 0, 1];
    for (let round = 0; round < 2; round++) {
      const seqs = Array.from({ length: 9 }, () => q.reserve());
      for (const node of [2, 1, 0]) {
        for (let k = 0; k < 3; k++) {
          const at = starts[node]! + 4 * k;
          q.fill(seqs[3 * k + node]!, nodes[node]!, at, at + 4);
        }
      }
      expect(q.pending).toBe(0);
      await tick();
    }
    const one = Array.from({ length: 9 }, (_, i) => `+${i}\r\n`).join('');
    expect(out.writes).toEqual([one, one]);
  });

  it('keeps a reply filled in place out of order as its own bytes', async () => {
    const out = new Recorder();
    const q = new ReplyQueue(out);
    const [a, bb] = [q.reserve(), q.reserve()];
    const chunk = b('+A\r\n+B\r\n');
    q.fill(bb, chunk, 4, 8); // waits for A: kept as its range of the chunk
    q.fill(a, b('+a\r\n'));
    await tick();
    expect(out.writes).toEqual(['+a\r\n+B\r\n']);
  });

  it('keeps the order across long pipelines, refills and out-of-order replies', async () => {
    const out = new Recorder();
    const q = new ReplyQueue(out);
    let expected = '';
    for (const n of [3, 10_000, 5]) {
      const seqs = Array.from({ length: n }, () => q.reserve());
      // Filled in pairs, the second of each first: every other reply waits for the one before it.
      for (let i = 0; i < n; i += 2) {
        if (i + 1 < n) q.fill(seqs[i + 1]!, b(`${i + 1},`));
        q.fill(seqs[i]!, b(`${i},`));
        expected += i + 1 < n ? `${i},${i + 1},` : `${i},`;
      }
      expect(q.pending).toBe(0);
    }
    await tick();
    expect(out.writes.join('')).toBe(expected);
  });

  it('afterAll runs once the last waiting reply is written', () => {
    const q = new ReplyQueue(new Recorder());
    const seq = q.reserve();
    let done = false;
    q.afterAll(() => (done = true));
    expect(done).toBe(false);
    q.fill(seq, b('+OK\r\n'));
    expect(done).toBe(true);
  });
});

describe('WriteBatcher', () => {
  it('merges adjacent slices of one chunk, and copies the runs of a turn into one write', async () => {
    const out = new Recorder();
    const w = new WriteBatcher(out);
    const chunk = b('+A\r\n+B\r\n+C\r\n');
    w.write(chunk.subarray(0, 4));
    w.write(chunk.subarray(4, 8));
    w.write(b('-LOCAL\r\n'));
    w.write(chunk.subarray(8));
    expect(out.writes).toEqual([]); // nothing leaves before the end of the turn
    await tick();
    expect(out.writes).toEqual(['+A\r\n+B\r\n-LOCAL\r\n+C\r\n']);
    expect(w.bytes).toBe(20);
  });

  it('writes what was written while held at the release, and nothing at the end of the turn', async () => {
    const out = new Recorder();
    const w = new WriteBatcher(out);
    const chunk = b('*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n');
    w.hold();
    w.write(chunk.subarray(0, 14));
    w.hold(); // nested: the outer release sends
    w.write(chunk.subarray(14));
    w.release();
    expect(out.writes).toEqual([]);
    w.release();
    expect(out.writes).toEqual([chunk.toString()]);
    await tick();
    expect(out.writes).toHaveLength(1);
  });

  it('writes ranges of a chunk in place: a run from inside a chunk is its own bytes, not the whole chunk', async () => {
    const out = new Recorder();
    const w = new WriteBatcher(out);
    const chunk = b('+A\r\n+B\r\n+C\r\n');
    const other = b('xx+D\r\n+E\r\n');
    w.write(chunk, 4, 8);
    w.write(chunk, 8, 12); // continues the run
    w.write(other, 2, 6); // as long as `chunk`, from offset 2 of another buffer
    w.write(other.subarray(6)); // a slice continuing that run
    w.write(chunk, 0, 4); // back to the first chunk, not where its run ended
    await tick();
    expect(out.writes).toEqual(['+B\r\n+C\r\n+D\r\n+E\r\n+A\r\n']);
    expect(w.bytes).toBe(20);
    // A run as long as the buffer it started in, but from inside it: only the run's bytes leave.
    const backing = b('xx+D\r\n+E\r\n+F');
    w.write(backing.subarray(0, 10), 2, 10);
    w.write(backing, 10, 12);
    await tick();
    expect(out.writes[1]).toBe('+D\r\n+E\r\n+F');
  });

  it('copies interleaved runs of several chunks into one write: short, long, and past the Buffer a run started in', async () => {
    const out = new Recorder();
    const w = new WriteBatcher(out);
    const long = `$100\r\n${'v'.repeat(100)}\r\n`;
    const a = b(`+A1\r\n${long}+A2\r\n`);
    const c = b('+C1\r\n+C2\r\n');
    const backing = b('xx+D1\r\n+D2\r\n');
    w.write(a, 0, 5);
    w.write(c, 0, 5);
    w.write(a, 5, 5 + long.length); // over the short-copy length
    w.write(backing.subarray(0, 7), 2, 7);
    w.write(backing, 7, 12); // continues the run past the Buffer it started in
    w.write(c, 5, 10);
    w.write(a, 5 + long.length);
    await tick();
    expect(out.writes).toEqual([`+A1\r\n+C1\r\n${long}+D1\r\n+D2\r\n+C2\r\n+A2\r\n`]);
    expect(w.bytes).toBe(30 + long.length);
    // The next turn's runs start afresh.
    w.write(c, 5, 10);
    w.write(a, 0, 5);
    await tick();
    expect(out.writes[1]).toBe('+C2\r\n+A1\r\n');
  });

  it('writes runs over 64 KB as they are, in one writev', async () => {
    const out = new Recorder();
    const w = new WriteBatcher(out);
    const big = Buffer.alloc(70 * 1024, 'x');
    w.write(b('+A\r\n'));
    w.write(big);
    w.write(b('+B\r\n'));
    await tick();
    expect(out.writes).toEqual([`+A\r\n|${big.toString()}|+B\r\n`]);
  });
});
