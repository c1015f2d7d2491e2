// Differential fuzzing of the subject reader (src/pki/subject-der.ts) against OpenSSL: random X.509
// Names, in every string type, written in DER and in the BER forms OpenSSL also accepts (long-form
// lengths with leading zeros, indefinite lengths, high-tag-number tags, constructed strings), then
// mutated byte by byte; each is put in a certificate signed by a throwaway CA and in a signed PKCS#10
// request, so OpenSSL parses and verifies the very bytes the reader reads.
import { type KeyObject, X509Certificate, generateKeyPairSync, sign } from 'node:crypto';

/** A small seeded generator (mulberry32): the same seed gives the same cases on every run. */
export class Rng {
  constructor(private state: number) {}
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

type Bytes = Buffer | Uint8Array | number[] | string;
const bytesOf = (parts: Bytes[]) => Buffer.concat(parts.map((p) => Buffer.from(p as Uint8Array)));

function lengthBytes(n: number): number[] {
  if (n < 0x80) return [n];
  const out: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) out.unshift(v % 256);
  return [0x80 | out.length, ...out];
}

/** A DER element. */
export const der = (tag: number, ...parts: Bytes[]): Buffer => {
  const content = bytesOf(parts);
  return Buffer.concat([Buffer.from([tag, ...lengthBytes(content.length)]), content]);
};
const seq = (...p: Bytes[]) => der(0x30, ...p);
const oid = (...b: number[]) => der(0x06, b);

export const STRING_TAGS = {
  UTF8String: 0x0c,
  NumericString: 0x12,
  PrintableString: 0x13,
  TeletexString: 0x14,
  VideotexString: 0x15,
  IA5String: 0x16,
  GraphicString: 0x19,
  VisibleString: 0x1a,
  GeneralString: 0x1b,
  UniversalString: 0x1c,
  BMPString: 0x1e,
} as const;

/** CN and O (often), OU, unknown OIDs, and 2.5.4.3.0, which is not CN. */
const ATTRIBUTE_TYPES: number[][] = [
  ...Array<number[]>(4).fill([0x55, 4, 3]),
  ...Array<number[]>(3).fill([0x55, 4, 10]),
  [0x55, 4, 11],
  [0x55, 4, 0x61],
  [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 9, 1], // emailAddress
  [0x2b, 6, 1, 4, 1, 0x82, 0x37, 0x3c, 2, 1, 3],
  [0x55, 4, 3, 0], // 2.5.4.3.0
];

/** Code points from the ranges that matter: ASCII, DN specials, controls, Latin-1, the BMP, astral. */
function codePoint(r: Rng): number {
  switch (r.int(8)) {
    case 0:
      return r.pick([0, 0x0a, 0x09, 0x7f, 0x20]);
    case 1:
      return r.pick([...',+=\\"#<>;/'].map((c) => c.charCodeAt(0)));
    case 2:
      return 0xa0 + r.int(0x60);
    case 3:
      return r.pick([0x4e00 + r.int(0x100), 0xfeff, 0xfffe, 0xffff, 0x0430 + r.int(0x20)]);
    case 4:
      return r.pick([0x10061, 0x1f642, 0x10000 + r.int(0x100), 0x10ffff, 0xe0061]);
    default:
      return 0x61 + r.int(26);
  }
}

const utf32 = (points: number[]) =>
  points.flatMap((p) => [p >>> 24, (p >> 16) & 255, (p >> 8) & 255, p & 255]);
const utf16 = (units: number[]) => units.flatMap((u) => [u >> 8, u & 255]);

