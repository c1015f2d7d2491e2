// AWS failures found outside a Database's own reconcile — by discovery (the matcher's role cannot be
// assumed, no credentials) or by IAM bootstrap (PolicySizeExceeded, IAM denied) — kept per Database
// and shown as its CredentialsReady=False condition, with the reason and the fix from awsCondition.
// Each source replaces its whole set every round, so an issue clears once its source succeeds; the
// Database is re-queued whenever what it should show changes.
import { awsCondition, type AwsError } from '../../aws/errors.js';
import { CONDITION } from '../../api/database-status.js';
import type { ConditionState } from '../database/conditions.js';

export type IssueSource = 'discovery' | 'iam';

/** Precedence when both apply: the more specific first (this Database's own identity). */
const SOURCES: readonly IssueSource[] = ['discovery', 'iam'];

export class CredentialIssues {
  private readonly bySource = new Map<IssueSource, Map<string, ConditionState>>();

  constructor(private readonly changed: (key: string) => void) {}

  /** The condition for a Database key (`namespace/name`), if an AWS failure affects it. */
  get(key: string): ConditionState | undefined {
    for (const source of SOURCES) {
      const issue = this.bySource.get(source)?.get(key);
      if (issue) return issue;
    }
    return undefined;
  }

  /** Replaces everything `source` reported; `next` maps Database keys to the failure affecting them. */
  replace(source: IssueSource, next: ReadonlyMap<string, AwsError>): void {
    const before = this.bySource.get(source) ?? new Map<string, ConditionState>();
    const keys = new Set([...before.keys(), ...next.keys()]);
    const old = new Map([...keys].map((k) => [k, this.get(k)]));
    this.bySource.set(source, new Map([...next].map(([k, err]) => [k, issueCondition(err)])));
    for (const k of keys) if (!sameIssue(old.get(k), this.get(k))) this.changed(k);
  }
}

function issueCondition(err: AwsError): ConditionState {
  const { message } = awsCondition(err, CONDITION.CredentialsReady);
  return { type: CONDITION.CredentialsReady, status: 'False', reason: err.reason, message };
}

function sameIssue(a: ConditionState | undefined, b: ConditionState | undefined): boolean {
  return a?.reason === b?.reason && a?.message === b?.message;
}
