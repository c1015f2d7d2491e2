// The in-cluster agent's state from the API server: its Database, the namespace's AccessRoles and
// DatabaseUsers, and the Secrets the Database names, each kept by a watch. Every change rebuilds the
// StateSnapshot. One process of an agent watches: the agent itself, or the primary of its workers,
// which hands the snapshots on to them (agent/workers): N workers do not load the Kubernetes client
// nor put N sets of watches on the API server.
import { secretValues, type Secret } from '../api/agent-config.js';
import { Database, referencedSecrets } from '../api/database.js';
import { formatIssue } from '../api/validate.js';
import { ReviewRate, type TokenReviewApi, tokenReviewApi } from '../authn/tokenreview.js';
import { validPolicy } from '../authz/policy.js';
import { DrawbridgeError, errorMessage } from '../errors.js';
import type { KubeClient } from '../kube/client.js';
import { Informer, longestStale } from '../kube/informer.js';
import { parseAs } from '../kube/parse.js';
import type { KubeObject } from '../kube/types.js';
import type { Logger } from '../log.js';
import type { StateSnapshot } from './state.js';

/** Where an agent's state comes from: watches here, or a worker's primary. */
export interface StateSource {
  /** The state when the agent starts. */
  readonly initial: StateSnapshot;
  /** Every later state, in order. */
  onUpdate(listener: (next: StateSnapshot) => void): void;
  /** Workload tokens are checked with the API server (TokenReview). */
  readonly tokenReview: TokenReviewApi;
  /**
   * Where the watches are (not in a worker): how long the state has not followed the API server (its
   * longest-failing watch; 0 while all are open). Meanwhile the agent enforces the state it last saw.
   */
  staleMs?(): number;
  /** Where the API server is asked (not in a worker): TokenReviews refused by its ReviewRate so far. */
  reviewsRefused?(): number;
  stop(): Promise<void>;
}

/** Watches of the Secrets the Database names; the set follows the Database as it changes. */
class SecretWatches {
  private readonly watches = new Map<string, Informer<KubeObject>>();

  constructor(
    private readonly client: KubeClient,
    private readonly namespace: string,
    private readonly log: Logger,
    private readonly changed: () => void,
  ) {}

  async follow(names: string[]): Promise<void> {
    for (const [name, inf] of this.watches) {
      if (!names.includes(name)) {
        this.watches.delete(name);
        await inf.stop();
      }
    }
    const started: Promise<void>[] = [];
    for (const name of names.filter((n) => !this.watches.has(n))) {
      const inf = new Informer<KubeObject>(this.client, 'Secret', {
        namespace: this.namespace,
        // A single-object watch: RBAC can then limit the agent to exactly these Secrets (resourceNames).
        fieldSelector: `metadata.name=${name}`,
        log: this.log,
      });
      inf.onChange(this.changed);
      this.watches.set(name, inf);
      started.push(inf.start());
    }
    await Promise.all(started);
  }

  staleMs(now: number): number {
    return longestStale(this.watches.values(), now);
  }

  values(): Map<string, Record<string, string>> {
    const out = new Map<string, Record<string, string>>();
    for (const [name, inf] of this.watches) {
      const s = inf.get(name, this.namespace);
      if (s) out.set(name, secretValues(s as unknown as Secret));
    }
    return out;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.watches.values()].map((w) => w.stop()));
  }
}

/** `namespace/name` of a Database, as `--database` takes it. */
export function parseDatabaseRef(ref: string): { namespace: string; name: string } {
  const m = /^([a-z0-9][-a-z0-9]*)\/([a-z0-9][-a-z0-9.]*)$/.exec(ref);
  if (!m) throw new DrawbridgeError('INVALID_CONFIG', `--database "${ref}" must be NAMESPACE/NAME`);
  return { namespace: m[1]!, name: m[2]! };
}

/** Starts the watches; resolves once they have listed and the first state is built. */
export async function watchAgentState(opts: {
  /** `namespace/name`. */
  database: string;
  /** From the pod's service account or a kubeconfig; closed when the watches stop. */
  client: KubeClient;
  log: Logger;
}): Promise<StateSource> {
  const { namespace, name } = parseDatabaseRef(opts.database);
  const log = opts.log;
  const client = opts.client;
  const watch = (kind: 'Database' | 'AccessRole' | 'DatabaseUser', fieldSelector?: string) =>
    new Informer<KubeObject>(client, kind, { namespace, fieldSelector, log });
  const databases = watch('Database', `metadata.name=${name}`);
  const roles = watch('AccessRole');
  const users = watch('DatabaseUser');
  let rebuild = () => {};
  const secrets = new SecretWatches(client, namespace, log, () => rebuild());
  await Promise.all([databases.start(), roles.start(), users.start()]);

  const readDatabase = (): Database => {
    const raw = databases.get(name, namespace);
    if (!raw) throw new DrawbridgeError('INVALID_CONFIG', `Database ${opts.database} does not exist`);
    const parsed = parseAs(Database, 'Database', raw);
    if (!parsed.success) {
      const issues = parsed.error.issues.map(formatIssue).join('; ');
      throw new DrawbridgeError('INVALID_CONFIG', `Database ${opts.database} is invalid: ${issues}`);
    }
    return parsed.data;
  };
  const snapshot = async (): Promise<StateSnapshot> => {
    const database = readDatabase();
    await secrets.follow(referencedSecrets(database));
    const policy = validPolicy(roles.list(namespace), users.list(namespace), log);
    return { database, roles: [...policy.roles], users: [...policy.users], secrets: secrets.values() };
  };
  const initial = await snapshot();

  const reviews = new ReviewRate(log);
  const listeners: ((next: StateSnapshot) => void)[] = [];
  // Changes arrive in bursts (a GitOps sync applies many objects): coalesce them into one rebuild.
  let timer: NodeJS.Timeout | undefined;
  rebuild = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      snapshot().then(
        (next) => listeners.forEach((l) => l(next)),
        (err: unknown) =>
          log.error({ err: errorMessage(err) }, 'keeping the previous state: the new one is unusable'),
      );
    }, 50);
  };
  for (const inf of [databases, roles, users]) inf.onChange(() => rebuild());

  return {
    initial,
    onUpdate: (listener) => listeners.push(listener),
    tokenReview: reviews.limit(tokenReviewApi(client)),
    reviewsRefused: () => reviews.refused,
    staleMs: (now = Date.now()) => longestStale([secrets, databases, roles, users], now),
    async stop() {
      clearTimeout(timer);
      await Promise.all([databases.stop(), roles.stop(), users.stop(), secrets.stop()]);
      client.close();
    },
  };
}
