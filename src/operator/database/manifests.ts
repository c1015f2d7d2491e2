// What the controller runs for one Database, as plain manifests: a pure function of the Database, the
// agent settings and the serving certificate, so it is unit-tested without an API server and applied
// with server-side apply unchanged.
import type { AgentNetworkPolicy } from '../../api/controller-config.js';
import type { AgentPodSettings } from '../../api/database-agent.js';
import { type AuditMode, type Database, referencedSecrets } from '../../api/database.js';
import { apiVersionOf } from '../../kube/resources.js';
import type { KubeObject, OwnerReference } from '../../kube/types.js';
import {
  AGENT_METRICS_PORT,
  AGENT_TERMINATION_LOG,
  AGENT_TLS_DIR,
  ANNOTATION_DATABASE,
  ANNOTATION_TLS_DIGEST,
  agentLabels,
  agentName,
  agentPeersName,
  agentPort,
  agentSelector,
  agentTlsSecretName,
} from '../names.js';
import {
  ANNOTATION_AGENT_ROLE,
  agentRoleArn,
  agentServiceAccountAnnotations,
  defaultAgentRole,
  withheldAgentRole,
} from './agent-identity.js';
import { forbiddenGlobs, forbiddenPodMetadata, withoutForbidden } from './pod-metadata.js';
import { containerResources, effectivePodSettings, podSpecFields } from './pod-settings.js';

export interface AgentSettings {
  /** Container image of the agent (the drawbridge image). */
  image: string;
  /** Entrypoint; `agent --database NS/NAME ...` follows as args. */
  command: string[];
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** IAM role (EKS IRSA) for agents of AWS Databases that name none themselves (agents.aws.roleArn). */
  awsRoleArn?: string;
  /** Namespaces whose Databases may use the controller's AWS identities (aws.namespaces); empty: all. */
  awsNamespaces?: readonly string[];
  /** The cluster gives agents their role (EKS Pod Identity, agents.aws.podIdentity): nothing to check. */
  awsPodIdentity?: boolean;
  /** Chart-wide pod and Service defaults (agents.pod); a Database's spec.agent wins. */
  pod?: AgentPodSettings;
  /**
   * The agents' default audit mode and stall timeout (Helm agents.audit); a Database's spec.audit wins,
   * but for the mode when `enforce` is set.
   */
  audit?: { mode: AuditMode; stallTimeout: string; enforce?: boolean };
  /** Pod label/annotation key globs a Database may not set (agents.forbiddenPodMetadataKeys); unset: the default list. */
  forbiddenPodMetadataKeys?: readonly string[];
  /** A NetworkPolicy beside each agent (Helm networkPolicy.enabled); unset: none. */
  networkPolicy?: AgentNetworkPolicy;
}

/** A Database as stored: the parsed spec plus the identity fields the API server assigned. */
export type StoredDatabase = Database & { metadata: { namespace: string; uid: string } };

function ownerReference(db: StoredDatabase): OwnerReference {
  return {
    apiVersion: db.apiVersion,
    kind: 'Database',
    name: db.metadata.name,
    uid: db.metadata.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

function meta(db: StoredDatabase, name: string) {
  return {
    name,
    namespace: db.metadata.namespace,
    labels: agentLabels(db.metadata.name),
    annotations: { [ANNOTATION_DATABASE]: `${db.metadata.namespace}/${db.metadata.name}` },
    ownerReferences: [ownerReference(db)],
  };
}

/**
 * `pod`: the effective spec.agent settings: workers (unset, the agent counts the CPUs its cgroup
 * allows) and semiSpaceMB (unset, the launcher's).
 */
export function agentArgs(
  db: StoredDatabase,
  settings: Pick<AgentSettings, 'audit'> = {},
  { workers, semiSpaceMB }: Pick<AgentPodSettings, 'workers' | 'semiSpaceMB'> = {},
): string[] {
  return [
    'agent',
    '--database',
    `${db.metadata.namespace}/${db.metadata.name}`,
    '--listen',
    `0.0.0.0:${agentPort(db.spec.protocol)}`,
    '--tls-dir',
    AGENT_TLS_DIR,
    '--metrics',
    `0.0.0.0:${AGENT_METRICS_PORT}`,
    '--termination-log',
    AGENT_TERMINATION_LOG,
    ...(settings.audit
      ? ['--audit-mode', settings.audit.mode, '--audit-stall-timeout', settings.audit.stallTimeout]
      : []),
    ...(settings.audit?.enforce ? ['--audit-mode-enforced'] : []),
    ...(db.spec.protocol === 'postgres'
      ? [
          '--peers',
          `${agentPeersName(db.metadata.name)}.${db.metadata.namespace}.svc:${agentPort('postgres')}`,
        ]
      : []),
    ...(workers ? ['--workers', String(workers)] : []),
    ...(semiSpaceMB ? ['--semi-space-mb', String(semiSpaceMB)] : []),
  ];
}

export function tlsSecretManifest(db: StoredDatabase, data: Record<string, string>): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: meta(db, agentTlsSecretName(db.metadata.name)),
    type: 'kubernetes.io/tls',
    data,
  };
}

