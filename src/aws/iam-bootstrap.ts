// IAM bootstrap: puts the planned policy on the controller's own role (IRSA), idempotently.
//   own role: AWS_ROLE_ARN (IRSA's web-identity role) or GetCallerIdentity's assumed-role ARN;
//   inline:   PutRolePolicy "drawbridge" when the document differs, DeleteRolePolicy when unused;
//   managed:  /drawbridge/<role>-<n> policies, a new default version when the document differs,
//             attached once; surplus ones (databases removed) detached and deleted.
// A re-run with unchanged inputs makes no write call and reports changed=false.
import {
  AttachRolePolicyCommand,
  CreatePolicyCommand,
  CreatePolicyVersionCommand,
  DeletePolicyCommand,
  DeletePolicyVersionCommand,
  DeleteRolePolicyCommand,
  DetachRolePolicyCommand,
  GetPolicyCommand,
  GetPolicyVersionCommand,
  GetRolePolicyCommand,
  type IAMClient,
  ListAttachedRolePoliciesCommand,
  ListPolicyVersionsCommand,
  ListRolePoliciesCommand,
  PutRolePolicyCommand,
} from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand, type STSClient } from '@aws-sdk/client-sts';
import { awsCall, AwsError, AwsReason } from './errors.js';
import { IAM_LIMITS, type PolicyDocument, type PolicyPlan, planPolicy, policySize } from './iam-policy.js';
import type { AwsClients } from './clients.js';
import { type Grant, type PolicyInputs, requiredGrants } from './iam-statements.js';

export const INLINE_POLICY_NAME = 'drawbridge';
const MANAGED_PATH = '/drawbridge/';

export interface RoleRef {
  account: string;
  name: string;
}

/** The role this process runs as: IRSA's AWS_ROLE_ARN, else the caller identity's assumed role. */
export async function ownRole(sts: STSClient, env: NodeJS.ProcessEnv = process.env): Promise<RoleRef> {
  const arn =
    env.AWS_ROLE_ARN ??
    (await awsCall({ action: 'sts:GetCallerIdentity' }, () => sts.send(new GetCallerIdentityCommand({}))))
      .Arn ??
    '';
  const [, , , , account = '', resource = ''] = arn.split(':');
  const path = resource.split('/');
  // role/[path/]NAME → NAME ; assumed-role/NAME/session → NAME
  const name = path[0] === 'assumed-role' ? path[1] : path[0] === 'role' ? path[path.length - 1] : undefined;
  if (!name || !/^\d{12}$/.test(account)) {
    throw new AwsError(
      AwsReason.ApiError,
      `Drawbridge runs as ${arn || 'an unknown identity'}, not an IAM role: cannot attach its policy`,
      'run the controller with an IAM role (IRSA), or print the policy with `drawbridge iam print` and attach it yourself',
      { code: 'AWS_ERROR' },
    );
  }
  return { account, name };
}

function normalized(doc: PolicyDocument | string | undefined): string {
  if (doc === undefined) return '';
  const parsed = typeof doc === 'string' ? JSON.parse(decodeURIComponent(doc)) : doc;
  return JSON.stringify(parsed);
}

export interface BootstrapResult {
  plan: PolicyPlan;
  changed: boolean;
  managedArns: string[];
}

/**
 * The controller's bootstrap in one call: its own role, the grants its Databases and matchers need,
 * then bootstrapRolePolicy. Throws AwsError (PolicySizeExceeded, AWSAccessDenied, ...) for the condition.
 */
export async function bootstrapIam(
  clients: AwsClients,
  region: string,
  inputs: Omit<PolicyInputs, 'defaultAccount'>,
): Promise<BootstrapResult & { role: RoleRef }> {
  const id = { region };
  const role = await ownRole(clients.sts(id));
  const grants = requiredGrants({ ...inputs, defaultAccount: role.account });
  return { ...(await bootstrapRolePolicy(clients.iam(id), role, grants)), role };
}

export async function bootstrapRolePolicy(
  iam: IAMClient,
  role: RoleRef,
  grants: Grant[],
): Promise<BootstrapResult> {
  const call = <T>(action: string, fn: () => Promise<T>) =>
    awsCall({ action: `iam:${action} on role ${role.name}` }, fn);
  const otherInline = await inlineSizeOfOthers(iam, role, call);
  const attached =
    (
      await call('ListAttachedRolePolicies', () =>
        iam.send(new ListAttachedRolePoliciesCommand({ RoleName: role.name })),
      )
    ).AttachedPolicies ?? [];
  const ours = (arn: string) => arn.includes(`:policy${MANAGED_PATH}${role.name}-`);
  const plan = planPolicy(grants, {
    inlineRoom: IAM_LIMITS.roleInline - otherInline,
    managedSlots: IAM_LIMITS.managedPoliciesPerRole - attached.filter((p) => !ours(p.PolicyArn ?? '')).length,
  });

  let changed = await syncInline(iam, role, plan.inline, call);
  const managedArns: string[] = [];
  for (const [i, doc] of plan.managed.entries()) {
    const arn = `arn:aws:iam::${role.account}:policy${MANAGED_PATH}${role.name}-${i + 1}`;
    managedArns.push(arn);
    changed = (await syncManaged(iam, arn, doc, call)) || changed;
    if (!attached.some((p) => p.PolicyArn === arn)) {
      await call('AttachRolePolicy', () =>
        iam.send(new AttachRolePolicyCommand({ RoleName: role.name, PolicyArn: arn })),
      );
      changed = true;
    }
  }
  for (const p of attached) {
    if (!p.PolicyArn || !ours(p.PolicyArn) || managedArns.includes(p.PolicyArn)) continue;
    await call('DetachRolePolicy', () =>
      iam.send(new DetachRolePolicyCommand({ RoleName: role.name, PolicyArn: p.PolicyArn })),
    );
    await deleteManaged(iam, p.PolicyArn, call);
    changed = true;
  }
  return { plan, changed, managedArns };
}

