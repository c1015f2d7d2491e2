// drawbridge_certificate_expiry_timestamp_seconds for a CA rotation's trust bundle: the CA that expires
// first, whichever comes first in the file (the signing one does).
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AgentMetrics } from '../../../src/agent/metrics.js';
import { createCA } from '../../../src/pki/ca.js';

const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

describe('certificate expiry metric', () => {
  it("reports a bundle's earliest CA expiry, not its first certificate's", async () => {
    const [longer, sooner] = await Promise.all([
      createCA({ commonName: 'new', validDays: 3650 }),
      createCA({ commonName: 'old', validDays: 30 }),
    ]);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'expiry-'));
    dirs.push(dir);
    const file = path.join(dir, 'ca.crt');
    await writeFile(file, `${longer.certPem}\n${sooner.certPem}\n`);
    const metrics = new AgentMetrics(true);
    metrics.watchCertificates({ client_ca: file });
    const value = (await metrics.certificateExpiry.get()).values.find(
      (v) => v.labels.certificate === 'client_ca',
    )?.value;
    expect(value).toBe(Math.floor(Date.parse(new X509Certificate(sooner.certPem).validTo) / 1000));
  });
});
