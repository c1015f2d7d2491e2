// The ServiceAccount-token seam: a client without a certificate sends `AUTH user <token>`; the agent
// asks the TokenVerifier who it is and authorizes that identity. The verifier is faked here (the real
// TokenReview one comes with the operator). The Database points at a closed port: an allowed login
// gets as far as the backend connect, which proves authorization passed.
import { createHash } from 'node:crypto';
import { createSecureContext, connect as tlsConnect } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../../../src/agent/agent.js';
import type { AuditEvent, AuditSink } from '../../../src/agent/audit.js';
import { AgentState } from '../../../src/agent/state.js';
import type { Identity, TokenVerifier } from '../../../src/authn/identity.js';
import { Database } from '../../../src/api/database.js';
import { AccessRole, DatabaseUser } from '../../../src/api/access.js';
import { createLogger } from '../../../src/log.js';
import { agentParts } from '../../../src/wiring.js';
import { createCA, issueCertificate } from '../../../src/pki/ca.js';

const TOKEN = `${'a'.repeat(20)}.${'b'.repeat(30)}.${'c'.repeat(20)}`;
const workload: Identity = { user: 'system:serviceaccount:shop:cart', groups: [], source: 'token' };

class RecordingAudit implements AuditSink {
  events: AuditEvent[] = [];
  emit(e: AuditEvent): void {
    this.events.push(e);
  }
  async close(): Promise<void> {}
}

const meta = { apiVersion: 'drawbridge.dev/v1alpha1' };
const database = Database.parse({
  ...meta,
  kind: 'Database',
  metadata: { name: 'cache', labels: { env: 'prod' } },
  spec: {
    protocol: 'redis',
    uri: 'redis://127.0.0.1:1',
    tls: { mode: 'disabled' },
    auth: { type: 'password', secretRef: { name: 'login' } },
  },
});
const role = AccessRole.parse({
  ...meta,
  kind: 'AccessRole',
  metadata: { name: 'cart' },
  spec: { allow: { databaseLabels: { env: '*' }, databaseUsers: ['cart'] } },
});
const binding = DatabaseUser.parse({
  ...meta,
  kind: 'DatabaseUser',
  metadata: { name: 'cart' },
  spec: { subjects: [{ kind: 'ServiceAccount', namespace: 'shop', name: 'cart' }], roles: ['cart'] },
});

let stop: (() => Promise<void>) | undefined;
afterEach(async () => {
  await stop?.();
  stop = undefined;
});

async function agentWith(verifier: TokenVerifier | undefined) {
  const ca = await createCA({ commonName: 'unit CA' });
  const cert = await issueCertificate(ca, {
    commonName: 'agent',
    ipAddresses: ['127.0.0.1'],
    usage: 'server',
  });
  const audit = new RecordingAudit();
  const agent = await Agent.create({
    parts: agentParts,
    state: new AgentState({
      database,
      roles: [role],
      users: [binding],
      secrets: new Map([['login', { cart: 'cart-pw' }]]),
    }),
    serverTls: createSecureContext({ cert: cert.certPem, key: cert.keyPem, ca: ca.certPem }),
    audit,
    log: createLogger('unit', 'silent'),
    tokenVerifier: verifier,
  });
  const { port } = await agent.listen('127.0.0.1', 0);
  stop = () => agent.stop(0);
  /** Sends `lines` on one TLS connection (no client certificate) and returns one reply line per command. */
  const talk = (lines: string[]) =>
    new Promise<string[]>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca: ca.certPem }, () =>
        s.write(lines.join('\r\n') + '\r\n'),
      );
      let text = '';
      s.on('data', (d: Buffer) => {
        text += d.toString();
        const replies = text.split('\r\n').filter(Boolean);
        if (replies.length >= lines.length) {
          s.destroy();
          resolve(replies);
        }
      });
      s.on('error', reject);
    });
  return { talk, audit };
}

