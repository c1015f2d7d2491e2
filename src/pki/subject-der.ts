// Reading a certificate's subject (CN = user, O = each group) straight from its DER bytes, which is what
// the agent does for every client certificate (src/authn/identity.ts) and the CSR signer for each CSR
// and for what it issues. Each string type is decoded strictly by its own encoding: a value that is not valid in it is
// refused, never read as some other name. A decoder that kept the low 16 bits of a UniversalString's
// characters read U+10061 "lice" as "alice", and one that read invalid UTF-8 as Latin-1 gave a second
// spelling of a name; a CA the agent trusts (clientCAFile) could issue such a subject to someone else.
// test/unit/pki/subject-openssl.test.ts compares this reading with OpenSSL's for random subjects.
import { DrawbridgeError } from '../errors.js';

export interface Subject {
  commonName: string;
  organizations: string[];
}

function invalid(message: string): DrawbridgeError {
  return new DrawbridgeError(
    'AUTHN_FAILED',
    `certificate subject: ${message}`,
    'get a certificate from kubectl db login NAME',
  );
}

const SEQUENCE = 0x30;
const SET = 0x31;
const INTEGER = 0x02;
const OID = 0x06;
const EXPLICIT_0 = 0xa0;
const UTF8_STRING = 0x0c;
const PRINTABLE_STRING = 0x13;
const UNIVERSAL_STRING = 0x1c;
const BMP_STRING = 0x1e;
/** The DER contents of the OIDs 2.5.4.3 (commonName) and 2.5.4.10 (organizationName). */
const CN = [0x55, 0x04, 0x03];
const O = [0x55, 0x04, 0x0a];

/** One DER element at `at` (its tag, content start, end), refused unless it fits in `limit`. */
function header(der: Uint8Array, at: number, limit: number, what: string) {
  if (at + 2 > limit) throw invalid(`not a DER ${what}`);
  const tag = der[at]!;
  let length = der[at + 1]!;
  let start = at + 2;
  if (length & 0x80) {
    // Long form: 1 to 4 length bytes (DER has no indefinite length).
    const bytes = length & 0x7f;
    if (bytes === 0 || bytes > 4 || start + bytes > limit) throw invalid(`not a DER ${what}`);
    length = 0;
    for (let i = 0; i < bytes; i++) length = length * 256 + der[start + i]!;
    start += bytes;
  }
  if (start + length > limit) throw invalid(`not a DER ${what} (truncated)`);
  return { tag, start, end: start + length };
}

