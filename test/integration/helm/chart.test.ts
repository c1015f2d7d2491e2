/**
 * The Helm chart against a real API server: lint, render, and validate the rendered objects with a
 * server-side dry run. Installing it and its RBAC decisions: install.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { parseControllerConfig } from '../../../src/api/controller-config.js';
import { Database } from '../../../src/api/database.js';
import { DEFAULT_FORBIDDEN_POD_METADATA_KEYS } from '../../../src/api/database-agent.js';
import { type StoredDatabase, agentManifests } from '../../../src/operator/database/manifests.js';
import { CHART, type Doc, helmFixture } from './helm.js';

const NS = 'drawbridge';
const fx = helmFixture(NS);
const { helm, template } = fx;

describe('charts/drawbridge', () => {
  it('passes helm lint --strict, with default and with AWS values', async () => {
    await helm(['lint', CHART, '--strict']);
    await helm([
      'lint',
      CHART,
      '--strict',
      '--set',
      'aws.roleArn=arn:aws:iam::123456789012:role/drawbridge',
      '--set',
      'aws.matchers[0].types={rds,elasticache}',
      '--set',
      'aws.matchers[0].regions={eu-west-1}',
    ]);
  });

  it('renders the controller, its least-privilege RBAC and the IRSA annotation', async () => {
    const docs = await template(
      'aws.roleArn=arn:aws:iam::123456789012:role/drawbridge',
      'users.groups={devs}',
    );
    const kinds = docs.map((d) => `${d.kind}/${d.metadata.name}`).sort();
    expect(kinds).toEqual([
      'ClusterRole/drawbridge-agent-tokenreview',
      'ClusterRole/drawbridge-controller',
      'ClusterRole/drawbridge-user',
      'ClusterRoleBinding/drawbridge-controller',
      'ClusterRoleBinding/drawbridge-user',
      'ConfigMap/drawbridge-controller',
      'CustomResourceDefinition/accessroles.drawbridge.dev',
      'CustomResourceDefinition/databases.drawbridge.dev',
      'CustomResourceDefinition/databaseusers.drawbridge.dev',
      'Deployment/drawbridge-controller',
      'PodDisruptionBudget/drawbridge-controller',
      'Role/drawbridge-ca-reader',
      'Role/drawbridge-controller',
      'RoleBinding/drawbridge-ca-reader',
      'RoleBinding/drawbridge-controller',
      'ServiceAccount/drawbridge',
    ]);
    const sa = docs.find((d) => d.kind === 'ServiceAccount')!;
    expect(sa.metadata.annotations).toEqual({
      'eks.amazonaws.com/role-arn': 'arn:aws:iam::123456789012:role/drawbridge',
    });
    const deploy = docs.find((d) => d.kind === 'Deployment') as Doc & {
      spec: { replicas: number; template: { spec: { containers: { args: string[] }[] } } };
    };
    expect(deploy.spec.replicas).toBe(2);
    expect(deploy.spec.template.spec.containers[0]!.args).toEqual([
      'controller',
      '--agent-image=ghcr.io/drawbridge-dev/drawbridge:0.1.0',
      '--agent-pull-policy=IfNotPresent',
      '--identity=$(POD_NAME)',
      '--owner-deployment=drawbridge-controller',
      '--health-listen=0.0.0.0:8081',
      '--config=/etc/drawbridge/controller.yaml',
    ]);
  });

  it('writes a controller.yaml that the controller itself accepts, with every AWS value', async () => {
    const settings = async (...set: string[]) => {
      const cm = (await template(...set)).find((d) => d.kind === 'ConfigMap') as Doc & {
        data: Record<string, string>;
      };
      return parseControllerConfig(cm.data['controller.yaml']!, 'controller.yaml');
    };
    expect((await settings()).aws).toEqual({
      matchers: [],
      namespaces: [],
      discoveryInterval: '5m',
      iamBootstrap: 'print',
      managedUsers: { rotationInterval: '15m' },
      enableIamAuth: false,
    });
    const aws = await settings(
      'aws.iamBootstrap=attach',
      'aws.discoveryInterval=30s',
      'aws.namespace=aws-dbs',
      'aws.namespaces={team-a,team-b}',
      'aws.enableIamAuth=true',
      'aws.managedUsers.rotationInterval=5m',
      'aws.matchers[0].types={rds,elasticache}',
      'aws.matchers[0].regions={eu-west-1}',
      'aws.matchers[0].tags.env=prod',
      'aws.matchers[0].assumeRoleArn=arn:aws:iam::123456789012:role/discovery',
      'aws.matchers[0].externalId=ext-1',
      'aws.rdsCaBundle.secretName=rds-ca-bundle',
    );
    expect(aws.aws).toEqual({
      iamBootstrap: 'attach',
      discoveryInterval: '30s',
      namespace: 'aws-dbs',
      namespaces: ['team-a', 'team-b'],
      enableIamAuth: true,
      managedUsers: { rotationInterval: '5m' },
      rdsCaSecretRef: { name: 'rds-ca-bundle', key: 'ca.crt' },
      matchers: [
        {
          types: ['rds', 'elasticache'],
          regions: ['eu-west-1'],
          tags: { env: 'prod' },
          assumeRoleArn: 'arn:aws:iam::123456789012:role/discovery',
          externalId: 'ext-1',
        },
      ],
    });
    const agentRole = 'arn:aws:iam::123456789012:role/drawbridge-agents';
    const audit = { mode: 'required', stallTimeout: '30s', enforce: false };
    // The chart's default list is the controller's own (what it uses with no config file).
    const forbiddenPodMetadataKeys = [...DEFAULT_FORBIDDEN_POD_METADATA_KEYS];
    expect((await settings(`agents.aws.roleArn=${agentRole}`)).agents).toEqual({
      aws: { roleArn: agentRole, podIdentity: false },
      audit,
      forbiddenPodMetadataKeys,
    });
    expect((await settings('agents.aws.podIdentity=true')).agents).toEqual({
      aws: { podIdentity: true },
      audit,
      forbiddenPodMetadataKeys,
    });
    expect((await settings()).agents).toEqual({
      aws: { podIdentity: false },
      audit,
      forbiddenPodMetadataKeys,
    });
    expect(
      (await settings('agents.forbiddenPodMetadataKeys={logs.example.com/*,fluentbit.io/*}')).agents
        ?.forbiddenPodMetadataKeys,
    ).toEqual(['logs.example.com/*', 'fluentbit.io/*']);
    expect(
      (await settings('agents.audit.mode=best-effort', 'agents.audit.stallTimeout=2m')).agents?.audit,
    ).toEqual({ mode: 'best-effort', stallTimeout: '2m', enforce: false });
    expect((await settings('agents.audit.enforce=true')).agents?.audit).toEqual({ ...audit, enforce: true });
    const pod = await settings(
      'agents.pod.nodeSelector.pool=db',
      'agents.pod.priorityClassName=high',
      'agents.pod.resources.requests.cpu=1',
      'agents.pod.tolerations[0].key=dedicated',
      'agents.pod.tolerations[0].operator=Exists',
    );
    expect(pod.agents?.pod).toEqual({
      nodeSelector: { pool: 'db' },
      priorityClassName: 'high',
      resources: { requests: { cpu: 1 } },
      tolerations: [{ key: 'dedicated', operator: 'Exists' }],
    });
  });

  it('renders the monitoring objects only when asked, scraping the ports the pods serve', async () => {
    const kinds = (docs: Doc[]) => docs.map((d) => d.kind);
    expect(kinds(await template())).not.toEqual(expect.arrayContaining(['ServiceMonitor']));
    const docs = await template(
      'metrics.serviceMonitor.enabled=true',
      'metrics.podMonitor.enabled=true',
      'metrics.prometheusRule.enabled=true',
      'metrics.prometheusRule.labels.release=kube-prometheus',
      'metrics.dashboard.enabled=true',
    );
    const of = (kind: string) => docs.find((d) => d.kind === kind)!;
    expect(of('ServiceMonitor').spec).toMatchObject({ endpoints: [{ port: 'health', path: '/metrics' }] });
    expect(of('PodMonitor').spec).toMatchObject({
      namespaceSelector: { any: true },
      selector: { matchLabels: { 'app.kubernetes.io/name': 'drawbridge-agent' } },
      podMetricsEndpoints: [{ port: 'metrics' }],
    });
    const rule = of('PrometheusRule') as Doc & { spec: { groups: { rules: { alert: string }[] }[] } };
    expect((rule.metadata as { labels?: object }).labels).toMatchObject({ release: 'kube-prometheus' });
    expect(rule.spec.groups[0]!.rules.map((r) => r.alert)).toContain('DrawbridgeCertificateExpiresSoon');
    const dashboard = docs.find(
      (d) => d.kind === 'ConfigMap' && d.metadata.name.endsWith('-dashboard'),
    ) as Doc & {
      data: Record<string, string>;
    };
    expect((dashboard.metadata as { labels?: object }).labels).toMatchObject({ grafana_dashboard: '1' });
    expect(JSON.parse(dashboard.data['drawbridge.json']!).uid).toBe('drawbridge');
    // The Service must select the controller pods and name the port their container declares.
    const service = docs.find((d) => d.kind === 'Service') as Doc & {
      spec: { ports: { targetPort: string }[] };
    };
    const deploy = of('Deployment') as Doc & {
      spec: { template: { spec: { containers: { ports: { name: string }[] }[] } } };
    };
    expect(deploy.spec.template.spec.containers[0]!.ports.map((p) => p.name)).toContain(
      service.spec.ports[0]!.targetPort,
    );
  });

  it('pins the image by digest for the controller and its agents, with extra env and pod labels', async () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    const docs = await template(
      `image.digest=${digest}`,
      'controller.podLabels.team=platform',
      'controller.podLabels.app\\.kubernetes\\.io/name=hijack',
      'controller.extraEnv[0].name=HTTPS_PROXY',
      'controller.extraEnv[0].value=http://proxy:3128',
    );
    const deploy = docs.find((d) => d.kind === 'Deployment') as Doc & {
      spec: {
        selector: { matchLabels: Record<string, string> };
        template: {
          metadata: { labels: Record<string, string> };
          spec: { containers: { image: string; args: string[]; env: { name: string; value?: string }[] }[] };
        };
      };
    };
    const [c] = deploy.spec.template.spec.containers;
    expect(c!.image).toBe(`ghcr.io/drawbridge-dev/drawbridge@${digest}`);
    expect(c!.args).toContain(`--agent-image=ghcr.io/drawbridge-dev/drawbridge@${digest}`);
    expect(c!.env).toContainEqual({ name: 'HTTPS_PROXY', value: 'http://proxy:3128' });
    // The selector's labels come last, so a podLabels entry cannot detach the pods from the Deployment.
    expect(deploy.spec.template.metadata.labels).toMatchObject({
      team: 'platform',
      ...deploy.spec.selector.matchLabels,
    });
    const err = (await template('image.digest=latest').catch((e: unknown) => e)) as { stderr?: string };
    expect(err.stderr).toMatch(/digest/);
  });

  it('leaves out the PodDisruptionBudget and leader election when asked to', async () => {
    const docs = await template('controller.replicas=1', 'controller.leaderElection=false');
    expect(docs.some((d) => d.kind === 'PodDisruptionBudget')).toBe(false);
    const deploy = docs.find((d) => d.kind === 'Deployment') as Doc & {
      spec: { template: { spec: { containers: { args: string[] }[] } } };
    };
    expect(deploy.spec.template.spec.containers[0]!.args).toContain('--no-leader-elect');
  });

  it('refuses several replicas without leader election', async () => {
    const err = (await template('controller.leaderElection=false').catch((e: unknown) => e)) as {
      stderr?: string;
    };
    expect(err.stderr).toMatch(/controller.leaderElection=false needs controller.replicas=1/);
  });

  it.each([
    ['controller.replicas=0', /replicas/],
    ['aws.roleArn=my-role', /roleArn/],
    ['agents.aws.roleArn=my-role', /agents\/aws\/roleArn/],
    ['aws.rdsCaBundle.secretName=Bad_Name', /rdsCaBundle\/secretName/],
    ['image.pullPolicy=Sometimes', /pullPolicy/],
    ['controllr.replicas=2', /controllr/],
    ['aws.iamBootstrap=sometimes', /iamBootstrap/],
    ['aws.discoveryInterval=often', /discoveryInterval/],
    ['aws.namespaces={Team_A}', /namespaces/],
    ['networkPolicy.agentClients[0].podSelector.matchLabel.x=y', /agentClients/],
  ])('rejects %s through values.schema.json', async (value, field) => {
    const err = (await template(value).catch((e: unknown) => e)) as { stderr?: string };
    expect(err.stderr).toMatch(/values don't meet the specifications of the schema/);
    expect(err.stderr).toMatch(field);
  });

  it('rejects an AWS matcher with an unknown database type', async () => {
    const err = (await template('aws.matchers[0].types={mysql}', 'aws.matchers[0].regions={us-east-1}').catch(
      (e: unknown) => e,
    )) as { stderr?: string };
    expect(err.stderr).toMatch(/types/);
  });

  it('runs the controller and its agents under the Pod Security Standards restricted profile', async () => {
    const ns = 'restricted';
    await fx.plane.kubectl(['create', 'namespace', ns]);
    await fx.plane.kubectl(['label', 'namespace', ns, 'pod-security.kubernetes.io/enforce=restricted']);
    type PodSpec = { containers: { securityContext: Record<string, unknown> }[] };
    type WithPod = { kind: string; spec: { template: { spec: PodSpec } } };
    const controller = (await template()).find((d) => d.kind === 'Deployment') as Doc & WithPod;
    const db = Database.parse({
      apiVersion: 'drawbridge.dev/v1alpha1',
      kind: 'Database',
      metadata: { name: 'orders', namespace: ns, uid: 'u-1' },
      spec: { protocol: 'postgres', uri: 'postgres://db:5432', auth: { type: 'passthrough' } },
    }) as StoredDatabase;
    const agent = agentManifests(db, { image: 'drawbridge:test', command: ['drawbridge'] }, 'digest').find(
      (o) => o.kind === 'Deployment',
    ) as unknown as WithPod;
    const create = (name: string, spec: PodSpec) =>
      fx.plane.kubectl(['create', '--dry-run=server', '-f', '-'], {
        input: JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns }, spec }),
      });
    expect(await create('controller', controller.spec.template.spec)).toContain('created (server dry run)');
    expect(await create('agent', agent.spec.template.spec)).toContain('created (server dry run)');
    // The namespace does enforce it: one container allowed to escalate is refused.
    const loose = structuredClone(agent.spec.template.spec);
    loose.containers[0]!.securityContext.allowPrivilegeEscalation = true;
    await expect(create('loose', loose)).rejects.toThrow(/violates PodSecurity "restricted/);
  });

  it('renders objects the API server accepts (server-side dry run)', async () => {
    const out = await helm(['template', 'drawbridge', CHART, '-n', NS, '--set', 'users.groups={devs}']);
    const applied = await fx.plane.kubectl(['apply', '--dry-run=server', '-n', NS, '-f', '-'], {
      input: out,
    });
    expect(applied).toMatch(/deployment.apps\/drawbridge-controller created \(server dry run\)/);
  });
});
