// The CaReconciler against a fake API server: a controller that crashed after writing a step (before
// publishing it) converges on its next pass without making another CA, and signs with the CA it wrote
// even when publishing fails; a stale Secret is never
// overwritten (its resourceVersion guards the write); no private key reaches a log line or an Event.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../../../src/kube/client.js';
import { type CaState, caState, phaseOf, trustBundle } from '../../../src/operator/ca-rotation.js';
import { CaReconciler } from '../../../src/operator/ca-store.js';
import { type KeyPairPem, createCA } from '../../../src/pki/ca.js';

type Secret = {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace: string;
    resourceVersion: string;
    annotations?: Record<string, string>;
  };
  data: Record<string, string>;
};
const b64 = (s: string) => Buffer.from(s).toString('base64');
let old: KeyPairPem;
beforeAll(async () => {
  old = await createCA({ commonName: 'old CA' });
});

function world(requested: string) {
  let rv = 1;
  const secret: Secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: 'drawbridge-ca',
      namespace: 'drawbridge',
      resourceVersion: String(rv),
      annotations: { 'drawbridge.dev/ca-rotation': requested },
    },
    data: { 'tls.crt': b64(old.certPem), 'tls.key': b64(old.keyPem) },
  };
  const s = { secret, configMap: undefined as { data: Record<string, string> } | undefined, failPublish: 0 };
  const client = {
    patch: (
      path: string,
      _type: string,
      body: { metadata: Secret['metadata']; data: Record<string, string | null> },
    ) => {
      if (path.includes('/configmaps/')) {
        if (s.failPublish-- > 0) return Promise.reject(new Error('connection reset'));
        s.configMap = body as unknown as { data: Record<string, string> };
        return Promise.resolve(body);
      }
      if (body.metadata.resourceVersion !== s.secret.metadata.resourceVersion) {
        return Promise.reject(new Error('Conflict: the object has been modified'));
      }
      const data = { ...s.secret.data };
      for (const [k, v] of Object.entries(body.data)) {
        if (v === null) delete data[k];
        else data[k] = v;
      }
      s.secret = { ...s.secret, metadata: { ...s.secret.metadata, resourceVersion: String(++rv) }, data };
      return Promise.resolve(s.secret);
    },
  } as unknown as KubeClient;
  const lines: string[] = [];
  const log = pino(
    { level: 'debug' },
    new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    }),
  );
  const events: string[] = [];
  const states: CaState[] = [];
  let informerSecret: Secret = secret; // what the informer shows: lags behind a failed pass
  const reconciler = new CaReconciler({
    client,
    namespace: 'drawbridge',
    owners: [],
    secret: () => informerSecret,
    events: { record: (_o, type, reason, message) => events.push(`${type} ${reason} ${message}`) },
    log,
    changed: (st) => states.push(st),
  });
  return {
    s,
    lines,
    events,
    states,
    reconciler,
    sync: () => (informerSecret = s.secret),
  };
}

describe('CaReconciler', () => {
  it('after a crash between the Secret write and the ConfigMap, converges without another CA', async () => {
    const w = world('init');
    w.s.failPublish = 1;
    await expect(w.reconciler.reconcile()).rejects.toThrow('connection reset');
    const written = caState(w.s.secret.data, 's');
    expect(phaseOf(written)).toBe('init');

    w.sync(); // the informer sees the write
    await w.reconciler.reconcile();
    expect(caState(w.s.secret.data, 's').next).toEqual(written.next); // no second new CA
    expect(w.s.configMap!.data['ca.crt']).toBe(trustBundle(written));
    expect(w.states.map(phaseOf)).toEqual(['init', 'init']); // the failed pass already told the caller
  });

  it('signs with the new CA once update is written, even if the ConfigMap write then fails', async () => {
    const w = world('init');
    await w.reconciler.reconcile();
    w.sync();
    const next = caState(w.s.secret.data, 's').next!;
    w.s.secret.metadata.annotations!['drawbridge.dev/ca-rotation'] = 'update';
    w.s.failPublish = 1; // the ConfigMap stays unwritable, say, for the whole retry backoff
    await expect(w.reconciler.reconcile()).rejects.toThrow('connection reset');
    expect(w.s.secret.data['tls.key']).toBe(b64(next.keyPem)); // the old key is gone from the Secret
    // What the CSR signer and serving certificates use (manager.ts): not the old key a moment longer.
    expect(w.states.at(-1)?.signing).toEqual(next);
    expect(phaseOf(w.states.at(-1)!)).toBe('update');
  });

  it('never writes over a Secret it has not seen (a stale cache, another replica)', async () => {
    const w = world('init');
    // Changed since the informer's copy.
    w.s.secret = { ...w.s.secret, metadata: { ...w.s.secret.metadata, resourceVersion: '7' } };
    await expect(w.reconciler.reconcile()).rejects.toThrow('Conflict');
    expect(Object.keys(w.s.secret.data).sort()).toEqual(['tls.crt', 'tls.key']);
  });

  it('puts no private key in a log line, an Event or the ConfigMap', async () => {
    const w = world('init');
    await w.reconciler.reconcile();
    w.sync();
    w.s.secret.metadata.annotations!['drawbridge.dev/ca-rotation'] = 'update';
    await w.reconciler.reconcile();
    w.sync();
    expect(w.events.map((e) => e.split(' ')[1])).toEqual(['CARotationInit', 'CARotationUpdate']);
    const next = caState(w.s.secret.data, 's').signing.keyPem;
    const said = [...w.lines, ...w.events, JSON.stringify(w.s.configMap)].join('\n');
    expect(w.lines.length).toBeGreaterThan(0);
    for (const key of [old.keyPem, next]) {
      const body = key.split('\n')[1]!;
      expect(said).not.toContain(body);
      expect(said).not.toContain(b64(key).slice(0, 40));
    }
    expect(said).not.toContain('PRIVATE KEY');
  });
});
