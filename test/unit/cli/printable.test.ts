// Text from the cluster must reach the terminal as text: a tenant's AccessRole strings show up in other
// people's `kubectl db ls -A` and in CSR denial messages, and a terminal obeys escape sequences.
import type * as k8s from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { waitForCertificate } from '../../../src/cli/db/csr.js';
import { errorReport } from '../../../src/cli/db/program.js';
import { renderTable } from '../../../src/cli/db/table.js';

// Clear the screen, set the clipboard (OSC 52), a C1 CSI, a fake second line, a right-to-left override.
const HOSTILE = 'app\x1b[2J\x1b]52;c;cm0gLXJmIH4=\x07\x9b31m\r\nPassword: \u202e';
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/; // eslint-disable-line no-control-regex

describe('renderTable', () => {
  it('shows control characters in cells as escapes, on one line', () => {
    const out = renderTable(['NAME', 'DB USERS'], [['orders', HOSTILE]]);
    expect(out).not.toMatch(CONTROL);
    expect(out.split('\n')).toHaveLength(3);
    expect(out).toContain('app\\x1b[2J\\x1b]52;c;cm0gLXJmIH4=\\x07\\x9b31m\\x0d\\x0aPassword: \\u202e');
  });

  it('leaves ordinary text alone', () => {
    expect(renderTable(['A', 'B'], [['é-ü', 'x']])).toBe('A     B\né-ü   x\n');
  });
});

describe('errorReport', () => {
  it('prints a CSR denial quoting hostile role text without obeying it', async () => {
    const denied = {
      status: {
        conditions: [
          { type: 'Denied', status: 'True', reason: 'AccessDenied', message: `no role allows ${HOSTILE}` },
        ],
      },
    } as k8s.V1CertificateSigningRequest;
    const err = await waitForCertificate('db-shop-orders-x', {
      read: async () => denied,
      timeoutMs: 1000,
    }).catch((e: unknown) => e);
    const report = errorReport(err);
    expect(report).toMatch(
      /^error: certificate request db-shop-orders-x was denied \(AccessDenied\): no role allows app\\x1b\[2J/,
    );
    expect(report).not.toMatch(CONTROL);
    // Its own line breaks (the hint) stay.
    expect(report.split('\n')).toHaveLength(3);
  });
});
