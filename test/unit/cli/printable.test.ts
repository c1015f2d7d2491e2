// Text from the cluster must reach the terminal as text: a tenant's AccessRole strings show up in other
// people's `kubectl db ls -A` and in CSR denial messages, and a terminal obeys escape sequences.
import type * as k8s from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { waitForCertificate } from '../../../src/cli/db/csr.js';
import { errorReport } from '../../../src/cli/db/program.js';
import { printableOutput } from '../../../src/cli/db/printable.js';
import { renderTable } from '../../../src/cli/db/table.js';
import { UNSEEN } from '../../../src/unseen.js';

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

  it('shows zero-width and other format characters and line separators as escapes too', () => {
    const out = renderTable(['NAME'], [['a\u200bb\u2028c\u{e0041}\u061c']]);
    expect(out).not.toMatch(UNSEEN);
    expect(out).toContain('a\\u200bb\\u2028c\\u{e0041}\\u061c');
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

describe('printableOutput (-o json, -o yaml)', () => {
  // What JSON.stringify and the YAML writer leave as they are: C1 CSI, a right-to-left override, a
  // zero-width space, a line separator, and a character past U+FFFF (a language tag).
  const value = {
    items: [{ dbNames: ['orders\u009b2J\u202egpj.exe\u200b\u2028', 'plain', '\u{e0001}x'], ok: 'é' }],
  };

  it('json: the same value, every such character escaped', () => {
    const out = printableOutput(value, 'json');
    expect(out).not.toMatch(UNSEEN);
    expect(out).not.toMatch(CONTROL);
    expect(out).toContain('orders\\u009b2J\\u202egpj.exe\\u200b\\u2028');
    expect(JSON.parse(out)).toEqual(value);
  });

  it('yaml: the same value, such strings double-quoted with escapes; others as before', () => {
    const out = printableOutput(value, 'yaml');
    expect(out).not.toMatch(UNSEEN);
    expect(out).not.toMatch(CONTROL);
    expect(out).toContain('"orders\\u009b2J\\u202egpj.exe\\u200b\\u2028"');
    expect(out).toContain('- plain\n');
    expect(parse(out)).toEqual(value);
  });

  it('yaml: map keys too (a hostile label or annotation key)', () => {
    const labels = { labels: { 'team\u202e\u200b': 'a', plain: 'b' } };
    const out = printableOutput(labels, 'yaml');
    expect(out).not.toMatch(UNSEEN);
    expect(out).toContain('"team\\u202e\\u200b": a');
    expect(parse(out)).toEqual(labels);
  });
});