/** Every object but the TLS Secret, in apply order (the Deployment last: it needs the rest). */
export function agentManifests(db: StoredDatabase, settings: AgentSettings, tlsDigest: string): KubeObject[] {
  const name = agentName(db.metadata.name);
  const port = agentPort(db.spec.protocol);
  const secrets = referencedSecrets(db);
  const rbac = 'rbac.authorization.k8s.io';
  const read = ['get', 'list', 'watch'];
  const saMeta = meta(db, name);
  // The Database's own pod labels and annotations without the keys the platform forbids (pod-metadata.ts).
  const forbidden = forbiddenPodMetadata(db.spec.agent, forbiddenGlobs(settings.forbiddenPodMetadataKeys));
  const pod = effectivePodSettings(settings.pod, withoutForbidden(db.spec.agent, forbidden));
  const serviceMeta = meta(db, name);
  const objects: KubeObject[] = [
    {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: {
        ...saMeta,
        annotations: {
          ...agentServiceAccountAnnotations(
            db,
            defaultAgentRole(db.metadata.namespace, settings),
            withheldAgentRole(db.metadata.namespace, settings),
          ),
          ...saMeta.annotations,
        },
      },
    },
    {
      apiVersion: apiVersionOf('Role'),
      kind: 'Role',
      metadata: meta(db, name),
      // Least privilege: its own Database, the namespace's access rules, and only the Secrets it names.
      rules: [
        {
          apiGroups: ['drawbridge.dev'],
          resources: ['databases'],
          resourceNames: [db.metadata.name],
          verbs: read,
        },
        { apiGroups: ['drawbridge.dev'], resources: ['accessroles', 'databaseusers'], verbs: read },
        ...(secrets.length
          ? [{ apiGroups: [''], resources: ['secrets'], resourceNames: secrets, verbs: read }]
          : []),
      ],
    },
    {
      apiVersion: apiVersionOf('RoleBinding'),
      kind: 'RoleBinding',
      metadata: meta(db, name),
      roleRef: { apiGroup: rbac, kind: 'Role', name },
      subjects: [{ kind: 'ServiceAccount', name, namespace: db.metadata.namespace }],
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { ...serviceMeta, annotations: { ...pod.serviceAnnotations, ...serviceMeta.annotations } },
      spec: {
        type: db.spec.agent.serviceType,
        ...(pod.loadBalancerClass && db.spec.agent.serviceType === 'LoadBalancer'
          ? { loadBalancerClass: pod.loadBalancerClass }
          : {}),
        selector: agentSelector(db.metadata.name),
        ports: [{ name: db.spec.protocol, port, targetPort: db.spec.protocol, protocol: 'TCP' }],
      },
    },
  ];
  if (db.spec.protocol === 'postgres') objects.push(peersServiceManifest(db));
  if (db.spec.agent.replicas > 1) objects.push(pdbManifest(db));
  if (settings.networkPolicy) objects.push(networkPolicyManifest(db, settings.networkPolicy));
  objects.push(deploymentManifest(db, settings, pod, tlsDigest));
  return objects;
}

/** Headless, and listing pods that are not ready: cancels must reach a draining replica too. */
function peersServiceManifest(db: StoredDatabase): KubeObject {
  const port = agentPort(db.spec.protocol);
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(db, agentPeersName(db.metadata.name)),
    spec: {
      clusterIP: 'None',
      publishNotReadyAddresses: true,
      selector: agentSelector(db.metadata.name),
      ports: [{ name: db.spec.protocol, port, targetPort: db.spec.protocol, protocol: 'TCP' }],
    },
  };
}

function pdbManifest(db: StoredDatabase): KubeObject {
  return {
    apiVersion: apiVersionOf('PodDisruptionBudget'),
    kind: 'PodDisruptionBudget',
    metadata: meta(db, agentName(db.metadata.name)),
    spec: { maxUnavailable: 1, selector: { matchLabels: agentSelector(db.metadata.name) } },
  };
}

