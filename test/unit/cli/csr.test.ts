import type * as k8s from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { checkIssuedCertificate, csrObject, csrState, waitForCertificate } from '../../../src/cli/db/csr.js';
import { parseTtl } from '../../../src/cli/db/login.js';
import { isDrawbridgeError } from '../../../src/errors.js';
import { createCA, createCsr, issueCertificate, signCsr } from '../../../src/pki/ca.js';

const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

function csr(
  conditions: { type: string; status?: string; reason?: string; message?: string }[],
  cert?: string,
) {
  return {
    spec: { request: '', signerName: 'drawbridge.dev/database-client' },
    status: {
      conditions: conditions.map((c) => ({ status: 'True', ...c })),
      ...(cert ? { certificate: Buffer.from(cert).toString('base64') } : {}),
    },
  } as k8s.V1CertificateSigningRequest;
}

describe('csrObject', () => {
  it('names the signer, the database and the database user, and carries the PEM request', () => {
    const obj = csrObject({
      namespace: 'shop',
      database: 'orders-pg',
      dbUser: 'app',
      csrPem: 'PEM',
      expirationSeconds: 3600,
    });
    expect(obj.metadata?.generateName).toBe('db-shop-orders-pg-');
    expect(obj.metadata?.annotations).toEqual({
      'drawbridge.dev/database': 'shop/orders-pg',
      'drawbridge.dev/db-user': 'app',
    });
    expect(obj.spec.signerName).toBe('drawbridge.dev/database-client');
    expect(obj.spec.usages).toContain('client auth');
    expect(obj.spec.expirationSeconds).toBe(3600);
    expect(Buffer.from(obj.spec.request, 'base64').toString()).toBe('PEM');
  });

  it('leaves the lifetime to the signer when none is asked for, and keeps long names valid', () => {
    const obj = csrObject({ namespace: 'n', database: 'x'.repeat(300), dbUser: 'u', csrPem: 'P' });
    expect(obj.spec).not.toHaveProperty('expirationSeconds');
    expect(obj.metadata!.generateName!.length).toBeLessThanOrEqual(241);
  });
});

describe('csrState', () => {
  it.each([
    ['pending without conditions', csr([]), { phase: 'pending' }],
    ['approved without a certificate yet', csr([{ type: 'Approved' }]), { phase: 'approved' }],
    ['issued', csr([{ type: 'Approved' }], PEM), { phase: 'issued', certPem: PEM }],
    [
      'denied with the reason',
      csr([{ type: 'Denied', reason: 'AccessDenied', message: 'no role allows orders' }]),
      { phase: 'denied', reason: 'AccessDenied', message: 'no role allows orders' },
    ],
    [
      'failed',
      csr([{ type: 'Approved' }, { type: 'Failed', reason: 'SignerError' }]),
      { phase: 'failed', reason: 'SignerError', message: '' },
    ],
    ['pending when Approved is False', csr([{ type: 'Approved', status: 'False' }]), { phase: 'pending' }],
  ])('%s', (_name, input, want) => expect(csrState(input)).toEqual(want));
});

describe('waitForCertificate', () => {
  /** A fake clock: sleeping advances it, so timeouts need no real waiting. */
  function clock() {
    let t = 0;
    return { now: () => t, sleep: async (ms: number) => void (t += ms) };
  }

  it('polls until the certificate is issued and reports each phase', async () => {
    const states = [csr([]), csr([{ type: 'Approved' }]), csr([{ type: 'Approved' }], PEM)];
    const phases: string[] = [];
    const pem = await waitForCertificate('db-x', {
      ...clock(),
      timeoutMs: 10_000,
      read: async () => states.shift()!,
      onPhase: (p) => phases.push(p),
    });
    expect(pem).toBe(PEM);
    expect(phases).toEqual(['pending', 'approved', 'issued']);
  });

  it('fails with the denial reason and message', async () => {
    const err = await waitForCertificate('db-x', {
      ...clock(),
      timeoutMs: 10_000,
      read: async () =>
        csr([
          {
            type: 'Denied',
            reason: 'NotAllowed',
            message: 'role "dev": database user "root" is not allowed',
          },
        ]),
    }).catch((e: unknown) => e);
    expect(isDrawbridgeError(err, 'ACCESS_DENIED')).toBe(true);
    expect((err as Error).message).toBe(
      'certificate request db-x was denied (NotAllowed): role "dev": database user "root" is not allowed',
    );
  });

  it('gives up after the timeout, saying what it was waiting for', async () => {
    const err = await waitForCertificate('db-x', {
      ...clock(),
      timeoutMs: 3000,
      read: async () => csr([{ type: 'Approved' }]),
    }).catch((e: unknown) => e);
    expect(isDrawbridgeError(err, 'KUBE_ERROR')).toBe(true);
    expect((err as Error).message).toBe(
      'certificate request db-x: still waiting for the signed certificate after 3s',
    );
  });
});