describe('AUTH with a ServiceAccount token', () => {
  it('before AUTH, commands get NOAUTH naming both ways in', async () => {
    const { talk } = await agentWith({ verify: async () => workload });
    const [reply] = await talk(['PING']);
    expect(reply).toMatch(/^-NOAUTH Authentication required\. \(hint: connect with the client certificate/);
  });

  it('an accepted token for an allowed database user passes authorization (then meets the closed backend)', async () => {
    const seen: string[] = [];
    const { talk, audit } = await agentWith({ verify: async (t) => (seen.push(t), workload) });
    const [reply] = await talk([`AUTH cart ${TOKEN}`]);
    expect(seen).toEqual([TOKEN]);
    expect(reply).toMatch(/^-ERR cannot reach the backend at 127\.0\.0\.1:1/);
    expect(audit.events.filter((e) => e.type === 'session.denied')).toEqual([]); // a failure, not a refusal
    expect(JSON.stringify(audit.events)).not.toContain(TOKEN);
  });

  it('the token identity is authorized like any other: another database user is refused with the rule', async () => {
    const { talk, audit } = await agentWith({ verify: async () => workload });
    const [reply] = await talk([`AUTH admin ${TOKEN}`]);
    expect(reply).toMatch(/^-NOPERM access to cache as database user "admin" denied: no role allows it/);
    expect(audit.events.at(-1)).toMatchObject({
      type: 'session.denied',
      user: 'system:serviceaccount:shop:cart',
      dbUser: 'admin',
    });
  });

  it('a refused database user name is cut in session.denied, as values are (the reason quoting it too)', async () => {
    // Each control character is six bytes of JSON: the whole name (up to maxRequestBytes), in dbUser
    // and again in the reason, would make one line of twelve times its length.
    const { talk, audit } = await agentWith({ verify: async () => workload });
    const name = 'u' + '\x01'.repeat(9_999);
    const [reply] = await talk([`AUTH ${name} ${TOKEN}`]);
    expect(reply!.startsWith(`-NOPERM access to cache as database user "${name}"`)).toBe(true);
    const denied = audit.events.at(-1)!;
    expect(denied.type).toBe('session.denied');
    const sha = createHash('sha256').update(name).digest('hex');
    expect(denied.dbUser).toBe(`${name.slice(0, 4096)}…[10000 bytes sha256:${sha}]`);
    const reason = `access to cache as database user "${name}"`;
    expect(String(denied.reason).startsWith(`${reason.slice(0, 4096)}…[`)).toBe(true);
    expect(denied.reason).toMatch(/…\[\d+ bytes sha256:[0-9a-f]{64}\]$/);
    expect(JSON.stringify(denied).length).toBeLessThan(2 * 6 * 4096 + 1000);
  });

  it('a token the verifier rejects gets WRONGPASS', async () => {
    const { talk } = await agentWith({
      verify: async () => {
        throw new Error('token expired');
      },
    });
    const [reply] = await talk([`AUTH cart ${TOKEN}`]);
    expect(reply).toBe(
      "-WRONGPASS the ServiceAccount token was not accepted: token expired (hint: mount a fresh projected token with the Database's audience, drawbridge.dev/<namespace>/<database>)",
    );
  });

  it('without a TokenVerifier (standalone agent) the error says to use a certificate', async () => {
    const { talk } = await agentWith(undefined);
    const [reply] = await talk([`AUTH cart ${TOKEN}`]);
    expect(reply).toMatch(
      /^-WRONGPASS this agent does not accept ServiceAccount tokens .*client certificate/,
    );
  });

  it('a password that is not a token, without a certificate, is refused', async () => {
    const { talk } = await agentWith({ verify: async () => workload });
    const [reply] = await talk(['AUTH cart hunter2']);
    expect(reply).toMatch(
      /^-WRONGPASS no client certificate was presented and the AUTH password is not a ServiceAccount token/,
    );
  });
});
