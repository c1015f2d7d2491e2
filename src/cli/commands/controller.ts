import { Command, InvalidArgumentError, Option } from 'commander';
import type { KubeConfig } from '@kubernetes/client-node';
import { createLogger } from '../../log.js';
import { durationArg, loadKubeConfigInto } from '../args.js';

interface ControllerFlags {
  kubeconfig?: string;
  namespace: string;
  agentImage: string;
  agentCommand: string;
  agentPullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  leaderElect: boolean;
  identity?: string;
  ownerDeployment?: string;
  workers: number;
  healthInterval: number;
  healthListen?: string;
  config?: string;
}

const positiveInt = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
};

/** Loads the kubeconfig like kubectl: --kubeconfig, then $KUBECONFIG, ~/.kube/config, in-cluster. */
export async function loadKubeConfig(file?: string): Promise<KubeConfig> {
  // Loaded on use: the Kubernetes client is most of the CLI's memory, and a standalone agent needs none of it.
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  loadKubeConfigInto(kc, file);
  return kc;
}

export function controllerCommand(): Command {
  return new Command('controller')
    .description('run the operator: agents for Databases, the CSR signer for drawbridge.dev/database-client')
    .option('--kubeconfig <file>', 'kubeconfig (default: $KUBECONFIG, ~/.kube/config, then in-cluster)')
    .option(
      '--namespace <ns>',
      'namespace for the CA Secret and the leader Lease (the chart sets it; by hand, where kubectl db looks)',
      process.env.POD_NAMESPACE ?? 'drawbridge',
    )
    .option(
      '--agent-image <image>',
      'agent container image',
      process.env.DRAWBRIDGE_AGENT_IMAGE ?? 'ghcr.io/drawbridge-dev/drawbridge:latest',
    )
    .option('--agent-command <cmd>', 'agent entrypoint, words separated by spaces', 'drawbridge')
    .option('--agent-pull-policy <policy>', 'imagePullPolicy of agent containers')
    .option('--no-leader-elect', 'run without leader election (one replica only)')
    .option('--identity <id>', 'leader election identity (default: hostname_pid)')
    .option(
      '--owner-deployment <name>',
      "the controller's Deployment in --namespace: owns the CA and the Lease, so uninstalling removes them",
    )
    .option('--workers <n>', 'Databases reconciled concurrently', positiveInt, 16)
    .addOption(
      new Option('--health-interval <duration>', 'how often backends are probed')
        .argParser(durationArg('1s'))
        .default(60_000, '60s'),
    )
    .option('--health-listen <host:port>', 'serve /healthz (liveness) and /metrics (Prometheus)')
    .option(
      '--config <file>',
      'settings file (AWS discovery, IAM bootstrap), e.g. /etc/drawbridge/controller.yaml',
    )
    .action(async (flags: ControllerFlags) => {
      const log = createLogger('controller');
      const [
        { allowedAwsNamespaces, loadControllerConfig },
        { podFromEnv },
        { startController },
        { ControllerMetrics },
        { serveMetrics },
      ] = await Promise.all([
        import('../../api/controller-config.js'),
        import('../../operator/aws/index.js'),
        import('../../operator/manager.js'),
        import('../../operator/metrics.js'),
        import('../../agent/metrics-server.js'),
      ]);
      // Checked before anything starts: a bad file stops the controller with the field and the fix.
      const config = flags.config ? await loadControllerConfig(flags.config) : {};
      const metrics = new ControllerMetrics();
      const running = await startController({
        metrics,
        kubeConfig: await loadKubeConfig(flags.kubeconfig),
        namespace: flags.namespace,
        agent: {
          image: flags.agentImage,
          command: flags.agentCommand.split(/\s+/).filter(Boolean),
          ...(flags.agentPullPolicy ? { imagePullPolicy: flags.agentPullPolicy } : {}),
          ...(config.agents?.aws.roleArn ? { awsRoleArn: config.agents.aws.roleArn } : {}),
          ...(config.agents?.aws.podIdentity ? { awsPodIdentity: true } : {}),
          awsNamespaces: allowedAwsNamespaces(config.aws, flags.namespace),
          ...(config.agents?.pod ? { pod: config.agents.pod } : {}),
          ...(config.agents?.audit ? { audit: config.agents.audit } : {}),
          // Unset (no agents in the file): the default list, in manifests.ts.
          ...(config.agents ? { forbiddenPodMetadataKeys: config.agents.forbiddenPodMetadataKeys } : {}),
          ...(config.agents?.networkPolicy ? { networkPolicy: config.agents.networkPolicy } : {}),
        },
        log,
        identity: flags.identity,
        ...(flags.ownerDeployment ? { ownerDeployment: flags.ownerDeployment } : {}),
        leaderElection: flags.leaderElect ? {} : false,
        workers: flags.workers,
        healthIntervalMs: flags.healthInterval,
        onLostLeadership: () => process.exit(1),
        ...(config.aws
          ? {
              aws: {
                config: config.aws,
                pod: podFromEnv(),
                ...(config.agents?.aws.roleArn ? { agentRoleArn: config.agents.aws.roleArn } : {}),
              },
            }
          : {}),
      });
      running.active.catch(() => process.exit(1));
      if (flags.healthListen)
        await serveMetrics(flags.healthListen, metrics, log, () => true, '--health-listen');
      const shutdown = (signal: string) => {
        log.info({ signal }, 'stopping');
        void running.stop().then(() => process.exit(0));
      };
      process.once('SIGTERM', () => shutdown('SIGTERM'));
      process.once('SIGINT', () => shutdown('SIGINT'));
    });
}
