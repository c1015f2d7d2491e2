// Status for AccessRole and DatabaseUser, one reconciler per kind. Level-based: a key in, everything
// re-read from the informer caches, status written only when it differs. Neither kind owns anything,
// so a reconcile never fails on its input: a bad object is reported (Valid/Ready False, a Warning
// Event naming the field or the missing role) and the reconcile ends; the next edit brings it back.
// Errors writing status (conflict, network) are retried with backoff by the Controller.
import type { z } from 'zod';
import { AccessRole, DatabaseUser } from '../../api/access.js';
import { ACCESS_CONDITION, ACCESS_REASON } from '../../api/access-status.js';
import type { Condition } from '../../api/meta.js';
import { formatIssue } from '../../api/validate.js';
import type { Logger } from '../../log.js';
import type { Reconciler } from '../controller.js';
import { mergeConditions, sameConditions } from '../database/conditions.js';
import type { EventSink } from '../events.js';
import type { KubeObject } from '../../kube/types.js';
import { splitKey } from '../../kube/types.js';
import type { ObjectCache, ObjectWriter } from '../../kube/writer.js';
import { parseAs, parseMemo } from '../../kube/parse.js';
import { type Problem, roleProblems, roleReaches, userReaches } from './check.js';

export interface AccessDeps {
  roles: ObjectCache;
  users: ObjectCache;
  databases: ObjectCache;
  writer: ObjectWriter;
  events: EventSink;
  log: Logger;
}

type State = Pick<Condition, 'type' | 'status' | 'reason' | 'message'>;
interface Outcome {
  valid: State;
  ready: State;
  counts: Record<string, number>;
}

const cond = (type: string, ok: boolean, reason: string, message: string): State => ({
  type,
  status: ok ? 'True' : 'False',
  reason,
  message,
});

