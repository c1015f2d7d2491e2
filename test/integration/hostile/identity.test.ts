/**
 * Who a person or workload is, played by an attacker against a real API server, controller and agent:
 * names and groups full of DN syntax must be signed and read back exactly (no escaping to get wrong),
 * and strangers sending made-up tokens must not turn each login into a TokenReview (counted in the
 * API server's own audit log).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { type Socket, connect as tcpConnect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { workloadAudience } from '../../../src/api/runtime.js';
import { SSL_REQUEST, passwordMessage, startupMessage } from '../../../src/engines/postgres/serializer.js';
import { agentName } from '../../../src/operator/names.js';
import { certificateDer } from '../../../src/pki/ca.js';
import { certificateSubject } from '../../../src/pki/subject.js';
import { type PostgresServer, startPostgres } from '../../support/postgres.js';
import { NS, PASSWORDS, accessDocs, database, secret } from '../operator/docs.js';
import { CONTROLLER_NS, type OperatorEnv, eventually, startOperatorEnv } from '../operator/fixture.js';
import { agentHost, people } from '../operator/people.js';
import { pgAnswer } from './pg-answer.js';

let env: OperatorEnv;
let postgres: PostgresServer;
let dir: string;
let endpoint: string;
let who: ReturnType<typeof people>;
let caPem: string;
const auditLog = () => path.join(dir, 'apiserver-audit.jsonl');

/** TokenReviews the agent of `orders` has made so far, from the API server's audit log. */
async function tokenReviews(): Promise<number> {
  const agent = `system:serviceaccount:${NS}:${agentName('orders')}`;
  const text = await readFile(auditLog(), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { objectRef?: { resource?: string }; user?: { username?: string } })
    .filter((e) => e.objectRef?.resource === 'tokenreviews' && e.user?.username === agent).length;
}

/**
 * A JWT with the claims of a token for `app` and the audience of `orders`, and a signature nobody made;
 * `jti` varies it.
 */
function forgedToken(jti = 0): string {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const claims = {
    jti: String(jti),
    aud: [workloadAudience(NS, 'orders')],
    exp: Math.floor(Date.now() / 1000) + 3600,
    iss: 'https://kubernetes.default.svc',
    sub: `system:serviceaccount:${NS}:app`,
  };
  return `${b64({ alg: 'RS256', kid: 'x' })}.${b64(claims)}.${Buffer.alloc(256, 7).toString('base64url')}`;
}

/** A workload's connection, without a certificate, that the agent has asked for its password (the token). */
/** `event` on `s`; a close or error first fails the step, naming it (events.once would wait forever on a close). */
function step(s: Socket, event: string, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    s.once(event, () => resolve());
    s.once('close', () => reject(new Error(`${what}: the agent closed the connection first`)));
    s.once('error', (err) => reject(new Error(`${what}: ${err.message}`)));
  });
}

async function askedForPassword(): Promise<TLSSocket> {
  const [host, port] = endpoint.split(':');
  const raw = tcpConnect({ host, port: Number(port) });
  await step(raw, 'connect', 'connect');
  raw.write(SSL_REQUEST);
  await step(raw, 'data', 'SSLRequest answer');
  const tls = tlsConnect({ socket: raw, ca: caPem, servername: agentHost('orders') });
  await step(tls, 'secureConnect', 'TLS handshake');
  tls.write(
    startupMessage([
      ['user', 'carol'],
      ['database', 'orders'],
    ]),
  );
  await step(tls, 'data', 'password request'); // AuthenticationCleartextPassword
  return tls;
}

/** Sends `token` as the password: the agent's error message, 'ok', or 'closed'. */
async function answer(tls: TLSSocket, token: string): Promise<string> {
  tls.write(passwordMessage(token));
  return pgAnswer(tls, 0x52, 'ok');
}

/** `n` logins with `password`, at most 10 at a time; resolves to each one's error message (or 'ok'). */
async function logins(n: number, password: string): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i += 10) {
    const batch = Array.from({ length: Math.min(10, n - i) }, async () => {
      const c = who.client(endpoint, 'carol', {}, password);
      try {
        await c.connect();
        await c.end();
        return 'ok';
      } catch (err) {
        return (err as Error).message;
      }
    });
    out.push(...(await Promise.all(batch)));
  }
  return out;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-identity-'));
  const policy = path.join(dir, 'audit-policy.yaml');
  await writeFile(
    policy,
    [
      'apiVersion: audit.k8s.io/v1',
      'kind: Policy',
      'omitStages: [RequestReceived]',
      'rules:',
      '  - level: Metadata',
      '    resources: [{ group: authentication.k8s.io, resources: [tokenreviews] }]',
      '  - level: None',
    ].join('\n'),
  );
  postgres = await startPostgres({
    roles: Object.entries(PASSWORDS).map(([name, password]) => ({ name, password })),
    databases: ['orders'],
  });
  env = await startOperatorEnv({
    controllers: 1,
    namespaces: [NS],
    apiServerArgs: [`--audit-policy-file=${policy}`, `--audit-log-path=${auditLog()}`],
  });
  await env.apply([
    secret('pg-ca', { 'ca.crt': postgres.ca.certPem }),
    secret('pg-passwords', PASSWORDS),
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'app', namespace: NS } },
    ...accessDocs(),
    // The bounded-rate test holds 500 strangers at the password prompt until all are there: their TLS
    // handshakes take over 10 s on a loaded machine, and the default authTimeout (10 s) would rightly
    // close the first ones (a FATAL, a reset, or a close mid-handshake) before the tokens are sent.
    database(postgres, 'orders', { agent: { limits: { authTimeout: '3m' } } }),
  ]);
  const cm = await eventually('CA ConfigMap', () =>
    env.get<{ data: Record<string, string> }>('configmap', 'drawbridge-ca', CONTROLLER_NS),
  );
  caPem = cm.data['ca.crt']!;
  who = people(env, caPem);
  endpoint = await env.nodeAgent.waitForEndpoint(NS, agentName('orders'), 90_000);
});

