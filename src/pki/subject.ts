// Certificate subjects as ASN.1 structures, never as DN strings. A person's name and groups go into
// the subject as one RDN per value (CN = user, O = each group), each a UTF8String, and come back out by
// walking the same structure: a name with `,`, `+`, `=`, `\`, `"`, `#`, a leading space or any Unicode
// is just bytes in one attribute, so no escaping rule can be got wrong on either side. The CSR signer
// re-reads what it issued with the very function the agent reads client certificates with
// (./subject-der.ts, from the DER; the agent imports it alone: it needs no ASN.1 library).
import { AttributeTypeAndValue, AttributeValue, Name, RelativeDistinguishedName } from '@peculiar/asn1-x509';
import type { Subject } from './subject-der.js';

export { type Subject, certificateSubject, sameSubject } from './subject-der.js';

const OID_CN = '2.5.4.3';
const OID_O = '2.5.4.10';

const rdn = (type: string, value: string) =>
  new RelativeDistinguishedName([
    new AttributeTypeAndValue({ type, value: new AttributeValue({ utf8String: value }) }),
  ]);

/** `CN=user, O=group…`, one single-valued RDN each, as an ASN.1 Name. */
export function subjectName(subject: Subject): Name {
  return new Name([rdn(OID_CN, subject.commonName), ...subject.organizations.map((o) => rdn(OID_O, o))]);
}
