// The CSR decision, table-driven, and the signer's writes for each state a CSR can be in.
import { X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { AccessRole, DatabaseUser } from '../../../src/api/access.js';
import type { Policy } from '../../../src/authz/engine.js';
import { createLogger } from '../../../src/log.js';
import { type AccessSource, type CsrRequest, decideCsr } from '../../../src/operator/csr/decide.js';
import { CsrSigner, type CsrSignerDeps } from '../../../src/operator/csr/signer.js';
import type { KubeObject } from '../../../src/kube/types.js';
import { ANNOTATION_DATABASE, ANNOTATION_DB_USER, SIGNER_NAME } from '../../../src/operator/names.js';
import {
  type KeyPairPem,
  certificateDer,
  createCA,
  createCsr,
  issueCertificate,
} from '../../../src/pki/ca.js';
import { certificateSubject } from '../../../src/pki/subject.js';
import { FakeCache, RecordingEvents, RecordingWriter } from './fakes.js';

const V = 'drawbridge.dev/v1alpha1';
const role = (name: string, spec: object) =>
  AccessRole.parse({ apiVersion: V, kind: 'AccessRole', metadata: { name }, spec });
const user = (name: string, spec: object) =>
  DatabaseUser.parse({ apiVersion: V, kind: 'DatabaseUser', metadata: { name }, spec });

const policy: Policy = {
  roles: [
    role('dev', {
      allow: { databaseLabels: { env: 'prod' }, databaseUsers: ['{{traits.dbUsers}}'] },
      options: { maxSessionTTL: '1h' },
    }),
    role('no-admin', { deny: { databaseUsers: ['admin'] }, options: { maxSessionTTL: '8h' } }),
    role('staging', { allow: { databaseLabels: { env: 'staging' }, databaseUsers: ['*'] } }),
  ],
  users: [
    user('alice', {
      subjects: [{ kind: 'User', name: 'alice' }],
      roles: ['dev'],
      traits: { dbUsers: ['alice', 'admin'] },
    }),
    user('ops', {
      subjects: [{ kind: 'Group', name: 'ops' }],
      roles: ['dev', 'no-admin'],
      traits: { dbUsers: ['admin', 'ops'] },
    }),
    user('mallory', { subjects: [{ kind: 'User', name: 'mallory' }], roles: ['staging'] }),
  ],
};

const orders: KubeObject = {
  apiVersion: V,
  kind: 'Database',
  metadata: { name: 'orders', namespace: 'shop', labels: { env: 'prod' } },
  spec: { protocol: 'postgres', uri: 'postgres://db:5432', auth: { type: 'passthrough' } },
};
const source: AccessSource = {
  database: (ns, name) => (ns === 'shop' && name === 'orders' ? orders : undefined),
  policy: () => policy,
};

const csrs: Record<string, string> = {};
beforeAll(async () => {
  for (const [cn, orgs] of [
    ['alice', []],
    ['alice', ['ops']],
    ['bob', []],
    ['carol', ['ops']],
    ['mallory', []],
  ] as const) {
    csrs[`${cn}:${orgs.join(',')}`] = (await createCsr({ commonName: cn, organizations: [...orgs] })).csrPem;
  }
});

function request(over: Partial<CsrRequest> & { subject?: string } = {}): CsrRequest {
  return {
    username: 'alice',
    groups: ['system:authenticated'],
    requestPem: csrs[over.subject ?? 'alice:']!,
    usages: ['client auth', 'digital signature'],
    annotations: { [ANNOTATION_DATABASE]: 'shop/orders' },
    ...over,
  };
}

describe('decideCsr', () => {
  it.each<[string, Partial<CsrRequest> & { subject?: string }, string, RegExp]>([
    [
      'alice for her own database user',
      { annotations: { [ANNOTATION_DATABASE]: 'shop/orders', [ANNOTATION_DB_USER]: 'alice' } },
      'AccessAllowed',
      /allowed by role "dev".*as database user "alice"/,
    ],
    [
      'alice without naming a database user (one is allowed)',
      {},
      'AccessAllowed',
      /as database user "alice"/,
    ],
    [
      'no database annotation',
      { annotations: {} },
      'MissingDatabaseAnnotation',
      /drawbridge\.dev\/database: NAMESPACE\/NAME/,
    ],
    [
      'a malformed database annotation',
      { annotations: { [ANNOTATION_DATABASE]: 'orders' } },
      'MissingDatabaseAnnotation',
      /NAMESPACE\/NAME/,
    ],
    [
      'server auth usage',
      { usages: ['server auth', 'client auth'] },
      'UnsupportedUsages',
      /only "client auth"/,
    ],
    ['no client auth usage', { usages: ['digital signature'] }, 'UnsupportedUsages', /only "client auth"/],
    ['a CN naming someone else', { subject: 'bob:' }, 'SubjectMismatch', /CN=bob.*requester "alice"/],
    [
      'a group the requester is not in',
      { subject: 'alice:ops' },
      'SubjectMismatch',
      /only groups they are in/,
    ],
    ['garbage instead of a CSR', { requestPem: 'not a csr' }, 'InvalidRequest', /PKCS#10/],
    [
      'a database that does not exist',
      { annotations: { [ANNOTATION_DATABASE]: 'shop/nope' } },
      'DatabaseNotFound',
      /shop\/nope does not exist/,
    ],
    [
      'a person no DatabaseUser names',
      { username: 'bob', subject: 'bob:' },
      'AccessDenied',
      /not a subject of any DatabaseUser/,
    ],
    [
      'a role for other databases only',
      { username: 'mallory', subject: 'mallory:' },
      'AccessDenied',
      /label env=prod is not one of \["staging"\]/,
    ],
    [
      'a database user the roles do not list',
      { annotations: { [ANNOTATION_DATABASE]: 'shop/orders', [ANNOTATION_DB_USER]: 'root' } },
      'AccessDenied',
      /"root" is not in allow.databaseUsers/,
    ],
    [
      'a database user a deny rule names',
      {
        username: 'carol',
        groups: ['ops'],
        subject: 'carol:ops',
        annotations: { [ANNOTATION_DATABASE]: 'shop/orders', [ANNOTATION_DB_USER]: 'admin' },
      },
      'AccessDenied',
      /denied by role "no-admin"/,
    ],
    [
      'a group member, skipping the denied user for an allowed one',
      { username: 'carol', groups: ['ops'], subject: 'carol:ops' },
      'AccessAllowed',
      /as database user "ops"/,
    ],
  ])('%s → %s', (_name, over, reason, message) => {
    const d = decideCsr(request(over), source);
    expect(d.reason).toBe(reason);
    expect(d.message).toMatch(message);
  });

  it.each([
    [undefined, 3600],
    [86_400, 3600],
    [1200, 1200],
  ])('caps the lifetime at the role maxSessionTTL (asked %s s → %i s)', (expirationSeconds, validSeconds) => {
    const d = decideCsr(request({ expirationSeconds }), source);
    expect(d).toMatchObject({ approved: true, validSeconds });
  });

  it("uses the smallest maxSessionTTL among the person's roles", () => {
    const d = decideCsr(request({ username: 'carol', groups: ['ops'], subject: 'carol:ops' }), source);
    expect(d).toMatchObject({ approved: true, validSeconds: 3600 });
  });
});

describe('CsrSigner', () => {
  let ca: KeyPairPem;
  beforeAll(async () => {
    ca = await createCA({ commonName: 'signer test' });
  });

  function csrObject(
    name: string,
    over: {
      username?: string;
      subject?: string;
      conditions?: object[];
      signerName?: string;
      certificate?: string;
    } = {},
  ): KubeObject {
    return {
      apiVersion: 'certificates.k8s.io/v1',
      kind: 'CertificateSigningRequest',
      metadata: { name, resourceVersion: '1', annotations: { [ANNOTATION_DATABASE]: 'shop/orders' } },
      spec: {
        signerName: over.signerName ?? SIGNER_NAME,
        request: Buffer.from(csrs[over.subject ?? 'alice:']!).toString('base64'),
        username: over.username ?? 'alice',
        groups: ['system:authenticated'],
        usages: ['client auth'],
        expirationSeconds: 600,
      },
      status: { conditions: over.conditions, certificate: over.certificate },
    };
  }

  function signer(csr: KubeObject, opts: { sign?: CsrSignerDeps['sign']; access?: AccessSource } = {}) {
    const writer = new RecordingWriter();
    const events = new RecordingEvents();
    const s = new CsrSigner({
      csrs: new FakeCache([csr]),
      access: opts.access ?? source,
      writer,
      events,
      ca: () => ca,
      log: createLogger('t', 'silent'),
      sign: opts.sign,
    });
    return { s, writer, events };
  }

  it('approves, then signs a certificate for the requester valid for the allowed time', async () => {
    const { s, writer, events } = signer(csrObject('ok'));
    await s.reconcile('ok');
    expect(writer.ops()).toEqual([
      'replace CertificateSigningRequest/approval',
      'replace CertificateSigningRequest/status',
    ]);
    const approved = writer.replacedStatus<{ conditions: object[] }>(0);
    expect(approved.conditions).toMatchObject([{ type: 'Approved', reason: 'AccessAllowed' }]);
    const signed = writer.replacedStatus<{ certificate: string }>(1);
    const cert = new X509Certificate(Buffer.from(signed.certificate, 'base64'));
    expect(cert.subject).toBe('CN=alice');
    expect(cert.checkIssued(new X509Certificate(ca.certPem))).toBe(true);
    const lifetime = (Date.parse(cert.validTo) - Date.now()) / 1000;
    expect(lifetime).toBeGreaterThan(500);
    expect(lifetime).toBeLessThanOrEqual(600);
    expect(events.events.map((e) => e.reason)).toEqual(['Issued']);
  });

  it('denies with the reason through the approval subresource', async () => {
    const { s, writer, events } = signer(csrObject('no', { username: 'bob', subject: 'bob:' }));
    await s.reconcile('no');
    expect(writer.ops()).toEqual(['replace CertificateSigningRequest/approval']);
    expect(writer.replacedStatus<{ conditions: object[] }>(0).conditions).toMatchObject([
      { type: 'Denied', status: 'True', reason: 'AccessDenied' },
    ]);
    expect(events.events[0]).toMatchObject({ type: 'Warning', reason: 'AccessDenied' });
  });

  it('fails a request someone else approved when access rules do not allow it', async () => {
    const approved = [{ type: 'Approved', status: 'True', reason: 'KubectlApprove' }];
    const { s, writer } = signer(
      csrObject('forced', { username: 'bob', subject: 'bob:', conditions: approved }),
    );
    await s.reconcile('forced');
    expect(writer.ops()).toEqual(['replace CertificateSigningRequest/status']);
    expect(
      writer.replacedStatus<{ conditions: { type: string }[] }>(0).conditions.map((c) => c.type),
    ).toEqual(['Approved', 'Failed']);
  });

  it.each([
    ['another signer', { signerName: 'kubernetes.io/kube-apiserver-client' }],
    ['already issued', { certificate: 'Zm9v' }],
    ['already denied', { conditions: [{ type: 'Denied', status: 'True' }] }],
  ])('leaves a request alone: %s', async (_name, over) => {
    const { s, writer } = signer(csrObject('x', over));
    await s.reconcile('x');
    expect(writer.writes).toEqual([]);
  });

  it('issues exactly the approved name when it is full of DN syntax', async () => {
    const hostile = 'alice, O=system:masters+CN=admin\\"#';
    const csrPem = (await createCsr({ commonName: hostile, organizations: ['ops, O=root'] })).csrPem;
    const csr = csrObject('hostile', { username: hostile });
    Object.assign(csr.spec as object, {
      request: Buffer.from(csrPem).toString('base64'),
      groups: ['ops, O=root'],
    });
    const access: AccessSource = {
      database: source.database,
      policy: () => ({
        roles: policy.roles,
        users: [
          user('h', {
            subjects: [{ kind: 'User', name: hostile }],
            roles: ['dev'],
            traits: { dbUsers: ['alice'] },
          }),
        ],
      }),
    };
    const { s, writer } = signer(csr, { access });
    await s.reconcile('hostile');
    const signed = writer.replacedStatus<{ certificate: string }>(1);
    const pem = Buffer.from(signed.certificate, 'base64').toString('utf8');
    expect(certificateSubject(certificateDer(pem))).toEqual({
      commonName: hostile,
      organizations: ['ops, O=root'],
    });
  });

  it('fails the request, and hands out nothing, when the issued certificate names someone else', async () => {
    const forged: CsrSignerDeps['sign'] = async (caPair) =>
      (
        await issueCertificate(caPair, {
          commonName: 'alice',
          organizations: ['system:masters'],
          usage: 'client',
        })
      ).certPem;
    const { s, writer, events } = signer(csrObject('forged'), { sign: forged });
    await s.reconcile('forged');
    expect(writer.ops()).toEqual([
      'replace CertificateSigningRequest/approval',
      'replace CertificateSigningRequest/status',
    ]);
    const status = writer.replacedStatus<{ conditions: object[]; certificate?: string }>(1);
    expect(status.certificate).toBeUndefined();
    expect(status.conditions).toMatchObject([
      { type: 'Approved' },
      { type: 'Failed', reason: 'IssuedSubjectMismatch', message: expect.stringContaining('system:masters') },
    ]);
    expect(events.events.map((e) => e.reason)).toEqual(['IssuedSubjectMismatch']);
  });
});
