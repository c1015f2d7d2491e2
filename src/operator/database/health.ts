// BackendReachable and CredentialsReady are found by I/O (a probe, Secret reads) that can take seconds.
// They run here, off the reconcile path, a bounded number at a time; the reconcile reads the latest
// result from memory and asks for a fresh one when it is stale. A result that changes enqueues the
// Database again, so status follows the backend without a reconcile ever waiting on the network.
import { secretValues, type Secret } from '../../api/agent-config.js';
import { type Database, referencedSecrets } from '../../api/database.js';
import type { SecretReader } from '../../api/agent-config.js';
import { errorMessage } from '../../errors.js';
import type { KubeClient } from '../../kube/client.js';
import { isReason } from '../../kube/errors.js';
import { objectPath } from '../../kube/resources.js';
import { CONDITION, REASON } from '../../api/database-status.js';
import type { ConditionState } from './conditions.js';
import { probeBackend } from './probe.js';

export interface HealthResult {
  generation: number | undefined;
  checkedAt: number;
  backend: ConditionState;
  credentials: ConditionState;
}

/** A Secret's values, undefined when it does not exist, or an Error when it cannot be read. */
export type SecretLookup = Record<string, string> | undefined | Error;

const credentials = (o: Omit<ConditionState, 'type'>): ConditionState => ({
  type: CONDITION.CredentialsReady,
  ...o,
});

/** CredentialsReady from the Secrets the Database names (pure: unit-tested with a table). */
export function checkCredentials(db: Database, secrets: Map<string, SecretLookup>): ConditionState {
  const ca = db.spec.tls.caSecretRef;
  if (ca && db.spec.tls.mode !== 'disabled') {
    const values = secrets.get(ca.name);
    if (values instanceof Error) return unreadable(ca.name, values);
    if (!values?.[ca.key]) {
      return credentials({
        status: 'False',
        reason: REASON.CASecretNotFound,
        message: `spec.tls.caSecretRef: Secret "${ca.name}" ${values ? `has no key "${ca.key}"` : 'does not exist'}; create it with the CA certificate of the database server`,
      });
    }
  }
  const auth = db.spec.auth;
  if (auth.type === 'passthrough') {
    return credentials({
      status: 'True',
      reason: REASON.Passthrough,
      message: "clients' own credentials are forwarded",
    });
  }
  if (auth.type !== 'password' && auth.type !== 'mtls') {
    return credentials({
      status: 'True',
      reason: REASON.CredentialsFromCloudIdentity,
      message: `auth type ${auth.type}: the agent signs in with its cloud identity at connect time`,
    });
  }
  const name = auth.secretRef!.name;
  const values = secrets.get(name);
  if (values instanceof Error) return unreadable(name, values);
  if (!values) {
    return credentials({
      status: 'False',
      reason: REASON.SecretNotFound,
      message: `spec.auth.secretRef: Secret "${name}" does not exist in namespace ${db.metadata.namespace ?? ''}; create it`,
    });
  }
  const needed = auth.type === 'mtls' ? ['tls.crt', 'tls.key'] : [];
  const missing = needed.filter((k) => !values[k]);
  if (missing.length || Object.keys(values).length === 0) {
    const what = missing.length
      ? `keys ${missing.join(', ')}`
      : 'a key per database user (user name → password)';
    return credentials({
      status: 'False',
      reason: REASON.SecretKeyMissing,
      message: `Secret "${name}" needs ${what} for auth type ${auth.type}`,
    });
  }
  const detail =
    auth.type === 'mtls'
      ? 'a client certificate'
      : `passwords for ${Object.keys(values).length} database user(s)`;
  return credentials({
    status: 'True',
    reason: REASON.SecretFound,
    message: `Secret "${name}" holds ${detail}`,
  });
}

function unreadable(name: string, err: Error): ConditionState {
  return credentials({
    status: 'Unknown',
    reason: REASON.SecretUnreadable,
    message: `cannot read Secret "${name}": ${err.message}`,
  });
}

export interface HealthOptions {
  intervalMs: number;
  concurrency: number;
  probeTimeoutMs: number;
}

type Job = { key: string; db: Database & { metadata: { namespace: string } } };

export class HealthChecker {
  private readonly results = new Map<string, HealthResult>();
  private readonly pending = new Set<string>();
  private readonly jobs: Job[] = [];
  private running = 0;

  constructor(
    private readonly client: KubeClient,
    private readonly opts: HealthOptions,
    private readonly changed: (key: string) => void,
  ) {}

  result(key: string): HealthResult | undefined {
    return this.results.get(key);
  }

  /** Schedules a check unless a fresh one for this generation exists or one is already queued. */
  request(key: string, db: Job['db']): void {
    const r = this.results.get(key);
    const fresh =
      r && r.generation === db.metadata.generation && Date.now() - r.checkedAt < this.opts.intervalMs;
    if (fresh || this.pending.has(key)) return;
    this.pending.add(key);
    this.jobs.push({ key, db });
    this.pump();
  }

  forget(key: string): void {
    this.results.delete(key);
  }

  private pump(): void {
    while (this.running < this.opts.concurrency && this.jobs.length) {
      const job = this.jobs.shift()!;
      this.running++;
      void this.check(job).finally(() => {
        this.running--;
        this.pending.delete(job.key);
        this.pump();
      });
    }
  }

  private async check({ key, db }: Job): Promise<void> {
    const secrets = new Map<string, SecretLookup>();
    await Promise.all(
      referencedSecrets(db).map(async (n) => secrets.set(n, await this.readSecret(db.metadata.namespace, n))),
    );
    const reader: SecretReader = {
      secret: (n) => {
        const v = secrets.get(n);
        return v instanceof Error ? undefined : v;
      },
    };
    const next: HealthResult = {
      generation: db.metadata.generation,
      checkedAt: Date.now(),
      backend: await probeBackend(db, reader, this.opts.probeTimeoutMs),
      credentials: checkCredentials(db, secrets),
    };
    const prev = this.results.get(key);
    this.results.set(key, next);
    const same = (a: ConditionState, b: ConditionState) =>
      a.status === b.status && a.reason === b.reason && a.message === b.message;
    if (!prev || !same(prev.backend, next.backend) || !same(prev.credentials, next.credentials))
      this.changed(key);
  }

  private async readSecret(namespace: string, name: string): Promise<SecretLookup> {
    try {
      return secretValues(
        await this.client.get<Secret & { metadata: { name: string } }>(objectPath('Secret', name, namespace)),
      );
    } catch (err) {
      if (isReason(err, 'NotFound')) return undefined;
      return new Error(errorMessage(err));
    }
  }
}
