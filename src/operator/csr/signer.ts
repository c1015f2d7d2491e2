// Approves or denies, then signs, CertificateSigningRequests for signerName drawbridge.dev/database-client.
// Like cert-manager's CA issuer, it classifies outcomes where they happen: a request that may never be
// signed is Denied (or Failed, when someone else approved it) with a reason and stays that way; API
// conflicts and network errors are retried; finished requests are left alone.
//
// Outcomes (see controller.ts): resolves when the CSR is decided or not ours; throws (retried with
// backoff) when an API write fails.
import type { Logger } from '../../log.js';
import { type KeyPairPem, certificateDer, signCsr } from '../../pki/ca.js';
import { type Subject, certificateSubject, sameSubject } from '../../pki/subject-der.js';
import { errorMessage } from '../../errors.js';
import type { Reconciler } from '../controller.js';
import type { EventSink } from '../events.js';
import { type KubeObject, metaTime } from '../../kube/types.js';
import type { ObjectCache, ObjectWriter } from '../../kube/writer.js';
import { SIGNER_NAME } from '../names.js';
import {
  type AccessSource,
  CSR_REASON,
  type CsrDecision,
  type CsrReason,
  type CsrRequest,
  decideCsr,
} from './decide.js';

interface CsrCondition {
  type: 'Approved' | 'Denied' | 'Failed';
  status: 'True' | 'False';
  reason?: string;
  message?: string;
  lastUpdateTime?: string;
  lastTransitionTime?: string;
}

type Csr = KubeObject & {
  spec: {
    signerName: string;
    request: string;
    username?: string;
    groups?: string[];
    usages?: string[];
    expirationSeconds?: number;
  };
  status?: { conditions?: CsrCondition[]; certificate?: string };
};

export interface CsrSignerDeps {
  csrs: ObjectCache;
  access: AccessSource;
  writer: ObjectWriter;
  events: EventSink;
  ca: () => KeyPairPem;
  log: Logger;
  /** Issues the certificate; signCsr unless a test swaps it. */
  sign?: typeof signCsr;
}

function csrRequest(csr: Csr): CsrRequest {
  return {
    username: csr.spec.username ?? '',
    groups: csr.spec.groups ?? [],
    requestPem: Buffer.from(csr.spec.request, 'base64').toString('utf8'),
    expirationSeconds: csr.spec.expirationSeconds,
    usages: csr.spec.usages ?? [],
    annotations: csr.metadata.annotations ?? {},
  };
}

export class CsrSigner implements Reconciler {
  readonly name = 'csr-signer';

  constructor(private readonly deps: CsrSignerDeps) {}

  async reconcile(name: string): Promise<void> {
    let csr = this.deps.csrs.get(name) as Csr | undefined;
    if (!csr || csr.spec.signerName !== SIGNER_NAME || csr.status?.certificate) return;
    const conditions = csr.status?.conditions ?? [];
    const has = (t: CsrCondition['type']) => conditions.some((c) => c.type === t && c.status === 'True');
    if (has('Denied') || has('Failed')) return;

    const decision = decideCsr(csrRequest(csr), this.deps.access);
    const who = { csr: name, user: csr.spec.username };
    if (!decision.approved) {
      // An approval by someone else does not make an unauthorised certificate acceptable: fail it.
      await this.setCondition(csr, has('Approved') ? 'Failed' : 'Denied', decision);
      this.deps.events.record(csr, 'Warning', decision.reason, decision.message);
      this.deps.log.info({ ...who, reason: decision.reason, message: decision.message }, 'CSR denied');
      return;
    }
    if (!has('Approved')) csr = (await this.setCondition(csr, 'Approved', decision)) as Csr;

    let certPem: string;
    try {
      certPem = await (this.deps.sign ?? signCsr)(this.deps.ca(), csrRequest(csr).requestPem, {
        validSeconds: decision.validSeconds,
        usage: 'client',
        subject: decision.subject,
      });
    } catch (err) {
      return this.fail(csr, CSR_REASON.SigningFailed, errorMessage(err));
    }
    // The agent reads CN/O back with certificateSubject: hand out only what reads back as approved.
    const issued = readIssued(certPem);
    if (!issued.ok || !sameSubject(issued.subject, decision.subject)) {
      const got = issued.ok ? JSON.stringify(issued.subject) : issued.error;
      return this.fail(
        csr,
        CSR_REASON.IssuedSubjectMismatch,
        `the issued certificate reads back as ${got}, not the approved ${JSON.stringify(decision.subject)}; ` +
          'it was not handed out (a bug in the signer: report it)',
      );
    }
    await this.deps.writer.replace(
      { ...csr, status: { ...csr.status, certificate: Buffer.from(certPem).toString('base64') } },
      'status',
    );
    this.deps.events.record(csr, 'Normal', 'Issued', decision.message);
    this.deps.log.info({ ...who, validSeconds: decision.validSeconds }, 'CSR approved and signed');
  }

  private async fail(csr: Csr, reason: CsrReason, message: string): Promise<void> {
    await this.setCondition(csr, 'Failed', { approved: false, reason, message });
    this.deps.events.record(csr, 'Warning', reason, message);
    this.deps.log.warn({ csr: csr.metadata.name, reason, message }, 'CSR failed');
  }

  /** Approved/Denied go through the approval subresource, Failed through status (the API's rules). */
  private setCondition(csr: Csr, type: CsrCondition['type'], decision: CsrDecision): Promise<KubeObject> {
    const now = metaTime();
    const condition: CsrCondition = {
      type,
      status: 'True',
      reason: decision.reason,
      message: decision.message,
      lastUpdateTime: now,
      lastTransitionTime: now,
    };
    const status = { ...csr.status, conditions: [...(csr.status?.conditions ?? []), condition] };
    return this.deps.writer.replace({ ...csr, status }, type === 'Failed' ? 'status' : 'approval');
  }
}

function readIssued(certPem: string): { ok: true; subject: Subject } | { ok: false; error: string } {
  try {
    return { ok: true, subject: certificateSubject(certificateDer(certPem)) };
  } catch (err) {
    return { ok: false, error: errorMessage(err) };
  }
}
