// Certificate subjects as ASN.1 structures, never as DN strings. A person's name and groups go into
// the subject as one RDN per value (CN = user, O = each group), each a UTF8String, and come back out by
// walking the same structure: a name with `,`, `+`, `=`, `\`, `"`, `#`, a leading space or any Unicode
// is just bytes in one attribute, so no escaping rule can be got wrong on either side. The CSR signer
// re-reads what it issued with the very function the agent reads client certificates with.
import { AsnConvert } from '@peculiar/asn1-schema';
import { AttributeTypeAndValue, AttributeValue, Name, RelativeDistinguishedName } from '@peculiar/asn1-x509';
import { DrawbridgeError } from '../errors.js';

const OID_CN = '2.5.4.3';
const OID_O = '2.5.4.10';

export interface Subject {
  commonName: string;
  organizations: string[];
}

const rdn = (type: string, value: string) =>
  new RelativeDistinguishedName([
    new AttributeTypeAndValue({ type, value: new AttributeValue({ utf8String: value }) }),
  ]);

/** `CN=user, O=group…`, one single-valued RDN each, as an ASN.1 Name. */
export function subjectName(subject: Subject): Name {
  return new Name([rdn(OID_CN, subject.commonName), ...subject.organizations.map((o) => rdn(OID_O, o))]);
}

function invalid(message: string): DrawbridgeError {
  return new DrawbridgeError(
    'AUTHN_FAILED',
    `certificate subject: ${message}`,
    'get a certificate from kubectl db login NAME',
  );
}

/** The text of a CN or O value; only string types with one meaning for their bytes are accepted. */
function text(attr: AttributeTypeAndValue): string {
  const v = attr.value;
  const s = v.utf8String ?? v.printableString ?? v.bmpString ?? v.universalString;
  if (s === undefined)
    throw invalid(`attribute ${attr.type} is not a UTF8, Printable, BMP or Universal string`);
  return s;
}

/**
 * CN and O values of a Name, read from its structure. Refused: a multi-valued RDN naming CN or O (its
 * parts are unordered), and anything but exactly one CN.
 */
export function readSubject(name: Name): Subject {
  const names: string[] = [];
  const organizations: string[] = [];
  for (const entry of name) {
    for (const attr of entry) {
      if (attr.type !== OID_CN && attr.type !== OID_O) continue;
      if (entry.length !== 1) throw invalid('CN and O must each be an RDN of their own');
      (attr.type === OID_CN ? names : organizations).push(text(attr));
    }
  }
  if (names.length !== 1)
    throw invalid(`needs exactly one common name (CN = user name), has ${names.length}`);
  return { commonName: names[0]!, organizations };
}

const SEQUENCE = 0x30;
const INTEGER = 0x02;
const EXPLICIT_0 = 0xa0;

/** One DER element at `at` (tag, content start, end), refused unless it has `tag` and fits in `limit`. */
function element(der: Uint8Array, at: number, limit: number, tag: number) {
  if (at + 2 > limit || der[at] !== tag) throw invalid('not a DER X.509 certificate');
  let length = der[at + 1]!;
  let start = at + 2;
  if (length & 0x80) {
    // Long form: 1 to 4 length bytes (DER has no indefinite length).
    const bytes = length & 0x7f;
    if (bytes === 0 || bytes > 4 || start + bytes > limit) throw invalid('not a DER X.509 certificate');
    length = 0;
    for (let i = 0; i < bytes; i++) length = length * 256 + der[start + i]!;
    start += bytes;
  }
  if (start + length > limit) throw invalid('not a DER X.509 certificate (truncated)');
  return { start, end: start + length };
}

/**
 * The subject of a DER certificate (e.g. `PeerCertificate.raw`). Only the subject Name is decoded: the
 * fields before it are stepped over by their DER headers (each must carry the tag X.509 gives it).
 * Mapping the whole certificate (extensions, key, signature) into objects took ~230 µs of CPU and tens
 * of KB of garbage per read, ~4x the subject alone; OpenSSL has already parsed and verified the rest.
 */
export function certificateSubject(der: Uint8Array): Subject {
  const cert = element(der, 0, der.length, SEQUENCE);
  if (cert.end !== der.length) throw invalid('not a DER X.509 certificate (trailing bytes)');
  const tbs = element(der, cert.start, cert.end, SEQUENCE);
  let at = tbs.start;
  if (der[at] === EXPLICIT_0) at = element(der, at, tbs.end, EXPLICIT_0).end; // version
  at = element(der, at, tbs.end, INTEGER).end; // serialNumber
  at = element(der, at, tbs.end, SEQUENCE).end; // signature algorithm
  at = element(der, at, tbs.end, SEQUENCE).end; // issuer
  at = element(der, at, tbs.end, SEQUENCE).end; // validity
  const subject = element(der, at, tbs.end, SEQUENCE);
  let name: Name;
  try {
    name = AsnConvert.parse(der.subarray(at, subject.end), Name);
  } catch (err) {
    throw invalid(`the subject is not a DER Name (${(err as Error).message})`);
  }
  return readSubject(name);
}

export function sameSubject(a: Subject, b: Subject): boolean {
  return (
    a.commonName === b.commonName &&
    a.organizations.length === b.organizations.length &&
    a.organizations.every((o, i) => o === b.organizations[i])
  );
}
