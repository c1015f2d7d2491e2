// How the agent logs in to Redis, per spec.auth.type, against real Redis 7: mtls (a client certificate
// from the server's CA, the server requiring one), and passthrough (the client's own AUTH password).
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueCertificate } from '../../../src/pki/ca.js';
import type { TestAgent } from '../../support/agent.js';
import { REDIS_USERS, exec } from '../../support/redis.js';
import { exchange, pipeline, untilClosed } from '../hostile/resp.js';
import { type RedisFixture, redisDocs, startRedisFixture } from './fixture.js';

let f: RedisFixture;

/** Sends `bytes` on a fresh TLS connection as alice and resolves to the first reply line. */
function firstReply(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const { certPem, keyPem } = f.people.alice;
    const s = tlsConnect({ host: '127.0.0.1', port, ca: f.ca.certPem, cert: certPem, key: keyPem }, () =>
      s.write(bytes),
    );
    s.on('data', (d: Buffer) => {
      s.destroy();
      resolve(d.toString().split('\r\n')[0]!);
    });
    s.on('error', reject);
  });
}

const lines = (out: string) => out.split('\n').filter(Boolean);

beforeAll(async () => {
  f = await startRedisFixture();
});

afterAll(async () => {
  await f?.stop();
});

describe('mtls backend auth', () => {
  let mtls: TestAgent;
  const plainCli = (...args: string[]) =>
    exec('redis-cli', [
      '-p',
      String(f.redis.plainPort),
      '--user',
      'admin',
      '--pass',
      REDIS_USERS.admin.password,
      '--no-auth-warning',
      ...args,
    ]);

  beforeAll(async () => {
    // The classic Redis mTLS set-up: TLS clients need a certificate from the server's CA, and that
    // certificate is the authentication (the default user needs no password).
    await plainCli('CONFIG', 'SET', 'tls-auth-clients', 'yes');
    await plainCli('ACL', 'SETUSER', 'default', 'resetpass', 'nopass');
    const cert = await issueCertificate(f.redis.ca, { commonName: 'default', usage: 'client' });
    mtls = await f.startAgent(
      redisDocs(f.redis, { auth: 'mtls', login: { 'tls.crt': cert.certPem, 'tls.key': cert.keyPem } }),
    );
  });

  afterAll(async () => {
    await plainCli('CONFIG', 'SET', 'tls-auth-clients', 'optional');
    await plainCli('ACL', 'SETUSER', 'default', 'resetpass', `>${REDIS_USERS.default.password}`);
  });

  it('connects with the certificate; the backend user is the one the server maps it to', async () => {
    const out = await f.cliAt(mtls.port, 'alice', [], 'ACL WHOAMI\nSET via mtls\nGET via\n');
    expect(lines(out)).toEqual(['default', 'OK', 'mtls']);
  });

  it('cannot become another database user (no password to AUTH with), and says why', async () => {
    const out = await f.cliAt(mtls.port, 'alice', [], 'ACL WHOAMI\nAUTH app x\nACL WHOAMI\n');
    const [who, auth, still] = lines(out);
    expect(who).toBe('default');
    expect(auth).toMatch(
      /^WRONGPASS mtls backend auth cannot switch an open connection from "default" to "app"/,
    );
    expect(still).toBe('default');
    // AUTH as the first command: the backend connection is made for "app" and checked with ACL WHOAMI.
    const fresh = await firstReply(mtls.port, 'AUTH app x\r\n');
    expect(fresh).toMatch(
      /^-WRONGPASS the backend maps the agent's client certificate to user "default", not "app"/,
    );
  });

  it('an agent without a client certificate is told the server refused its TLS session, and how to fix it', async () => {
    // TLS 1.3: the agent's handshake completes before Redis checks for its certificate, so the alert
    // arrives while it logs in. It read as "the backend closed the connection … check the backend logs".
    const password = await f.startAgent(redisDocs(f.redis));
    const reply = await firstReply(password.port, 'PING\r\n');
    expect(reply).toMatch(/^-ERR TLS to the backend failed during login: .*alert/);
    expect(reply).toMatch(/the server refused the TLS session.*client certificate \(spec\.auth\.type mtls\)/);
  });

  it("after RESET the connection must still be the certificate's user, else the session ends", async () => {
    const s = await f.rawAt(mtls.port, 'alice');
    expect(await exchange(s, pipeline([['ACL', 'WHOAMI'], ['RESET'], ['ACL', 'WHOAMI']]), 3)).toEqual([
      'default',
      'RESET',
      'default',
    ]);
    // Once `default` needs a password, RESET leaves the connection logged in as nobody: no going on.
    await plainCli('ACL', 'SETUSER', 'default', 'resetpass', '>now-needs-one');
    try {
      const ended = untilClosed(s);
      s.write(pipeline([['RESET'], ['SET', 'after-reset', 'x']]));
      const { replies, closed } = await ended;
      expect(closed).toBe(true);
      expect(replies).toEqual([
        'RESET',
        expect.stringMatching(
          /^-WRONGPASS cannot check which user the backend maps the agent's certificate to: NOAUTH/,
        ),
      ]);
    } finally {
      await plainCli('ACL', 'SETUSER', 'default', 'resetpass', 'nopass');
    }
  });
});

describe('passthrough backend auth', () => {
  let pass: TestAgent;

  beforeAll(async () => {
    pass = await f.startAgent(redisDocs(f.redis, { auth: 'passthrough' }));
  });

  it("forwards the client's own AUTH password; a wrong one is refused by Redis and changes nothing", async () => {
    const out = await f.cliAt(
      pass.port,
      'alice',
      [],
      `AUTH app ${REDIS_USERS.app.password}\nACL WHOAMI\nAUTH default wrong\nACL WHOAMI\n`,
    );
    const [ok, who, wrong, still] = lines(out);
    expect([ok, who]).toEqual(['OK', 'app']);
    expect(wrong).toMatch(/^WRONGPASS the backend refused the agent's login as "default": WRONGPASS/);
    expect(still).toBe('app');
  });

  it('still checks the AccessRoles first: rita may not be app whatever password she knows', async () => {
    const out = await f.cliAt(pass.port, 'rita', [], `AUTH app ${REDIS_USERS.app.password}\nPING\n`);
    const [auth, ping] = lines(out);
    expect(auth).toMatch(/^NOPERM access to cache as database user "app" denied/);
    expect(ping).toMatch(/^NOPERM access to cache as database user "default" denied/);
  });
});
