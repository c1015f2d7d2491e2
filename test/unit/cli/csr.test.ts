import type * as k8s from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { csrObject, csrState, waitForCertificate } from '../../../src/cli/db/csr.js';
import { parseTtl } from '../../../src/cli/db/login.js';
import { isDrawbridgeError } from '../../../src/errors.js';

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