afterAll(async () => {
  await env?.stop();
  await postgres?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('certificate subjects', () => {
  it('signs a name and group full of DN syntax exactly, and the agent reads the same person back', async () => {
    const user = ' alice, O=system:masters+CN=root\\"#ö';
    const group = '#0c05, O=ops=\\';
    await env.apply([
      {
        apiVersion: 'drawbridge.dev/v1alpha1',
        kind: 'DatabaseUser',
        metadata: { name: 'dn-syntax', namespace: NS },
        spec: { subjects: [{ kind: 'Group', name: group }], roles: ['dev'], traits: { dbUsers: ['alice'] } },
      },
    ]);
    const kubeconfig = await env.plane.makeUserKubeconfig(user, [group]);
    const { certificate, keyPem, conditions } = await who.login(
      kubeconfig,
      'dn-syntax-1',
      { cn: user, orgs: [group] },
      { dbUser: 'alice' },
    );
    expect(conditions.find((x) => x.type === 'Approved')?.reason).toBe('AccessAllowed');
    expect(certificateSubject(certificateDer(certificate!))).toEqual({
      commonName: user,
      organizations: [group],
    });
    // The agent allows the session only if it reads the exact group, and audits the exact user.
    const c = who.client(endpoint, 'alice', { cert: certificate, key: keyPem });
    await c.connect();
    expect((await c.query('select current_user as u')).rows[0].u).toBe('alice');
    await c.end();
    const users = await eventually('the session.start audit event', async () => {
      const files = env.nodeAgent.logs(NS, agentName('orders'));
      const lines = (await Promise.all(files.map((f) => readFile(f, 'utf8')))).join('').split('\n');
      const starts = lines
        .filter((l) => l.includes('"session.start"'))
        .map((l) => (JSON.parse(l) as { user?: string }).user);
      return starts.includes(user) ? starts : undefined;
    });
    expect(users).toContain(user);
  });
});

describe('TokenReview', () => {
  it('asks the API server once for a flood of logins with one made-up token', async () => {
    const before = await tokenReviews();
    const results = await logins(40, forgedToken());
    expect(new Set(results)).toEqual(new Set([expect.stringMatching(/token was refused/)]));
    await new Promise((r) => setTimeout(r, 1000)); // the audit log is written as requests complete
    expect((await tokenReviews()) - before).toBeLessThanOrEqual(2);
  });

  it('asks the API server at a bounded rate however many distinct made-up tokens strangers send', async () => {
    // Each token is new, so neither the cache nor a shared review helps: without a bound, every login
    // was a TokenReview. 500 connections asked for their password, then 500 tokens at once: 100 are
    // asked, 200 wait their turn at 50/s, the rest are refused.
    const before = await tokenReviews();
    const n = 500;
    const waiting = await Promise.all(Array.from({ length: n }, askedForPassword));
    const results = await Promise.all(waiting.map((tls, i) => answer(tls, forgedToken(i + 1))));
    const refused = results.filter((r) => /checks at most 50 ServiceAccount tokens a second/.test(r));
    expect(refused.length).toBeGreaterThan(0);
    // The waiting ones are asked within 4 s: the audit log has them all after that.
    await new Promise((r) => setTimeout(r, 6000));
    expect((await tokenReviews()) - before).toBeLessThanOrEqual(n - refused.length);
    const files = env.nodeAgent.logs(NS, agentName('orders'));
    const logs = (await Promise.all(files.map((f) => readFile(f, 'utf8')))).join('');
    expect(logs).toContain('drawbridge_token_reviews_refused_total');
  });

  it('refuses a token for another audience from its claims, without asking', async () => {
    const before = await tokenReviews();
    const results = await logins(20, await who.token());
    expect(new Set(results)).toEqual(
      new Set([
        expect.stringContaining(
          `not a ServiceAccount token for audience "${workloadAudience(NS, 'orders')}"`,
        ),
      ]),
    );
    await new Promise((r) => setTimeout(r, 1000));
    expect(await tokenReviews()).toBe(before);
  });

  it("refuses tokens for the shared audience and for another Database's from their claims, without asking", async () => {
    const before = await tokenReviews();
    const shared = await logins(10, await who.token('drawbridge.dev'));
    expect(new Set(shared)).toEqual(
      new Set([expect.stringMatching(/the shared audience "drawbridge\.dev"/)]),
    );
    const other = await logins(10, await who.token(workloadAudience(NS, 'sessions')));
    expect(new Set(other)).toEqual(
      new Set([expect.stringMatching(/not a ServiceAccount token for audience/)]),
    );
    await new Promise((r) => setTimeout(r, 1000));
    expect(await tokenReviews()).toBe(before);
  });

  it("still admits a real token for the Database's audience, one review for many logins", async () => {
    const before = await tokenReviews();
    expect(await logins(20, await who.token(workloadAudience(NS, 'orders')))).toEqual(Array(20).fill('ok'));
    const reviews = await eventually('the review in the audit log', async () => {
      const n = (await tokenReviews()) - before;
      return n > 0 ? n : undefined;
    });
    expect(reviews).toBeLessThanOrEqual(2);
  });
});