/** Valid and Ready both False for a spec the schema refuses, with the fields to fix. */
function invalidSpec(kind: string, error: z.ZodError): Outcome {
  // An invalid role's deny rules cannot be read, so agents and the signer deny those bound to it (authz/policy).
  const until = kind === 'AccessRole' ? '; until then every session of those bound to it is denied' : '';
  const message = `fix the ${kind}: ${error.issues.map(formatIssue).join('; ')}${until}`;
  return {
    valid: cond(ACCESS_CONDITION.Valid, false, ACCESS_REASON.InvalidSpec, message),
    ready: cond(ACCESS_CONDITION.Ready, false, ACCESS_REASON.InvalidSpec, message),
    counts: {},
  };
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

type Kind = 'AccessRole' | 'DatabaseUser';
const SCHEMAS = { AccessRole, DatabaseUser } as const;
type Parsed<K extends Kind> = z.output<(typeof SCHEMAS)[K]>;

abstract class AccessStatusReconciler<K extends Kind> implements Reconciler {
  readonly name: string;

  constructor(
    protected readonly deps: AccessDeps,
    private readonly kind: K,
    private readonly cache: ObjectCache,
  ) {
    this.name = kind.toLowerCase();
  }

  /** Conditions and counts for a spec that parsed. */
  protected abstract outcome(obj: Parsed<K>, namespace: string): Outcome;

  async reconcile(key: string): Promise<void> {
    const { namespace = '', name } = splitKey(key);
    const raw = this.cache.get(name, namespace);
    if (!raw || raw.metadata.deletionTimestamp) return;
    const parsed = parseAs(SCHEMAS[this.kind], this.kind, raw);
    const { valid, ready, counts } = parsed.success
      ? this.outcome(parsed.data as Parsed<K>, namespace)
      : invalidSpec(this.kind, parsed.error);
    const old = (raw.status ?? {}) as { conditions?: Condition[]; observedGeneration?: number } & Record<
      string,
      unknown
    >;
    const generation = raw.metadata.generation;
    const conditions = mergeConditions(old.conditions, [ready, valid], generation);
    const same =
      sameConditions(old.conditions, conditions) &&
      old.observedGeneration === generation &&
      Object.entries(counts).every(([k, v]) => old[k] === v);
    if (same) return;
    await this.deps.writer.mergePatch(
      this.kind,
      name,
      namespace,
      { status: { conditions, observedGeneration: generation, ...counts } },
      'status',
    );
    this.recordTransition(raw, old.conditions, ready);
  }

  private recordTransition(raw: KubeObject, old: Condition[] | undefined, ready: State): void {
    const before = old?.find((c) => c.type === ACCESS_CONDITION.Ready);
    if (before?.status === ready.status && before.reason === ready.reason) return;
    const obj = { ...raw, apiVersion: raw.apiVersion ?? 'drawbridge.dev/v1alpha1', kind: this.kind };
    if (ready.status === 'False') this.deps.events.record(obj, 'Warning', ready.reason, ready.message);
    else if (before) this.deps.events.record(obj, 'Normal', ready.reason, ready.message);
  }

  /** The namespace's roles that parse, by name. */
  protected validRoles(namespace: string): Map<string, AccessRole> {
    const out = new Map<string, AccessRole>();
    for (const r of this.deps.roles.list(namespace)) {
      const role = parseMemo(AccessRole, 'AccessRole', r, this.deps.log);
      if (role) out.set(role.metadata.name, role);
    }
    return out;
  }

  protected databaseLabels(namespace: string): Record<string, string>[] {
    return this.deps.databases
      .list(namespace)
      .filter((d) => !d.metadata.deletionTimestamp)
      .map((d) => d.metadata.labels ?? {});
  }
}

/** AccessRole: Valid when its patterns and templates are ones the engine understands. */
export class AccessRoleReconciler extends AccessStatusReconciler<'AccessRole'> {
  constructor(deps: AccessDeps) {
    super(deps, 'AccessRole', deps.roles);
  }

  protected outcome(role: AccessRole, namespace: string): Outcome {
    const problems = roleProblems(role);
    const users = this.deps.users
      .list(namespace)
      .filter((u) =>
        parseMemo(DatabaseUser, 'DatabaseUser', u, this.deps.log)?.spec.roles.includes(role.metadata.name),
      ).length;
    const databases = this.databaseLabels(namespace).filter((l) => roleReaches(role, l)).length;
    const counts = { users, databases };
    if (problems.length) {
      const message = problems.map((p) => p.message).join('; ');
      return {
        valid: cond(ACCESS_CONDITION.Valid, false, problems[0]!.reason, message),
        ready: cond(ACCESS_CONDITION.Ready, false, problems[0]!.reason, message),
        counts,
      };
    }
    const summary = `held by ${plural(users, 'DatabaseUser')}; reaches ${plural(databases, 'Database')}`;
    return {
      valid: cond(
        ACCESS_CONDITION.Valid,
        true,
        ACCESS_REASON.Valid,
        'patterns and templates are well-formed',
      ),
      ready: cond(ACCESS_CONDITION.Ready, true, ACCESS_REASON.Valid, summary),
      counts,
    };
  }
}

/** DatabaseUser: Ready when every role it names exists and is valid. */
export class DatabaseUserReconciler extends AccessStatusReconciler<'DatabaseUser'> {
  constructor(deps: AccessDeps) {
    super(deps, 'DatabaseUser', deps.users);
  }

  protected outcome(user: DatabaseUser, namespace: string): Outcome {
    const roles = this.validRoles(namespace);
    const databases = this.databaseLabels(namespace).filter((l) => userReaches(user, roles, l)).length;
    const valid = cond(ACCESS_CONDITION.Valid, true, ACCESS_REASON.Valid, 'the spec is well-formed');
    const problem = this.roleProblem(user.spec.roles, roles, namespace);
    const ready = problem
      ? cond(ACCESS_CONDITION.Ready, false, problem.reason, problem.message)
      : cond(
          ACCESS_CONDITION.Ready,
          true,
          ACCESS_REASON.RolesFound,
          `roles ${user.spec.roles.join(', ')} found; reaches ${plural(databases, 'Database')}`,
        );
    return { valid, ready, counts: { databases } };
  }

  /** Missing roles first (they grant nothing at all), then roles that exist but are invalid. */
  private roleProblem(
    names: string[],
    valid: Map<string, AccessRole>,
    namespace: string,
  ): Problem | undefined {
    const quoted = (list: string[]) => list.map((n) => `"${n}"`).join(', ');
    const missing = names.filter((n) => !this.deps.roles.get(n, namespace));
    if (missing.length) {
      return {
        reason: ACCESS_REASON.RoleNotFound,
        message:
          `spec.roles: AccessRole ${quoted(missing)} not found in namespace ${namespace}: ` +
          'create it or remove it from spec.roles (a missing role grants nothing)',
      };
    }
    const broken = names.filter((n) => {
      const role = valid.get(n);
      return !role || roleProblems(role).length > 0;
    });
    if (broken.length) {
      return {
        reason: ACCESS_REASON.RoleInvalid,
        message:
          `spec.roles: AccessRole ${quoted(broken)} is invalid: see kubectl describe accessrole ${broken[0]}` +
          ' (a role the schema refuses denies every session of those bound to it until fixed)',
      };
    }
    return undefined;
  }
}
