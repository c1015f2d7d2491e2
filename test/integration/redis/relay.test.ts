// The data path through the agent with real clients and real Redis 7: transactions, pub/sub, blocking
// commands, 64 MB values, script replies nested as deep as Redis allows, 10,000-command pipelines,
// redis-benchmark, and malformed input that must end one session only.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCommand } from '../../../src/engines/redis/serializer.js';
import { exec } from '../../support/redis.js';
import { type RedisFixture, redisDocs, role, startRedisFixture } from './fixture.js';

let f: RedisFixture;

beforeAll(async () => {
  f = await startRedisFixture();
});

afterAll(async () => {
  await f?.stop();
});

describe('redis relay through the agent', () => {
  it('MULTI/EXEC and WATCH behave as in Redis; a denied command inside MULTI aborts EXEC', async () => {
    const a = f.ioredis('alice');
    expect(await a.multi().set('tx', '1').incr('tx').get('tx').exec()).toEqual([
      [null, 'OK'],
      [null, 2],
      [null, '2'],
    ]);
    // WATCH: a change from another session makes EXEC return null.
    const b = f.ioredis('alice');
    await a.watch('tx');
    await b.set('tx', 'changed');
    expect(await a.multi().set('tx', 'mine').exec()).toBeNull();
    expect(await a.get('tx')).toBe('changed');
    const out = await f.cli('alice', [], 'MULTI\nSET tx aborted\nFLUSHALL\nEXEC\nGET tx\n');
    expect(out.split('\n').filter(Boolean)).toEqual([
      'OK',
      'QUEUED',
      expect.stringMatching(/^NOPERM/),
      expect.stringMatching(/^EXECABORT/),
      'changed',
    ]);
  });

  it("SELECT goes only to the Database's own DB (0 here); other DBs are refused", async () => {
    const out = await f.cli('alice', [], 'SELECT 0\nSET only0 yes\nSELECT 3\nGET only0\n');
    expect(out.split('\n').filter(Boolean)).toEqual([
      'OK',
      'OK',
      expect.stringMatching(/^NOPERM drawbridge: the DB number is this Database's boundary \(DB 0/),
      'yes',
    ]);
  });

  it('SUBSCRIBE and PSUBSCRIBE get their replies and messages; PING works while subscribed', async () => {
    const sub = f.ioredis('alice');
    const pub = f.ioredis('alice');
    const got: string[] = [];
    sub.on('message', (ch: string, msg: string) => got.push(`${ch}:${msg}`));
    sub.on('pmessage', (p: string, ch: string, msg: string) => got.push(`${p}|${ch}:${msg}`));
    expect(await sub.subscribe('news', 'sport')).toBe(2);
    expect(await sub.psubscribe('w*')).toBe(3);
    expect(await sub.ping()).toBe('PONG'); // ioredis speaks RESP3: an ordinary command while subscribed
    expect(await pub.publish('news', 'one')).toBe(1);
    expect(await pub.publish('weather', 'rain')).toBe(1);
    await sub.unsubscribe('news', 'sport'); // ioredis 6 hangs on an argument-less UNSUBSCRIBE, even direct
    await pub.publish('news', 'unheard');
    await sleep(100);
    expect(got).toEqual(['news:one', 'w*|weather:rain']);
    await sub.punsubscribe('w*');
    expect(await sub.get('tx')).toBeDefined(); // back in normal mode
  });

  it('argument-less UNSUBSCRIBE/PUNSUBSCRIBE get one reply per subscription, then normal replies resume', async () => {
    const raw = await f.raw('alice');
    let text = '';
    raw.on('data', (d: Buffer) => (text += d.toString()));
    raw.write(
      'SUBSCRIBE a b\r\nPSUBSCRIBE w*\r\nUNSUBSCRIBE\r\nPUNSUBSCRIBE\r\nPUNSUBSCRIBE\r\nGET nothing\r\n',
    );
    for (let i = 0; i < 50 && !text.endsWith('$-1\r\n'); i++) await sleep(20);
    expect(text.match(/\*3\r\n\$\d+\r\n(\w+)/g)!.map((m) => m.split('\n')[2])).toEqual([
      'subscribe',
      'subscribe',
      'psubscribe',
      'unsubscribe',
      'unsubscribe',
      'punsubscribe',
      'punsubscribe', // none left: Redis still answers once, with a nil channel
    ]);
    expect(text.endsWith('$-1\r\n')).toBe(true);
    raw.destroy();
  });

  it('BLPOP waits on the backend until another session pushes', async () => {
    const waiter = f.ioredis('alice');
    const pushed = f.ioredis('alice');
    await waiter.del('queue');
    const popped = waiter.blpop('queue', 5);
    await sleep(200);
    await pushed.rpush('queue', 'job-1');
    expect(await popped).toEqual(['queue', 'job-1']);
  });

  it('64 MB values go through both ways intact', async () => {
    const a = f.ioredis('alice');
    const value = Buffer.alloc(64 * 1024 * 1024);
    for (let i = 0; i < value.length; i += 4096) value.writeUInt32LE(i, i);
    await a.set('big', value);
    const back = await a.getBuffer('big');
    expect(back?.length).toBe(value.length);
    expect(back?.equals(value)).toBe(true);
    await a.del('big');
  });

  it('a pipeline of 10,000 commands gets 10,000 replies in order', async () => {
    const a = f.ioredis('alice');
    const p = a.pipeline();
    for (let i = 0; i < 5000; i++) p.set(`p:${i}`, String(i));
    for (let i = 0; i < 5000; i++) p.get(`p:${i}`);
    const results = await p.exec();
    expect(results).toHaveLength(10_000);
    expect(results!.slice(0, 5000).every(([err, r]) => err === null && r === 'OK')).toBe(true);
    expect(results!.slice(5000).map(([, r]) => r)).toEqual(Array.from({ length: 5000 }, (_, i) => String(i)));
  });

  it('redis-benchmark (pipelined, 20 clients) completes with no errors', async () => {
    const out = await exec('redis-benchmark', [
      ...f.tlsArgs('alice'),
      '-h',
      '127.0.0.1',
      '-p',
      String(f.agent.port),
      '-t',
      'set,get,lpush,lpop',
      '-n',
      '20000',
      '-c',
      '20',
      '-P',
      '16',
      '-q',
    ]);
    expect(out).toMatch(/SET: [\d.]+ requests per second/);
    expect(out).toMatch(/LPOP: [\d.]+ requests per second/);
    expect(out).not.toMatch(/error/i);
  });

  it("a script's reply nested as deep as Redis allows (7,994 levels) is relayed intact", async () => {
    const depth = 7994;
    const want = Buffer.from(`${'*1\r\n'.repeat(depth)}:1\r\n`);
    // ops may run anything; scripts also need a role with allow.redisScripting.
    const agent = await f.startAgent([
      ...redisDocs(f.redis),
      role('scripts', { databaseLabels: { env: '*' }, databaseUsers: ['*'], redisScripting: true }),
      {
        apiVersion: 'drawbridge.dev/v1alpha1',
        kind: 'DatabaseUser',
        metadata: { name: 'ops-scripts' },
        spec: { subjects: [{ kind: 'User', name: 'ops' }], roles: ['scripts'] },
      },
    ]);
    const raw = await f.rawAt(agent.port, 'ops');
    const received: Buffer[] = [];
    let length = 0;
    const done = new Promise<void>((resolve) =>
      raw.on('data', (d: Buffer) => {
        received.push(d);
        if ((length += d.length) >= want.length) resolve();
      }),
    );
    raw.write(encodeCommand(['EVAL', `local t = 1 for i = 1, ${depth} do t = {t} end return t`, '0']));
    await Promise.race([done, sleep(10_000)]);
    expect(Buffer.concat(received).subarray(0, 100).toString()).toBe(want.subarray(0, 100).toString());
    expect(Buffer.concat(received).equals(want)).toBe(true);
    raw.destroy();
  });

  it('malformed input gets -ERR Protocol error and ends that session only', async () => {
    const healthy = f.ioredis('alice');
    await healthy.set('survivor', 'yes');
    const raw = await f.raw('alice');
    const received: Buffer[] = [];
    raw.on('data', (d: Buffer) => received.push(d));
    const closed = new Promise<void>((resolve) => raw.once('close', () => resolve()));
    raw.write('*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$x\r\n');
    await closed;
    expect(Buffer.concat(received).toString()).toMatch(/^\+PONG\r\n-ERR Protocol error: invalid bulk length/);
    expect(await healthy.get('survivor')).toBe('yes');
    expect(await f.cli('alice', ['GET', 'survivor'])).toBe('yes\n');
  });
});
