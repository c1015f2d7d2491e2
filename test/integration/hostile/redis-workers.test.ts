// The client whose worker process dies under it (SIGKILL, as any crash): nothing it ran before is lost
// from the audit log. It pipelines thousands of writes; once its worker has written them (the audit
// backlog of /metrics is empty), the worker is killed. Every write is in the log, whole and in order,
// and the primary's session.end naming the crash comes after the last of them. Real Redis, the CLI;
// the log a regular file (each worker appends to it) and a FIFO (the primary relays the workers' lines).
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metricValue } from '../../support/agent-workers.js';
import { ioredisAt } from '../../support/redis.js';
import { type RedisWorkersFixture, startRedisWorkers } from '../redis/fixture.js';

const WRITES = 20_000;
describe.each([
  ['a file', false],
  ['a FIFO', true],
])('audit log to %s', (_, auditFifo) => {
  let f: RedisWorkersFixture;
  const clients = new Set<Redis>();

  beforeAll(async () => {
    f = await startRedisWorkers('drawbridge-hostile-workers-', { auditFifo });
  }, 60_000);
  afterAll(async () => {
    clients.forEach((c) => c.disconnect());
    await f?.stop();
  });

  it("keeps every command a session ran before its worker crashed, then the crash's session.end", async () => {
    const c = ioredisAt(f.agent.port, f.pki.tls('alice'), clients, { username: 'app', password: 'x' });
    const pipeline = c.pipeline();
    for (let i = 0; i < WRITES; i++) pipeline.set(`hostile:${i}`, 'x'.repeat(200));
    const replies = await pipeline.exec();
    expect(replies?.filter(([err, r]) => !err && r === 'OK')).toHaveLength(WRITES);
    const localPort = (c as unknown as { stream: { localPort: number } }).stream.localPort;
    const victim = (await f.agent.ownerOf(localPort))!;
    for (let i = 0; i < 100; i++) {
      const pending = metricValue(await f.agent.metricsText(), 'drawbridge_audit_pending_bytes');
      if (pending === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await f.agent.killWorker(victim);

    const text = await f.agent.auditText();
    expect(text.endsWith('\n')).toBe(true);
    const events = await f.agent.auditEvents();
    const sets = events.filter((e) => e.type === 'command' && JSON.stringify(e.args).includes('hostile:'));
    expect(sets).toHaveLength(WRITES);
    expect(sets.map((e) => (e.args as string[])[0])).toEqual(
      Array.from({ length: WRITES }, (_, i) => `hostile:${i}`),
    );
    const own = events.filter((e) => e.sessionId === sets[0]!.sessionId);
    expect(own.at(-1)).toMatchObject({ type: 'session.end', reason: 'agent worker exited (signal SIGKILL)' });
    expect(own.filter((e) => e.type === 'session.end')).toHaveLength(1);
  }, 60_000);
});