/** header(), refused unless the element has `tag`. */
function element(der: Uint8Array, at: number, limit: number, tag: number, what: string) {
  const e = header(der, at, limit, what);
  if (e.tag !== tag) throw invalid(`not a DER ${what}`);
  return e;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The text of a CN or O value, each string type decoded by its own encoding; anything else refused. */
function text(bytes: Uint8Array, tag: number, type: string): string {
  const refuse = (kind: string) => invalid(`attribute ${type} is not a valid ${kind}`);
  switch (tag) {
    case UTF8_STRING:
      try {
        return utf8.decode(bytes);
      } catch {
        throw refuse('UTF8String');
      }
    case PRINTABLE_STRING:
      if (bytes.some((b) => b < 0x20 || b > 0x7e)) throw refuse('PrintableString');
      return String.fromCharCode(...bytes);
    case BMP_STRING: {
      // UCS-2: one 16-bit character each, so no surrogates.
      if (bytes.length % 2) throw refuse('BMPString');
      const units: number[] = [];
      for (let i = 0; i < bytes.length; i += 2) units.push((bytes[i]! << 8) | bytes[i + 1]!);
      if (units.some((u) => u >= 0xd800 && u <= 0xdfff)) throw refuse('BMPString');
      return String.fromCharCode(...units);
    }
    case UNIVERSAL_STRING: {
      // UCS-4: one 32-bit code point each, within Unicode and not a surrogate.
      if (bytes.length % 4) throw refuse('UniversalString');
      const points: number[] = [];
      for (let i = 0; i < bytes.length; i += 4) {
        const p = ((bytes[i]! << 24) | (bytes[i + 1]! << 16) | (bytes[i + 2]! << 8) | bytes[i + 3]!) >>> 0;
        if (p > 0x10ffff || (p >= 0xd800 && p <= 0xdfff)) throw refuse('UniversalString');
        points.push(p);
      }
      return String.fromCodePoint(...points);
    }
    default:
      throw invalid(`attribute ${type} is not a UTF8, Printable, BMP or Universal string`);
  }
}

const isOid = (der: Uint8Array, start: number, end: number, oid: number[]) =>
  end - start === oid.length && oid.every((b, i) => der[start + i] === b);

/**
 * CN and O values of the DER Name at `at` in `der` (within `limit`), read from its structure. Refused:
 * a multi-valued RDN naming CN or O (its parts are unordered), and anything but exactly one CN.
 */
export function subjectFromDer(der: Uint8Array, at = 0, limit = der.length): Subject {
  const { start, end } = element(der, at, limit, SEQUENCE, 'Name');
  const names: string[] = [];
  const organizations: string[] = [];
  for (at = start; at < end;) {
    const rdn = element(der, at, end, SET, 'Name');
    let entries = 0;
    let named = false;
    for (let p = rdn.start; p < rdn.end; entries++) {
      const atv = element(der, p, rdn.end, SEQUENCE, 'Name');
      const oid = element(der, atv.start, atv.end, OID, 'Name');
      const value = header(der, oid.end, atv.end, 'Name');
      if (value.end !== atv.end) throw invalid('not a DER Name');
      const cn = isOid(der, oid.start, oid.end, CN);
      if (cn || isOid(der, oid.start, oid.end, O)) {
        named = true;
        const type = cn ? '2.5.4.3' : '2.5.4.10';
        (cn ? names : organizations).push(text(der.subarray(value.start, value.end), value.tag, type));
      }
      p = atv.end;
    }
    if (named && entries !== 1) throw invalid('CN and O must each be an RDN of their own');
    at = rdn.end;
  }
  if (names.length !== 1)
    throw invalid(`needs exactly one common name (CN = user name), has ${names.length}`);
  return { commonName: names[0]!, organizations };
}

/**
 * The subject of a DER certificate (e.g. `PeerCertificate.raw`). Only the subject Name is decoded: the
 * fields before it are stepped over by their DER headers (each must carry the tag X.509 gives it).
 * OpenSSL has already parsed and verified the rest; mapping the whole certificate into objects took
 * ~230 µs of CPU and tens of KB of garbage per read.
 */
export function certificateSubject(der: Uint8Array): Subject {
  const tbs = signedPart(der, 'X.509 certificate');
  let at = tbs.start;
  const skip = (tag: number) => (at = element(der, at, tbs.end, tag, 'X.509 certificate').end);
  if (der[at] === EXPLICIT_0) skip(EXPLICIT_0); // version
  skip(INTEGER); // serialNumber
  skip(SEQUENCE); // signature algorithm
  skip(SEQUENCE); // issuer
  skip(SEQUENCE); // validity
  return subjectFromDer(der, at, tbs.end);
}

/**
 * The subject of a DER PKCS#10 request, read from the request's own bytes: a library's re-encoding of
 * them kept 16 bits of each UniversalString character. Its signature is checked when it is signed.
 */
export function csrSubject(der: Uint8Array): Subject {
  const info = signedPart(der, 'PKCS#10 request');
  const version = element(der, info.start, info.end, INTEGER, 'PKCS#10 request');
  return subjectFromDer(der, version.end, info.end);
}

/** The signed part of a DER certificate or CSR: the first element of its SEQUENCE, which nothing may trail. */
function signedPart(der: Uint8Array, what: string) {
  const outer = element(der, 0, der.length, SEQUENCE, what);
  if (outer.end !== der.length) throw invalid(`not a DER ${what} (trailing bytes)`);
  return element(der, outer.start, outer.end, SEQUENCE, what);
}

export function sameSubject(a: Subject, b: Subject): boolean {
  return (
    a.commonName === b.commonName &&
    a.organizations.length === b.organizations.length &&
    a.organizations.every((o, i) => o === b.organizations[i])
  );
}