/**
 * Ingress to the agent pods: the listener from the platform's clients (none named: from anywhere) and
 * from the agent's own replicas (a PostgreSQL cancel relayed to the one holding the session), metrics
 * from the monitoring peers. Egress stays open: backends, the API server and AWS are anywhere.
 * NetworkPolicies are namespaced, so each Database's namespace gets its own, made here.
 */
function networkPolicyManifest(db: StoredDatabase, np: AgentNetworkPolicy): KubeObject {
  const pods = { matchLabels: agentSelector(db.metadata.name) };
  const listener = [{ protocol: 'TCP', port: agentPort(db.spec.protocol) }];
  return {
    apiVersion: apiVersionOf('NetworkPolicy'),
    kind: 'NetworkPolicy',
    metadata: meta(db, agentName(db.metadata.name)),
    spec: {
      podSelector: pods,
      policyTypes: ['Ingress'],
      ingress: [
        // The listener: from the platform's clients and the agent's own replicas (PostgreSQL cancels
        // relayed between them); without clients, from anywhere.
        np.clients.length
          ? { ports: listener, from: [...np.clients, { podSelector: pods }] }
          : { ports: listener },
        { ports: [{ protocol: 'TCP', port: AGENT_METRICS_PORT }], from: np.metricsFrom },
      ],
    },
  };
}

function deploymentManifest(
  db: StoredDatabase,
  settings: AgentSettings,
  pod: AgentPodSettings,
  tlsDigest: string,
): KubeObject {
  const name = agentName(db.metadata.name);
  const resources = containerResources(pod);
  const ns = db.metadata.namespace;
  const role = agentRoleArn(db, defaultAgentRole(ns, settings), withheldAgentRole(ns, settings));
  return {
    apiVersion: apiVersionOf('Deployment'),
    kind: 'Deployment',
    metadata: meta(db, name),
    spec: {
      replicas: db.spec.agent.replicas,
      selector: { matchLabels: agentSelector(db.metadata.name) },
      template: {
        metadata: {
          // Ours last: the selector labels and the roll-out annotations cannot be overridden.
          labels: { ...pod.podLabels, ...agentLabels(db.metadata.name) },
          annotations: {
            ...pod.podAnnotations,
            [ANNOTATION_TLS_DIGEST]: tlsDigest,
            ...(role ? { [ANNOTATION_AGENT_ROLE]: role } : {}),
          },
        },
        spec: {
          serviceAccountName: name,
          ...podSpecFields(pod, agentSelector(db.metadata.name)),
          securityContext: {
            runAsNonRoot: true,
            runAsUser: 65532,
            runAsGroup: 65532,
            seccompProfile: { type: 'RuntimeDefault' },
            // The IRSA token is projected readable by the pod's fsGroup only; the agent is not root.
            ...(role ? { fsGroup: 65532 } : {}),
          },
          containers: [
            {
              name: 'agent',
              image: settings.image,
              ...(settings.imagePullPolicy ? { imagePullPolicy: settings.imagePullPolicy } : {}),
              command: settings.command,
              args: agentArgs(db, settings, pod),
              ports: [
                { name: db.spec.protocol, containerPort: agentPort(db.spec.protocol), protocol: 'TCP' },
                { name: 'metrics', containerPort: AGENT_METRICS_PORT, protocol: 'TCP' },
              ],
              readinessProbe: { httpGet: { path: '/healthz', port: 'metrics' }, periodSeconds: 5 },
              // /livez, not /healthz: that one is 503 while the agent drains or restarts its workers, which a
              // liveness probe would punish with a kill. This one fails only when the process stops
              // answering for a minute (a generous budget: a CPU-starved agent is slow, not dead). The
              // agent answers within seconds of its start, so no startupProbe is needed.
              livenessProbe: {
                httpGet: { path: '/livez', port: 'metrics' },
                periodSeconds: 10,
                timeoutSeconds: 5,
                failureThreshold: 6,
              },
              // The agent writes a fatal start-up error (and fix) there; a crash without one leaves the
              // log's tail. Either way the pod's lastState, and the Database's AgentReady, say why.
              terminationMessagePath: AGENT_TERMINATION_LOG,
              terminationMessagePolicy: 'FallbackToLogsOnError',
              ...(resources ? { resources } : {}),
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'] },
              },
              volumeMounts: [{ name: 'tls', mountPath: AGENT_TLS_DIR, readOnly: true }],
            },
          ],
          volumes: [{ name: 'tls', secret: { secretName: agentTlsSecretName(db.metadata.name) } }],
        },
      },
    },
  };
}
