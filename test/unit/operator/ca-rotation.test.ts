// The CA rotation's phases as a function of the CA Secret: each request moves one step, a repeated
// one (a controller that crashed after writing) moves none, jumps are refused with the fix, and the
// trust bundle holds the old CA exactly until standby.
import { X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { type CaState, caState, nextStep, phaseOf, trustBundle } from '../../../src/operator/ca-rotation.js';
import { servingCert } from '../../../src/operator/database/serving-cert.js';
import { type KeyPairPem, createCA, issueCertificate } from '../../../src/pki/ca.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');
let old: KeyPairPem;
let fresh: KeyPairPem;

beforeAll(async () => {
  [old, fresh] = await Promise.all([createCA({ commonName: 'old CA' }), createCA({ commonName: 'new CA' })]);
});

type Data = Record<string, string>;

/** What the CaReconciler does with a step: a merge patch of the Secret's data. */
function apply(data: Data, requested: string): Data {
  const step = nextStep(caState(data, 'Secret x/y'), requested);
  if (step.kind !== 'write') throw new Error(`no write: ${JSON.stringify(step)}`);
  const next: Data = { ...data };
  if (step.newCA) Object.assign(next, { 'next.crt': b64(fresh.certPem), 'next.key': b64(fresh.keyPem) });
  for (const [k, v] of Object.entries(step.data)) {
    if (v === null) delete next[k];
    else next[k] = v;
  }
  return next;
}

const trusts = (state: CaState, ca: KeyPairPem, client: string) => {
  const cert = new X509Certificate(client);
  const cas = trustBundle(state).match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g)!;
  return cas.some((pem) => {
    const c = new X509Certificate(pem);
    return cert.checkIssued(c) && cert.verify(c.publicKey);
  });
};

describe('CA rotation phases', () => {
  it('takes a hand-edited next pair of mismatched key and certificate for no CA: update cannot sign with it', () => {
    const data: Data = {
      'tls.crt': b64(old.certPem),
      'tls.key': b64(old.keyPem),
      'next.crt': b64(fresh.certPem),
      'next.key': b64(old.keyPem),
    };
    const state = caState(data, 's');
    expect(phaseOf(state)).toBe('standby');
    expect(trustBundle(state)).toBe(old.certPem);
    expect(nextStep(state, 'update').kind).toBe('refuse');
    expect(phaseOf(caState(apply(data, 'init'), 's'))).toBe('init'); // init writes a whole pair over it
  });

  it('goes standby → init → update → standby, trusting the old CA until the end', async () => {
    const oldClient = (await issueCertificate(old, { commonName: 'alice', usage: 'client' })).certPem;
    const standby: Data = { 'tls.crt': b64(old.certPem), 'tls.key': b64(old.keyPem) };
    expect(phaseOf(caState(standby, 's'))).toBe('standby');
    // Alone, the CA's PEM exactly as stored: an upgrade rewrites no agent Secret.
    expect(trustBundle(caState(standby, 's'))).toBe(old.certPem);

    const init = apply(standby, 'init');
    const initState = caState(init, 's');
    expect(phaseOf(initState)).toBe('init');
    expect(initState.signing.certPem).toBe(old.certPem); // the old CA still signs
    expect(trusts(initState, old, oldClient)).toBe(true);
    expect(trustBundle(initState)).toContain(fresh.certPem);

    const update = apply(init, 'update');
    const updateState = caState(update, 's');
    expect(phaseOf(updateState)).toBe('update');
    expect(updateState.signing).toEqual(fresh);
    expect(update['next.key']).toBeUndefined();
    // The old key is gone from the Secret once it signs no more.
    expect(Object.values(update).map((v) => Buffer.from(v, 'base64').toString())).not.toContain(old.keyPem);
    expect(trusts(updateState, old, oldClient)).toBe(true);

    const done = caState(apply(update, 'standby'), 's');
    expect(phaseOf(done)).toBe('standby');
    expect(trustBundle(done)).toBe(fresh.certPem);
    expect(trusts(done, old, oldClient)).toBe(false);
  });

  it('does nothing for a phase already reached (a step written before a crash is not redone)', () => {
    const standby: Data = { 'tls.crt': b64(old.certPem), 'tls.key': b64(old.keyPem) };
    const init = apply(standby, 'init');
    expect(nextStep(caState(init, 's'), 'init')).toEqual({ kind: 'none' });
    expect(nextStep(caState(standby, 's'), undefined)).toEqual({ kind: 'none' });
  });

  it('refuses jumps and unknown phases with what to do', () => {
    const standby = caState({ 'tls.crt': b64(old.certPem), 'tls.key': b64(old.keyPem) }, 's');
    expect(nextStep(standby, 'update')).toEqual({
      kind: 'refuse',
      message: expect.stringContaining('drawbridge.dev/ca-rotation=init first') as string,
    });
    expect(nextStep(standby, 'Init')).toMatchObject({ kind: 'refuse', message: /unknown phase "Init"/ });
    const update = caState(
      { 'tls.crt': b64(fresh.certPem), 'tls.key': b64(fresh.keyPem), 'previous.crt': b64(old.certPem) },
      's',
    );
    expect(nextStep(update, 'init')).toMatchObject({
      kind: 'refuse',
      message: /=standby, then start another/,
    });
  });

  it('cancels from init, forgetting the new CA', () => {
    const standby: Data = { 'tls.crt': b64(old.certPem), 'tls.key': b64(old.keyPem) };
    expect(apply(apply(standby, 'init'), 'standby')).toEqual(standby);
  });

  it('names the fix for a Secret without its signing pair, never echoing its contents', () => {
    expect(() => caState({ 'tls.crt': b64(old.certPem) }, 'Secret drawbridge/drawbridge-ca')).toThrow(
      'Secret drawbridge/drawbridge-ca lacks tls.crt or tls.key; delete it to let the controller create a new CA',
    );
  });
});

describe("an agent's serving certificate across a rotation", () => {
  it('keeps its certificate for a new bundle, and is issued one from the new CA at update', async () => {
    const first = await servingCert(undefined, 'shop', 'orders', old);
    const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'tls' }, data: first.data };
    const initBundle = `${old.certPem}\n${fresh.certPem}`;
    const init = await servingCert(secret, 'shop', 'orders', old, initBundle);
    expect(init.issued).toBe(false);
    expect(init.data['tls.crt']).toBe(first.data['tls.crt']);
    expect(Buffer.from(init.data['ca.crt']!, 'base64').toString()).toBe(initBundle);
    expect(init.digest).not.toBe(first.digest); // the agents roll onto the bundle

    const updated = await servingCert({ ...secret, data: init.data }, 'shop', 'orders', fresh, initBundle);
    expect(updated.issued).toBe(true);
    const cert = new X509Certificate(Buffer.from(updated.data['tls.crt']!, 'base64'));
    expect(cert.verify(new X509Certificate(fresh.certPem).publicKey)).toBe(true);
  });
});
