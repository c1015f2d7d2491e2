// `drawbridge ca status` and `drawbridge ca rotate PHASE`: the Drawbridge CA's rotation
// (operator/ca-rotation.ts) from a shell. `rotate` checks the step first, as the controller would (a
// refused one is never asked for), sets the annotation on Secret drawbridge-ca, and waits until the
// controller reports the phase on ConfigMap drawbridge-ca. `status` reads only that public ConfigMap.
import { X509Certificate } from 'node:crypto';
import { Command, InvalidArgumentError, Option } from 'commander';
import { DrawbridgeError } from '../../errors.js';
import { durationArg } from '../args.js';
import type { KubeClient } from '../../kube/client.js';
import type { KubeObject } from '../../kube/types.js';
import { pemCertificates } from '../../pki/pem.js';
import { loadKubeConfig } from './controller.js';

interface Flags {
  kubeconfig?: string;
  namespace: string;
  /** ms */
  timeout: number;
}

type WithData = KubeObject & { data?: Record<string, string> };

async function connect(flags: Flags) {
  const [{ KubeClient }, rotation, store, { objectPath }] = await Promise.all([
    import('../../kube/client.js'),
    import('../../operator/ca-rotation.js'),
    import('../../operator/ca-store.js'),
    import('../../kube/resources.js'),
  ]);
  const client: KubeClient = await KubeClient.fromKubeConfig(await loadKubeConfig(flags.kubeconfig));
  const ns = flags.namespace;
  const status = async () => {
    const cm = await client.get<WithData>(objectPath('ConfigMap', store.CA_CONFIGMAP_NAME, ns));
    const a = cm.metadata.annotations ?? {};
    return {
      phase: a[rotation.ANNOTATION_CA_PHASE] ?? 'unknown',
      message: a[rotation.ANNOTATION_CA_MESSAGE] ?? '',
      cas: pemCertificates(cm.data?.['ca.crt'] ?? '').map((p) => new X509Certificate(p)),
    };
  };
  return { client, rotation, store, objectPath, ns, status };
}

function print(s: { phase: string; message: string; cas: X509Certificate[] }): void {
  const lines = [`phase: ${s.phase}`, s.message];
  // The signing CA comes first in the bundle (trustBundle).
  s.cas.forEach((ca, i) =>
    lines.push(`${i ? 'trusted' : 'signing'}: ${ca.subject.replace(/\n/g, ', ')}, expires ${ca.validTo}`),
  );
  process.stdout.write(`${lines.filter(Boolean).join('\n')}\n`);
}

export function caCommand(): Command {
  const ca = new Command('ca').description("the Drawbridge CA: its rotation's phase, and the next step");
  const common = (cmd: Command) =>
    cmd
      .option('--kubeconfig <file>', 'kubeconfig (default: $KUBECONFIG, ~/.kube/config, then in-cluster)')
      .option(
        '--namespace <ns>',
        "the controller's namespace (where kubectl db login looks)",
        process.env.DRAWBRIDGE_NAMESPACE ?? 'drawbridge',
      );
  common(ca.command('status').description('the phase, what to do next, and the CAs trusted')).action(
    async (flags: Flags) => print(await (await connect(flags)).status()),
  );
  common(
    ca
      .command('rotate')
      .argument('<phase>', 'init (trust a new CA), update (it signs), standby (drop the old one)', (v) => {
        if (!['init', 'update', 'standby'].includes(v))
          throw new InvalidArgumentError('init, update or standby');
        return v;
      })
      .description('ask the controller for the next phase of a CA rotation, and wait for it'),
  )
    .addOption(
      new Option('--timeout <duration>', 'how long to wait for the controller')
        .argParser(durationArg('1s'))
        .default(60_000, '60s'),
    )
    .action(async (phase: string, flags: Flags) => {
      const { client, rotation, store, objectPath, ns, status } = await connect(flags);
      const path = objectPath('Secret', store.CA_SECRET_NAME, ns);
      const secret = await client.get<WithData>(path);
      const step = rotation.nextStep(
        rotation.caState(secret.data, `Secret ${ns}/${store.CA_SECRET_NAME}`),
        phase,
      );
      if (step.kind === 'refuse') throw new DrawbridgeError('INVALID_CONFIG', step.message);
      await client.patch(path, 'merge', {
        metadata: { annotations: { [rotation.ANNOTATION_CA_ROTATION]: phase } },
      });
      const deadline = Date.now() + flags.timeout;
      for (;;) {
        const now = await status();
        if (now.phase === phase) return print(now);
        if (Date.now() > deadline) {
          throw new DrawbridgeError(
            'KUBE_ERROR',
            `the controller did not report phase ${phase} within ${flags.timeout / 1000}s (it reports ${now.phase})`,
            `check that it runs (kubectl -n ${ns} get pods) and its Events ` +
              `(kubectl -n ${ns} get events --field-selector involvedObject.name=${store.CA_SECRET_NAME})`,
          );
        }
        await new Promise((r) => setTimeout(r, 500));
      }
    });
  return ca;
}
