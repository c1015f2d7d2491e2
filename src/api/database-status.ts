// Database status vocabulary: condition types and reasons are constants a person can search for and
// tools (the CLI, alerts, Argo CD health checks) can match on. `Ready` summarises AgentReady,
// BackendReachable and CredentialsReady; WorkloadTokensScoped, PodMetadataAllowed and AuditModeAllowed
// are warnings that leave Ready alone (the agent serves, audited, either way).
export const CONDITION = {
  Ready: 'Ready',
  AgentReady: 'AgentReady',
  BackendReachable: 'BackendReachable',
  CredentialsReady: 'CredentialsReady',
  WorkloadTokensScoped: 'WorkloadTokensScoped',
  PodMetadataAllowed: 'PodMetadataAllowed',
  AuditModeAllowed: 'AuditModeAllowed',
} as const;

export const REASON = {
  // Ready
  Ready: 'Ready',
  InvalidSpec: 'InvalidSpec',
  // AgentReady
  AgentAvailable: 'AgentAvailable',
  /** Still True: a replica serves, but another pod fails (pod-status.ts says why). */
  AgentDegraded: 'AgentDegraded',
  AgentPodsNotReady: 'AgentPodsNotReady',
  // ... and why, from the agent pods' status (src/operator/database/pod-status.ts)
  AgentCrashLooping: 'AgentCrashLooping',
  AgentOOMKilled: 'AgentOOMKilled',
  AgentImagePullFailed: 'AgentImagePullFailed',
  AgentUnschedulable: 'AgentUnschedulable',
  AgentPodsRejected: 'AgentPodsRejected',
  AgentScaledToZero: 'AgentScaledToZero',
  AgentDeploying: 'AgentDeploying',
  AgentApplyFailed: 'AgentApplyFailed',
  // BackendReachable
  BackendReachable: 'BackendReachable',
  BackendUnreachable: 'BackendUnreachable',
  BackendDNSFailed: 'BackendDNSFailed',
  BackendTLSFailed: 'BackendTLSFailed',
  BackendTLSUnavailable: 'BackendTLSUnavailable',
  Probing: 'Probing',
  // CredentialsReady
  SecretFound: 'SecretFound',
  SecretNotFound: 'SecretNotFound',
  SecretKeyMissing: 'SecretKeyMissing',
  SecretUnreadable: 'SecretUnreadable',
  CASecretNotFound: 'CASecretNotFound',
  CredentialsFromCloudIdentity: 'CredentialsFromCloudIdentity',
  AgentIdentityMissing: 'AgentIdentityMissing',
  /** An AWS Database outside the Helm value aws.namespaces: the controller lends it no AWS identity. */
  AWSNamespaceNotAllowed: 'AWSNamespaceNotAllowed',
  Passthrough: 'Passthrough',
  Checking: 'Checking',
  // WorkloadTokensScoped
  DatabaseAudience: 'DatabaseAudience',
  /** False: spec.workloads.acceptSharedAudience lets tokens for any agent in (a Warning Event too). */
  SharedAudienceAccepted: 'SharedAudienceAccepted',
  // PodMetadataAllowed
  PodMetadataAllowed: 'PodMetadataAllowed',
  /**
   * False: spec.agent.podLabels/podAnnotations set keys the platform forbids (Helm
   * agents.forbiddenPodMetadataKeys: log collectors' skip switches); the agent runs without them.
   */
  PodMetadataForbidden: 'PodMetadataForbidden',
  // AuditModeAllowed
  AuditModeAllowed: 'AuditModeAllowed',
  /**
   * False: spec.audit.mode asks for another mode than the one the platform enforces (Helm
   * agents.audit.enforce); the agent keeps the platform's.
   */
  AuditModeEnforced: 'AuditModeEnforced',
} as const;
export type Reason = (typeof REASON)[keyof typeof REASON];
