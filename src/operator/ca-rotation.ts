// Rotation of the Drawbridge CA, as a function of the CA Secret alone (its data and one annotation), so
// a controller that crashes between steps finds the same answer on its next start. Three phases, each a
// shape of the Secret's data:
//   standby  tls.crt/tls.key sign; the trust bundle is that one CA.
//   init     next.crt/next.key wait: trusted everywhere (agents, kubectl db logins), not signing yet,
//            so no verifier meets a certificate from it before it trusts it.
//   update   the new CA signs (logins, agent serving certificates); previous.crt, the old one, is still
//            trusted — its key is gone — so certificates it issued keep working until they expire.
// `standby` again drops previous.crt: from then on a certificate from the old CA is refused.
// An operator asks for a phase with the annotation; the controller moves one step at a time.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { KeyPairPem } from '../pki/ca.js';
import { GROUP } from '../api/runtime.js';

/** Set by the operator on Secret drawbridge-ca: the phase wanted. */
export const ANNOTATION_CA_ROTATION = `${GROUP}/ca-rotation`;
/** Set by the controller on ConfigMap drawbridge-ca: the phase reached, and why a request waits. */
export const ANNOTATION_CA_PHASE = `${GROUP}/ca-rotation-phase`;
export const ANNOTATION_CA_MESSAGE = `${GROUP}/ca-rotation-message`;

export const PHASES = ['standby', 'init', 'update'] as const;
export type Phase = (typeof PHASES)[number];

export interface CaState {
  /** Signs client and agent serving certificates. */
  signing: KeyPairPem;
  /** init: the CA that will sign after update. */
  next?: KeyPairPem;
  /** update: the CA that signed before, trusted until standby. */
  previous?: string;
}

type SecretData = Record<string, string | undefined>;

const text = (s: string | undefined) => (s ? Buffer.from(s, 'base64').toString('utf8') : '');
const b64 = (s: string) => Buffer.from(s).toString('base64');

/** The state in a CA Secret's `data`; throws naming the fix when its signing pair is missing. */
export function caState(data: SecretData | undefined, where: string): CaState {
  const signing = { certPem: text(data?.['tls.crt']), keyPem: text(data?.['tls.key']) };
  if (!signing.certPem || !signing.keyPem) {
    throw new Error(`${where} lacks tls.crt or tls.key; delete it to let the controller create a new CA`);
  }
  const next = { certPem: text(data?.['next.crt']), keyPem: text(data?.['next.key']) };
  const previous = text(data?.['previous.crt']);
  // A half-written or mismatched pair (a hand edit) is no CA: ignored, so init makes a whole one again
  // rather than update making it the signing pair, whose every certificate would then fail to verify.
  const whole = isCaPair(next);
  return { signing, ...(whole ? { next } : {}), ...(previous && !whole ? { previous } : {}) };
}

function isCaPair({ certPem, keyPem }: KeyPairPem): boolean {
  if (!certPem || !keyPem) return false;
  try {
    const cert = new X509Certificate(certPem);
    return cert.ca && cert.checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

export function phaseOf(state: CaState): Phase {
  return state.next ? 'init' : state.previous ? 'update' : 'standby';
}

/** Every CA a verifier must accept now, the signing one first. */
export function trustBundle(state: CaState): string {
  const others = [state.next?.certPem, state.previous].filter((p): p is string => !!p);
  // Alone, the signing CA's PEM as stored: agents' Secrets made before rotations existed stay as they are.
  if (!others.length) return state.signing.certPem;
  return [state.signing.certPem, ...others].map((p) => (p.endsWith('\n') ? p : `${p}\n`)).join('');
}

export type Step =
  | { kind: 'none' }
  /** The request cannot be followed from this phase; `message` says what to do. */
  | { kind: 'refuse'; message: string }
  /** Merge-patch `data` (null removes a key); `newCA` must fill next.crt/next.key first. */
  | { kind: 'write'; to: Phase; data: Record<string, string | null>; newCA: boolean; message: string };

const HOW = `set annotation ${ANNOTATION_CA_ROTATION} to init, then update, then standby`;

/** What the phase means and what to do next: the ConfigMap's message, and the Event of a step to it. */
export function describe(phase: Phase): string {
  switch (phase) {
    case 'standby':
      return `one CA signs and is trusted; to rotate it, ${HOW}`;
    case 'init':
      return (
        'a new CA is trusted next to the current one, which still signs. Once the agents have rolled ' +
        `(kubectl get databases -A: Ready), set ${ANNOTATION_CA_ROTATION}=update`
      );
    case 'update':
      return (
        'the new CA signs logins and agent serving certificates; the old one is still trusted, its key is ' +
        'deleted. Once certificates from the old CA have expired (the longest AccessRole maxSessionTTL), ' +
        `set ${ANNOTATION_CA_ROTATION}=standby to stop trusting it`
      );
  }
}

/** The next step towards the requested phase (or none), from what the Secret holds. */
export function nextStep(state: CaState, requested: string | undefined): Step {
  const from = phaseOf(state);
  if (requested === undefined || requested === from) return { kind: 'none' };
  if (!(PHASES as readonly string[]).includes(requested)) {
    return { kind: 'refuse', message: `unknown phase "${requested}": ${HOW}` };
  }
  const to = requested as Phase;
  const write = (
    data: Extract<Step, { kind: 'write' }>['data'],
    message = describe(to),
    newCA = false,
  ): Step => ({
    kind: 'write',
    to,
    data,
    newCA,
    message,
  });
  if (from === 'standby' && to === 'init') return write({}, undefined, true);
  if (from === 'init' && to === 'update') {
    return write({
      'tls.crt': b64(state.next!.certPem),
      'tls.key': b64(state.next!.keyPem),
      'previous.crt': b64(state.signing.certPem),
      'next.crt': null,
      'next.key': null,
    });
  }
  if (from === 'init' && to === 'standby') {
    const cancelled =
      'rotation cancelled: the new CA, which signed nothing, is deleted and no longer trusted';
    return write({ 'next.crt': null, 'next.key': null }, cancelled);
  }
  if (from === 'update' && to === 'standby') {
    return write(
      { 'previous.crt': null },
      'rotation complete: the old CA is no longer trusted; certificates it issued are refused',
    );
  }
  // standby → update skips init (verifiers would meet certificates of a CA they do not trust yet);
  // update → init would need the old key, deleted at update.
  const fix =
    from === 'standby'
      ? `set ${ANNOTATION_CA_ROTATION}=init first and wait for the agents to roll`
      : `finish this rotation with ${ANNOTATION_CA_ROTATION}=standby, then start another with init`;
  return { kind: 'refuse', message: `cannot go from phase ${from} to ${to}: ${fix}` };
}