type Call = <T>(action: string, fn: () => Promise<T>) => Promise<T>;

async function inlineSizeOfOthers(iam: IAMClient, role: RoleRef, call: Call): Promise<number> {
  const names =
    (await call('ListRolePolicies', () => iam.send(new ListRolePoliciesCommand({ RoleName: role.name }))))
      .PolicyNames ?? [];
  let size = 0;
  for (const name of names.filter((n) => n !== INLINE_POLICY_NAME)) {
    const out = await call('GetRolePolicy', () =>
      iam.send(new GetRolePolicyCommand({ RoleName: role.name, PolicyName: name })),
    );
    size += policySize(JSON.parse(decodeURIComponent(out.PolicyDocument ?? '{}')) as PolicyDocument);
  }
  return size;
}

async function syncInline(
  iam: IAMClient,
  role: RoleRef,
  doc: PolicyDocument | undefined,
  call: Call,
): Promise<boolean> {
  const current = await call('GetRolePolicy', () =>
    iam.send(new GetRolePolicyCommand({ RoleName: role.name, PolicyName: INLINE_POLICY_NAME })),
  ).then(
    (out) => out.PolicyDocument,
    (err: unknown) => {
      if (err instanceof AwsError && err.reason === AwsReason.NotFound) return undefined;
      throw err;
    },
  );
  if (normalized(current) === normalized(doc)) return false;
  if (doc) {
    await call('PutRolePolicy', () =>
      iam.send(
        new PutRolePolicyCommand({
          RoleName: role.name,
          PolicyName: INLINE_POLICY_NAME,
          PolicyDocument: JSON.stringify(doc),
        }),
      ),
    );
  } else {
    await call('DeleteRolePolicy', () =>
      iam.send(new DeleteRolePolicyCommand({ RoleName: role.name, PolicyName: INLINE_POLICY_NAME })),
    );
  }
  return true;
}

async function syncManaged(iam: IAMClient, arn: string, doc: PolicyDocument, call: Call): Promise<boolean> {
  const text = JSON.stringify(doc);
  const existing = await call('GetPolicy', () => iam.send(new GetPolicyCommand({ PolicyArn: arn }))).catch(
    (err: unknown) => {
      if (err instanceof AwsError && err.reason === AwsReason.NotFound) return undefined;
      throw err;
    },
  );
  if (!existing?.Policy) {
    const name = arn.split('/').pop()!;
    await call('CreatePolicy', () =>
      iam.send(new CreatePolicyCommand({ PolicyName: name, Path: MANAGED_PATH, PolicyDocument: text })),
    );
    return true;
  }
  const version = await call('GetPolicyVersion', () =>
    iam.send(new GetPolicyVersionCommand({ PolicyArn: arn, VersionId: existing.Policy!.DefaultVersionId })),
  );
  if (normalized(version.PolicyVersion?.Document) === normalized(doc)) return false;
  // IAM keeps at most 5 versions: drop the oldest non-default one first.
  const versions =
    (await call('ListPolicyVersions', () => iam.send(new ListPolicyVersionsCommand({ PolicyArn: arn }))))
      .Versions ?? [];
  const old = versions.filter((v) => !v.IsDefaultVersion).sort((a, b) => +a.CreateDate! - +b.CreateDate!);
  if (versions.length >= 5 && old[0]) {
    await call('DeletePolicyVersion', () =>
      iam.send(new DeletePolicyVersionCommand({ PolicyArn: arn, VersionId: old[0]!.VersionId })),
    );
  }
  await call('CreatePolicyVersion', () =>
    iam.send(new CreatePolicyVersionCommand({ PolicyArn: arn, PolicyDocument: text, SetAsDefault: true })),
  );
  return true;
}

async function deleteManaged(iam: IAMClient, arn: string, call: Call): Promise<void> {
  const versions =
    (await call('ListPolicyVersions', () => iam.send(new ListPolicyVersionsCommand({ PolicyArn: arn }))))
      .Versions ?? [];
  for (const v of versions.filter((x) => !x.IsDefaultVersion)) {
    await call('DeletePolicyVersion', () =>
      iam.send(new DeletePolicyVersionCommand({ PolicyArn: arn, VersionId: v.VersionId })),
    );
  }
  await call('DeletePolicy', () => iam.send(new DeletePolicyCommand({ PolicyArn: arn })));
}