describe('parseTtl', () => {
  it.each([
    ['1h', 3600],
    ['90m', 5400],
    ['10m', 600],
  ])('%s → %d s', (text, seconds) => expect(parseTtl(text)).toBe(seconds));

  it.each(['5m', 'soon', '1d'])('rejects %s', (text) => expect(() => parseTtl(text)).toThrow());
});

describe('checkIssuedCertificate', () => {
  const subject = { commonName: 'alice', organizations: ['devs'] };
  const sign = (ca: { certPem: string; keyPem: string }, csrPem: string, validSeconds = 3600) =>
    signCsr(ca, csrPem, { validSeconds, usage: 'client', subject });
  const refusal = (f: () => void) => {
    try {
      f();
    } catch (err) {
      return err as Error;
    }
    throw new Error('accepted');
  };

  it("accepts the agents' CA's certificate for our key, also from a CA bundle", async () => {
    const [ca, other, mine] = await Promise.all([
      createCA({ commonName: 'drawbridge' }),
      createCA({ commonName: 'x' }),
      createCsr(subject),
    ]);
    const certPem = await sign(ca, mine.csrPem);
    expect(() => checkIssuedCertificate('db-1', certPem, mine.keyPem, ca.certPem)).not.toThrow();
    expect(() =>
      checkIssuedCertificate('db-1', certPem, mine.keyPem, other.certPem + ca.certPem),
    ).not.toThrow();
  });

  it('refuses a certificate for another key, even from our CA', async () => {
    const [ca, mine] = await Promise.all([createCA({ commonName: 'drawbridge' }), createCsr(subject)]);
    const theirs = await issueCertificate(ca, { ...subject, usage: 'client' });
    const err = refusal(() => checkIssuedCertificate('db-1', theirs.certPem, mine.keyPem, ca.certPem));
    expect(isDrawbridgeError(err)).toBe(true);
    expect(err.message).toMatch(
      /certificate request db-1: the issued certificate is for another key than the one this login made; it was not stored/,
    );
  });

  it("refuses our key signed by another CA, also one that copies our CA's name", async () => {
    const [ca, impostor, stranger, mine] = await Promise.all([
      createCA({ commonName: 'drawbridge' }),
      createCA({ commonName: 'drawbridge' }),
      createCA({ commonName: 'evil' }),
      createCsr(subject),
    ]);
    for (const signer of [impostor, stranger]) {
      const certPem = await sign(signer, mine.csrPem);
      const err = refusal(() => checkIssuedCertificate('db-2', certPem, mine.keyPem, ca.certPem));
      expect(err.message).toMatch(
        /is not signed by the agents' CA \(issuer "CN=(drawbridge|evil), O=drawbridge"\); it was not stored/,
      );
    }
  });

  it('refuses what is not a certificate and one already expired', async () => {
    const [ca, mine] = await Promise.all([createCA({ commonName: 'drawbridge' }), createCsr(subject)]);
    expect(refusal(() => checkIssuedCertificate('db-3', PEM, mine.keyPem, ca.certPem)).message).toMatch(
      /is not a PEM certificate/,
    );
    const expired = await sign(ca, mine.csrPem, -60);
    expect(refusal(() => checkIssuedCertificate('db-3', expired, mine.keyPem, ca.certPem)).message).toMatch(
      /expired at/,
    );
  });
});
