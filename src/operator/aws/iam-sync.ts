// IAM bootstrap in the controller (leader only), run after each discovery round and whenever the AWS
// Databases change, and again every `resyncMs` to repair edits made in IAM:
// - `attach`: bootstrapIam puts the policy on the controller's own role (idempotent: no write when
//   nothing changed; removed Databases shrink it);
// - `print`: logs the policy instead, for someone to attach.
// Either way the policy each `assumeRoleArn` needs is logged too: those roles are not ours to edit;
// so is the policy of the agents' role (agents.aws.roleArn), a subset: connect-time calls only.
// A failure (PolicySizeExceeded, IAM AccessDenied, no credentials) becomes CredentialsReady=False on
// every AWS Database — their permissions come from this policy — and a Warning Event on the Pod.
import type { Database } from '../../api/database.js';
import type { IamBootstrapMode } from '../../api/controller-config.js';
import { awsCondition, classifyAwsError, type AwsError } from '../../aws/errors.js';
import type { BootstrapResult, RoleRef } from '../../aws/iam-bootstrap.js';
import { IAM_LIMITS, planPolicy } from '../../aws/iam-policy.js';
import { type PolicyInputs, requiredGrants } from '../../aws/iam-statements.js';
import type { AwsMatcher } from '../../api/controller-config.js';
import type { Logger } from '../../log.js';
import type { ObjectCache } from '../../kube/writer.js';
import { databaseKey, lentAwsDatabases } from './databases.js';
import { fitByNamespace } from './iam-fit.js';
import type { CredentialIssues } from './issues.js';
import type { ControllerEvents } from './report.js';

/** After a failure, try again this soon even if nothing changed (someone may have fixed IAM). */
const RETRY_MS = 60_000;

export interface IamSyncDeps {
  mode: Exclude<IamBootstrapMode, 'off'>;
  matchers: AwsMatcher[];
  databases: ObjectCache;
  issues: CredentialIssues;
  events: ControllerEvents;
  /** bootstrapIam with the controller's clients and region (a seam for unit tests). */
  attach: (
    inputs: Pick<PolicyInputs, 'databases' | 'matchers'>,
  ) => Promise<BootstrapResult & { role: RoleRef }>;
  resyncMs: number;
  log: Logger;
  /** The agents' own IAM role, when they have one (agents.aws.roleArn). */
  agentRoleArn?: string;
  /** Only these namespaces' Databases are covered (aws.namespaces with discovery's); empty: all. */
  namespaces?: readonly string[];
}

export class IamSync {
  private lastInputs: string | undefined;
  private nextRunAt = 0;
  /** The policy last logged per role (own role: ''), so a log line means the policy changed. */
  private readonly printed = new Map<string, string>();

  constructor(private readonly deps: IamSyncDeps) {}

  /**
   * Brings IAM up to date when the inputs changed or a re-check is due. Returns the ms until the next
   * re-check, or undefined when there is nothing AWS here (and never was): no AWS calls at all then.
   */
  async run(now = Date.now()): Promise<number | undefined> {
    const { matchers } = this.deps;
    const databases = lentAwsDatabases(this.deps.databases, this.deps.namespaces);
    if (!databases.length && !matchers.length && this.lastInputs === undefined) return undefined;
    const inputs = JSON.stringify([
      databases.map((d) => [databaseKey(d), d.spec.aws, d.spec.auth]),
      matchers,
    ]);
    if (inputs === this.lastInputs && now < this.nextRunAt) return this.nextRunAt - now;
    this.lastInputs = inputs;
    try {
      const { included, left } = fitByNamespace(databases, matchers);
      if (this.deps.mode === 'attach') await this.attach(included);
      else this.print(included, undefined);
      this.printAssumedRoles(included);
      if (this.deps.agentRoleArn) this.print(included, this.deps.agentRoleArn, true);
      this.deps.issues.replace('iam', left);
      const first = left.values().next().value;
      if (first) this.deps.events.warn(first.reason, `IAM bootstrap: ${awsCondition(first).message}`);
      this.nextRunAt = now + (first ? Math.min(RETRY_MS, this.deps.resyncMs) : this.deps.resyncMs);
    } catch (err) {
      const e = classifyAwsError(err, { action: 'IAM bootstrap' });
      this.deps.issues.replace('iam', new Map<string, AwsError>(databases.map((d) => [databaseKey(d), e])));
      this.deps.events.warn(e.reason, `IAM bootstrap: ${awsCondition(e).message}`);
      this.nextRunAt = now + Math.min(RETRY_MS, this.deps.resyncMs);
    }
    return this.nextRunAt - now;
  }

  private async attach(databases: Database[]): Promise<void> {
    const { plan, changed, role } = await this.deps.attach({ databases, matchers: this.deps.matchers });
    if (!changed) return;
    const where = plan.inline ? 'inline policy "drawbridge"' : `${plan.managed.length} managed policies`;
    this.deps.events.normal(
      'IAMPolicyAttached',
      `put the IAM policy for ${databases.length} AWS Databases on role ${role.name} (${where}, ${plan.size} characters)`,
    );
  }

  /**
   * Logs the policy `forRole` needs (undefined: the controller's own role; with `agents`, the agents'
   * role) when it changed.
   */
  private print(databases: Database[], forRole: string | undefined, agents = false): void {
    const grants = requiredGrants({
      databases,
      matchers: this.deps.matchers,
      defaultAccount: '*',
      ...(forRole && !agents ? { forRole } : {}),
      agents,
    });
    const plan = planPolicy(grants, {
      inlineRoom: IAM_LIMITS.roleInline,
      managedSlots: IAM_LIMITS.managedPoliciesPerRole,
    });
    const policy = JSON.stringify(plan.inline ?? { managedPolicies: plan.managed });
    const key = `${agents ? 'agents:' : ''}${forRole ?? ''}`;
    if (this.printed.get(key) === policy) return;
    this.printed.set(key, policy);
    const role = forRole ?? "the controller's own role";
    this.deps.log.info(
      { role, policy },
      agents ? "IAM policy Drawbridge's agents need" : 'IAM policy Drawbridge needs',
    );
    if (!forRole) {
      this.deps.events.normal(
        'IAMPolicyNeeded',
        `attach the IAM policy in the controller log ("IAM policy Drawbridge needs", ${plan.size} characters) to ${role}, or set aws.iamBootstrap=attach`,
      );
    }
  }

  /** The roles behind assumeRoleArn are not ours to edit: say what each needs, or why it cannot fit. */
  private printAssumedRoles(databases: Database[]): void {
    for (const role of assumedRoles(databases, this.deps.matchers)) {
      try {
        this.print(databases, role);
      } catch (err) {
        const e = classifyAwsError(err, { action: `IAM policy for ${role}` });
        this.deps.events.warn(e.reason, `IAM policy for ${role}: ${awsCondition(e).message}`);
      }
    }
  }
}

function assumedRoles(databases: Database[], matchers: AwsMatcher[]): string[] {
  const roles = [...databases.map((d) => d.spec.aws?.assumeRoleArn), ...matchers.map((m) => m.assumeRoleArn)];
  return [...new Set(roles.filter((r): r is string => !!r))].sort();
}