/** A value of string type `tag`, usually valid in it; sometimes not (invalid UTF-8, bad lengths…). */
function stringValue(r: Rng, tag: number, brokenRate: number): number[] {
  const points = Array.from({ length: r.int(4) === 0 ? 0 : 1 + r.int(8) }, () => codePoint(r));
  const broken = r.chance(brokenRate);
  switch (tag) {
    case STRING_TAGS.UTF8String: {
      const out = [...Buffer.from(String.fromCodePoint(...points), 'utf8')];
      if (broken) {
        const bad = r.pick([
          [0x80],
          [0xc1, 0xa1],
          [0xed, 0xa0, 0x80],
          [0xe0, 0x80, 0xaf],
          [0xf4, 0x90, 0x80, 0x80],
          [0xc3],
          [0xff],
        ]);
        out.splice(r.int(out.length + 1), 0, ...bad);
      }
      return out;
    }
    case STRING_TAGS.BMPString: {
      // UCS-2 has no surrogates: an astral character is dropped, or (broken) written as a UTF-16 pair.
      const units = points.flatMap((p) =>
        p <= 0xffff ? [p] : broken ? [0xd800 + ((p - 0x10000) >> 10), 0xdc00 + (p & 0x3ff)] : [],
      );
      const out = utf16(
        broken ? [...units, r.pick([0xd800, 0xdc00])] : units.filter((u) => u < 0xd800 || u > 0xdfff),
      );
      return broken && r.chance(0.5) ? out.slice(0, -1) : out;
    }
    case STRING_TAGS.UniversalString: {
      const out = utf32(broken ? [...points, r.pick([0x110000, 0xd800, 0x7fffffff])] : points);
      return broken && r.chance(0.5) ? out.slice(0, -1) : out;
    }
    default:
      // One byte per character: ASCII mostly, Latin-1 (what T61 means in practice) and controls too.
      return points.map((p) => (broken || tag === STRING_TAGS.TeletexString ? p & 0xff : p & 0x7f));
  }
}

/** An attribute value: a string of any type; with `enc.broken`, now and then invalid or no string at all. */
function attributeValue(r: Rng, enc: Encoder): Buffer {
  if (r.chance(enc.broken / 3))
    return r.pick([seq(), der(0x02, [1]), der(0x04, 'alice'), der(0x05), der(0x01, [0xff])]);
  // Mostly the four types the reader takes; Numeric, T61 and IA5 too; the types OpenSSL refuses in a
  // Name (Videotex, Graphic, Visible, General) only with the invalid values.
  const { NumericString, TeletexString, IA5String } = STRING_TAGS;
  const tag = r.chance(enc.broken)
    ? r.pick(Object.values(STRING_TAGS))
    : r.pick([0x0c, 0x0c, 0x0c, 0x13, 0x13, 0x1c, 0x1c, 0x1e, 0x1e, NumericString, TeletexString, IA5String]);
  return enc.string(tag, stringValue(r, tag, enc.broken));
}

/** Writes elements in DER, or (with probability `p` each) in a BER form OpenSSL also reads. */
class Encoder {
  constructor(
    private readonly r: Rng,
    /** How often an element is written in a BER form rather than DER. */
    private readonly p: number,
    /** How often a value is not valid in its string type. */
    readonly broken: number,
  ) {}

  private head(tag: number, length: number): number[] {
    const r = this.r;
    const t = this.p && r.chance(this.p) && (tag & 0x1f) < 0x1f ? [tag | 0x1f, tag & 0x1f] : [tag];
    if (!this.p || !r.chance(this.p)) return [...t, ...lengthBytes(length)];
    // Long form with leading zeros: 1 to 6 length bytes.
    const minimal = lengthBytes(length);
    const body = minimal.length === 1 ? minimal : minimal.slice(1);
    const zeros = Array<number>(r.int(6 - body.length)).fill(0);
    return [...t, 0x80 | (zeros.length + body.length), ...zeros, ...body];
  }

  constructed(tag: number, ...parts: Bytes[]): Buffer {
    const content = bytesOf(parts);
    if (this.p && this.r.chance(this.p / 2))
      return Buffer.concat([Buffer.from([tag, 0x80]), content, Buffer.from([0, 0])]);
    return Buffer.concat([Buffer.from(this.head(tag, content.length)), content]);
  }

  string(tag: number, value: number[]): Buffer {
    if (this.p && value.length > 1 && this.r.chance(this.p)) {
      // A constructed string: the value in two primitive pieces.
      const cut = this.r.int(value.length);
      return this.constructed(tag | 0x20, der(tag, value.slice(0, cut)), der(tag, value.slice(cut)));
    }
    return Buffer.concat([Buffer.from(this.head(tag, value.length)), Buffer.from(value)]);
  }
}

