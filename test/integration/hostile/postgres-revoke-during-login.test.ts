// Hostile: a revocation that lands while a PostgreSQL session's backend login is under way. The agent
// decides access before it logs in to the database (TLS, SCRAM: round trips) and tracks the session
// after; a policy change re-checks the sessions tracked, so one logging in at that moment was never
// re-checked and lived on, revoked, until its role's TTL. A person who expects to lose access keeps
// connecting, so that one login is always in flight when the change lands. Played against the real
// agent and PostgreSQL 15, the backend held behind a proxy that stops forwarding while the policy changes.
import { type Server, type Socket, createServer, connect as tcpConnect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestAgent, startTestAgent } from '../../support/agent.js';
import { type Fixture, baseDocs, startFixture } from '../postgres/fixture.js';
import { type RawSession, rawSession } from '../postgres/raw-client.js';
import { decodeErrorFields } from '../../../src/engines/postgres/decoders.js';
import { fe } from '../../unit/postgres/factory.js';
import { until } from './audit-support.js';

/** A TCP proxy to `port` that holds what clients send while paused. */
class HoldingProxy {
  readonly server: Server;
  private paused = false;
  private held: (() => void)[] = [];
  private readonly sockets = new Set<Socket>();

  constructor(port: number) {
    this.server = createServer((client) => {
      const up = tcpConnect({ host: '127.0.0.1', port });
      for (const s of [client, up]) {
        this.sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => (s === client ? up : client).destroy());
      }
      client.on('data', (d: Buffer) => (this.paused ? this.held.push(() => up.write(d)) : up.write(d)));
      up.on('data', (d: Buffer) => client.write(d));
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as { port: number }).port;
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.held.splice(0).forEach((send) => send());
  }

  close(): void {
    this.sockets.forEach((s) => s.destroy());
    this.server.close();
  }
}

/** The message of the next ErrorResponse, or `ReadyForQuery` (the statement ran), or `closed`. */
async function firstAnswer(s: RawSession): Promise<string> {
  for (let m = await s.next(); m; m = await s.next()) {
    if (m.code === 0x45) return decodeErrorFields(m.body).message ?? '';
    if (m.code === 0x5a) return 'ReadyForQuery';
  }
  return 'closed';
}

let f: Fixture;
let proxy: HoldingProxy;
let agent: TestAgent;
let docs: (revoked: boolean) => object[];

beforeAll(async () => {
  f = await startFixture();
  proxy = new HoldingProxy(f.pg.port);
  const port = await proxy.listen();
  docs = (revoked) =>
    baseDocs(port, f.pg.ca.certPem).filter(
      (d) => !revoked || (d as { metadata: { name: string } }).metadata.name !== 'alice',
    );
  agent = await startTestAgent({ database: 'orders-pg', docs: docs(false), tls: f.agentTls });
}, 60_000);

afterAll(async () => {
  proxy?.close();
  await agent?.stop();
  await f?.stop();
});

describe('a revocation while the backend logs in', () => {
  it('the session is refused once its login completes; nothing it sends reaches the database', async () => {
    await f.pg.admin('DROP TABLE IF EXISTS revoked_t', 'orders');
    const through = { ...f, agent };
    proxy.pause();
    let resumed = false;
    try {
      const login = rawSession(through, f.people.alice, 'alice', 'orders');
      login.catch(() => undefined); // awaited below
      await agent.writeDocs(docs(true));
      // A person the agent refuses is refused before any backend work: the change has landed. Until
      // then a probe waits behind the proxy like the login (and is refused, or ends, after it).
      await until('the agent applied the change', () => {
        const probe = rawSession(through, f.people.alice, 'alice', 'orders').then(
          (s) => (s.tls.destroy(), false),
          (err: Error) => /startup failed: .*denied/.test(err.message),
        );
        return Promise.race([probe, sleep(300).then(() => false)]);
      });
      expect(await Promise.race([login.then(() => 'logged in'), Promise.resolve('still logging in')])).toBe(
        'still logging in',
      );
      proxy.resume();
      resumed = true;
      const s = await login;
      // The agent already passed on the server's ReadyForQuery; what comes next is its FATAL.
      s.tls.write(fe.query('CREATE TABLE revoked_t ()'));
      expect(await firstAnswer(s)).toMatch(/^access revoked: .*"alice"/);
      // Audited as a denial (so are probes that were waiting behind the proxy with the login).
      const revokedEvents = async () =>
        (await agent.auditEvents()).filter(
          (e) => e.type === 'session.denied' && /^access revoked: /.test(String(e.reason)),
        );
      await until('session.denied', async () => (await revokedEvents()).length > 0);
      expect((await revokedEvents())[0]).toMatchObject({ user: 'alice', dbUser: 'alice', dbName: 'orders' });
      expect((await agent.auditEvents()).filter((e) => e.type === 'query')).toEqual([]);
      expect((await f.pg.admin("SELECT to_regclass('revoked_t') IS NULL", 'orders')).trim()).toBe('t');
    } finally {
      if (!resumed) proxy.resume();
      await agent.writeDocs(docs(false));
    }
  });
});
