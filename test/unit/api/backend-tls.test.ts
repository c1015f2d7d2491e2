import { describe, expect, it } from 'vitest';
import { withSharedContext } from '../../../src/api/backend-tls.js';
import { createCA, issueCertificate } from '../../../src/pki/ca.js';

describe('withSharedContext', () => {
  it('builds one TLS context per (CA, certificate, key) set and keeps the per-connection options', async () => {
    const ca = await createCA({ commonName: 'backend CA' });
    const other = await createCA({ commonName: 'rotated CA' });
    const client = await issueCertificate(ca, { commonName: 'app', usage: 'client' });
    const check = () => undefined;
    const a = withSharedContext({ ca: ca.certPem, servername: 'redis.local', checkServerIdentity: check });
    const b = withSharedContext({ ca: ca.certPem, rejectUnauthorized: false });
    expect(a.secureContext).toBe(b.secureContext);
    expect(a).toMatchObject({ servername: 'redis.local', checkServerIdentity: check });
    expect(b.rejectUnauthorized).toBe(false);
    expect(a).not.toHaveProperty('ca');
    // A rotated CA or a client certificate is another context.
    expect(withSharedContext({ ca: other.certPem }).secureContext).not.toBe(a.secureContext);
    const mtls = withSharedContext({ ca: ca.certPem, cert: client.certPem, key: client.keyPem });
    expect(mtls.secureContext).not.toBe(a.secureContext);
    expect(mtls).not.toHaveProperty('key');
    // Right after the same CA alone, the CA with a certificate is still its own context, and back.
    expect(withSharedContext({ ca: ca.certPem }).secureContext).toBe(a.secureContext);
    const again = withSharedContext({ ca: ca.certPem, cert: client.certPem, key: client.keyPem });
    expect(again.secureContext).toBe(mtls.secureContext);
    expect(withSharedContext({ ca: ca.certPem }).secureContext).toBe(a.secureContext);
  });
});