const CN = [0x55, 4, 3];
const O = [0x55, 4, 10];

/**
 * One random Name: mostly shaped like a client's (a CN, then groups and other attributes, one a RDN),
 * otherwise any attributes in any RDNs, now and then hundreds; then perhaps some bytes mutated.
 */
export function randomName(r: Rng): Buffer {
  const mode = r.chance(0.5) ? 0 : 1 + r.int(3); // DER and valid values; BER forms, invalid values, both
  const enc = new Encoder(r, mode & 1 ? 0.1 : 0, mode & 2 ? 0.2 : 0);
  const atv = (type: number[]) => {
    // 2.5.4.3 with a padding byte is no OID (OpenSSL refuses it); read as CN, it would be a second one.
    const oid = enc.broken && r.chance(0.1) ? [0x55, 4, 0x80, 3] : type;
    return enc.constructed(0x30, enc.constructed(0x06, oid), attributeValue(r, enc));
  };
  const rdns: Buffer[] = [];
  if (r.chance(0.6)) {
    rdns.push(enc.constructed(0x31, atv(CN)));
    for (let n = r.int(5); n > 0; n--)
      rdns.splice(
        r.int(rdns.length + 1),
        0,
        enc.constructed(0x31, atv(r.chance(0.7) ? O : r.pick(ATTRIBUTE_TYPES))),
      );
  } else {
    const count = r.chance(0.05) ? 100 + r.int(400) : r.int(7);
    for (let i = 0; i < count; i++) {
      const values = r.chance(0.8) ? 1 : r.pick([0, 2, 3]);
      rdns.push(enc.constructed(0x31, ...Array.from({ length: values }, () => atv(r.pick(ATTRIBUTE_TYPES)))));
    }
  }
  const name = [...enc.constructed(0x30, ...rdns)];
  if (mode && r.chance(0.2)) {
    for (let n = 1 + r.int(3); n > 0; n--) {
      const at = r.int(name.length);
      switch (r.int(4)) {
        case 0:
          name[at] = r.int(256);
          break;
        case 1:
          name.splice(at, 1);
          break;
        case 2:
          name.splice(at, 0, r.int(256));
          break;
        default:
          name[at] = name[at]! ^ (1 << r.int(8));
      }
    }
  }
  return Buffer.from(name);
}

const ECDSA_SHA256 = seq(oid(0x2a, 0x86, 0x48, 0xce, 0x3d, 4, 3, 2));
const VALIDITY = seq(der(0x17, '200101000000Z'), der(0x17, '491231235959Z'));
const FUZZ_CA_NAME = seq(der(0x31, seq(oid(0x55, 4, 3), der(0x0c, 'fuzz CA'))));
const basicConstraints = (ca: boolean) =>
  seq(oid(0x55, 29, 19), der(0x01, [0xff]), der(0x04, seq(...(ca ? [der(0x01, [0xff])] : []))));
const extendedKeyUsage = (...purposes: number[]) =>
  seq(oid(0x55, 29, 37), der(0x04, seq(...purposes.map((p) => oid(0x2b, 6, 1, 5, 5, 7, 3, p)))));
export const SERVER_AUTH = 1;
export const CLIENT_AUTH = 2;

const spkis = new WeakMap<KeyObject, Buffer>();
function spki(key: KeyObject): Buffer {
  let der = spkis.get(key);
  if (!der) spkis.set(key, (der = key.export({ type: 'spki', format: 'der' })));
  return der;
}

/** A throwaway CA (ECDSA P-256) that signs certificates with any subject bytes, as DER. */
export class FuzzCa {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly certPem: string;
  private serial = 1;

  constructor() {
    ({ privateKey: this.privateKey, publicKey: this.publicKey } = generateKeyPairSync('ec', {
      namedCurve: 'P-256',
    }));
    this.certPem = new X509Certificate(
      this.certificate(FUZZ_CA_NAME, this.publicKey, [basicConstraints(true)]),
    ).toString();
  }

