// Certificate subjects as ASN.1 structures, never as DN strings. A person's name and groups go into
// the subject as one RDN per value (CN = user, O = each group), each a UTF8String, and come back out by
// walking the same structure: a name with `,`, `+`, `=`, `\`, `"`, `#`, a leading space or any Unicode
// is just bytes in one attribute, so no escaping rule can be got wrong on either side. The CSR signer
// re-reads what it issued with the very function the agent reads client certificates with.
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  AttributeTypeAndValue,
  AttributeValue,
  Certificate,
  Name,
  RelativeDistinguishedName,
} from '@peculiar/asn1-x509';
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

/** The subject of a DER certificate (e.g. `PeerCertificate.raw`). */
export function certificateSubject(der: Uint8Array): Subject {
  let cert: Certificate;
  try {
    cert = AsnConvert.parse(der, Certificate);
  } catch (err) {
    throw invalid(`not a DER X.509 certificate (${(err as Error).message})`);
  }
  return readSubject(cert.tbsCertificate.subject);
}

export function sameSubject(a: Subject, b: Subject): boolean {
  return (
    a.commonName === b.commonName &&
    a.organizations.length === b.organizations.length &&
    a.organizations.every((o, i) => o === b.organizations[i])
  );
}
