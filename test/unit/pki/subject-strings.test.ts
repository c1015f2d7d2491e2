// A CN read from a real certificate's DER must be the name its bytes spell in their string type, or be
// refused: never another person's name. A reader that kept the low 16 bits of a UniversalString's
// characters read U+10061 "lice" as "alice"; one that read invalid UTF-8 as Latin-1 gave names a second
// spelling. A CA the agent trusts (clientCAFile) may issue such subjects to someone else.
// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata API first.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { describe, expect, it } from 'vitest';
import '../../../src/pki/ca.js'; // sets @peculiar/x509's crypto provider
import { certificateSubject } from '../../../src/pki/subject-der.js';

/**
 * The DER of a real (self-signed) certificate whose subject CN is string type `tag` holding exactly
 * `value`: issued with a placeholder CN of the same length, whose tag and bytes are then replaced (the
 * signature no longer matches, which the reader never looks at: OpenSSL verifies it before). The
 * library re-encodes any string it is given, so it cannot write an invalid one itself.
 */
async function certificateNamed(tag: number, value: number[]): Promise<Uint8Array> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  const keys = (await webcrypto.subtle.generateKey(alg, false, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const placeholder = 'Q'.repeat(value.length);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: [{ CN: [placeholder] }],
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 60_000),
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
  });
  const der = Buffer.from(cert.rawData);
  // Self-signed: the issuer is the same name, before the subject. Both are replaced.
  const cn = Buffer.from([value.length, ...Buffer.from(placeholder)]);
  for (let at = der.indexOf(cn); at > 0; at = der.indexOf(cn, at + 1)) {
    expect([0x0c, 0x13]).toContain(der[at - 1]); // the library's choice of UTF8String or PrintableString
    der[at - 1] = tag;
    der.set(value, at + 1);
  }
  return new Uint8Array(der);
}

const utf32 = (s: string) =>
  [...s].flatMap((c) => {
    const p = c.codePointAt(0)!;
    return [p >>> 24, (p >> 16) & 0xff, (p >> 8) & 0xff, p & 0xff];
  });
const utf16 = (s: string) => [...s].flatMap((c) => [c.charCodeAt(0) >> 8, c.charCodeAt(0) & 0xff]);
const bytes = (s: string) => [...Buffer.from(s, 'utf8')];

const UTF8 = 0x0c;
const PRINTABLE = 0x13;
const IA5 = 0x16;
const UNIVERSAL = 0x1c;
const BMP = 0x1e;

describe('CN string types read from a real certificate', () => {
  it.each<[string, number, number[], string]>([
    ['UTF8String', UTF8, bytes('Ålice 名前 🙂'), 'Ålice 名前 🙂'],
    ['PrintableString', PRINTABLE, bytes('alice (ops)'), 'alice (ops)'],
    ['BMPString', BMP, utf16('Ålice 名前'), 'Ålice 名前'],
    ['UniversalString beyond the BMP', UNIVERSAL, utf32('alice🙂'), 'alice🙂'],
    // U+10061 then "lice": a name of its own. Keeping 16 bits of each character read it as "alice".
    [
      'UniversalString whose low 16 bits spell alice',
      UNIVERSAL,
      [0, 1, 0, 0x61, ...utf32('lice')],
      '\u{10061}lice',
    ],
  ])('reads a valid %s exactly', async (_type, tag, value, name) => {
    expect(certificateSubject(await certificateNamed(tag, value))).toEqual({
      commonName: name,
      organizations: [],
    });
  });

  it.each<[string, number, number[], RegExp]>([
    ['a UniversalString code point past U+10FFFF', UNIVERSAL, [0, 0x11, 0, 0x61], /valid UniversalString/],
    ['a UniversalString surrogate', UNIVERSAL, [0, 0, 0xd8, 0, ...utf32('a')], /valid UniversalString/],
    ['a UniversalString cut mid-character', UNIVERSAL, [...utf32('alice'), 0], /valid UniversalString/],
    // 63 C3 28 read as Latin-1 is "cÃ(".
    ['invalid UTF-8', UTF8, [0x63, 0xc3, 0x28], /valid UTF8String/],
    ['a UTF-8 overlong encoding of "a"', UTF8, [0xc1, 0xa1, ...bytes('lice')], /valid UTF8String/],
    ['a lone surrogate in a BMPString', BMP, [0xd8, 0x00, 0, 0x61], /valid BMPString/],
    ['a BMPString of odd length', BMP, [0, 0x61, 0], /valid BMPString/],
    ['a byte past ASCII in a PrintableString', PRINTABLE, [0x61, 0xe9], /valid PrintableString/],
    ['an IA5String', IA5, bytes('alice'), /not a UTF8, Printable, BMP or Universal string/],
  ])('refuses %s', async (_what, tag, value, message) => {
    const der = await certificateNamed(tag, value);
    expect(() => certificateSubject(der)).toThrow(message);
  });
});