  /** A v3 certificate for `subject` (DER Name bytes, used as they are) and `key`, signed by this CA. */
  certificate(subject: Buffer, key: KeyObject, extensions: Buffer[] = []): Buffer {
    const tbs = seq(
      der(0xa0, der(0x02, [2])),
      der(0x02, [this.serial++ & 0x7f || 1]),
      ECDSA_SHA256,
      FUZZ_CA_NAME,
      VALIDITY,
      subject,
      spki(key),
      ...(extensions.length ? [der(0xa3, seq(...extensions))] : []),
    );
    return seq(tbs, ECDSA_SHA256, der(0x03, [0], sign('sha256', tbs, this.privateKey)));
  }

  /** A certificate (not a CA; clientAuth unless told) for `subject`, and its key, as PEM. */
  leaf(subject: Buffer, purposes = [CLIENT_AUTH]): { certPem: string; keyPem: string } {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const cert = this.certificate(subject, publicKey, [
      basicConstraints(false),
      extendedKeyUsage(...purposes),
    ]);
    return {
      certPem: new X509Certificate(cert).toString(),
      keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    };
  }
}

/** A PKCS#10 request for `subject` (DER Name bytes, as they are), self-signed by `key`; `attributes` as given. */
export function csrPem(
  subject: Buffer,
  key: { privateKey: KeyObject; publicKey: KeyObject },
  attributes: Buffer[] = [],
): string {
  const info = seq(der(0x02, [0]), subject, spki(key.publicKey), der(0xa0, ...attributes));
  const body = seq(info, ECDSA_SHA256, der(0x03, [0], sign('sha256', info, key.privateKey)));
  const lines = body
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n');
  return `-----BEGIN CERTIFICATE REQUEST-----\n${lines}\n-----END CERTIFICATE REQUEST-----\n`;
}

/** An extensionRequest attribute asking for `extensions`. */
export const extensionRequest = (...extensions: Buffer[]) =>
  seq(oid(0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 9, 14), der(0x31, seq(...extensions)));
export const requestedExtensions = {
  caTrue: basicConstraints(true),
  serverAuth: extendedKeyUsage(SERVER_AUTH, CLIENT_AUTH),
  dnsName: (name: string) => seq(oid(0x55, 29, 17), der(0x04, seq(der(0x82, name)))),
};

export interface OpenSslEntry {
  /** OpenSSL's short name (CN, O, OU…) or the dotted OID. */
  type: string;
  value: string;
}

/**
 * The subject as OpenSSL reads it: its RDNs in order, each with its attributes, values converted to
 * UTF-8 by OpenSSL. Read from Node's `subject` text (X509_NAME_print_ex: one RDN a line, ` + ` between
 * the attributes of one RDN, RFC 2253 specials escaped with `\`, controls as `\XX`), unescaped exactly.
 */
export function opensslRdns(cert: X509Certificate): OpenSslEntry[][] {
  const text = cert.subject;
  if (!text) return [];
  return text.split('\n').map((line) => {
    const entries: OpenSslEntry[] = [];
    let at = 0;
    while (at <= line.length) {
      const eq = line.indexOf('=', at);
      if (eq < 0) throw new Error(`unexpected subject text ${JSON.stringify(text)}`);
      const type = line.slice(at, eq);
      const value: number[] = [];
      for (at = eq + 1; at < line.length && !line.startsWith(' + ', at);) {
        if (line[at] === '\\' && /^[0-9A-F]{2}$/.test(line.slice(at + 1, at + 3))) {
          value.push(parseInt(line.slice(at + 1, at + 3), 16));
          at += 3;
        } else {
          const c = line[at] === '\\' ? at + 1 : at;
          const ch = String.fromCodePoint(line.codePointAt(c)!);
          value.push(...Buffer.from(ch, 'utf8'));
          at = c + ch.length;
        }
      }
      entries.push({ type, value: Buffer.from(value).toString('utf8') });
      at += 3;
    }
    return entries;
  });
}
