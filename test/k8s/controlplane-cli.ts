/**
 * Starts a test control plane from the shell, for demos and poking around:
 *
 *   make k8s-up                     (builds, then runs dist/test/k8s/controlplane-cli.js)
 *   node dist/test/k8s/controlplane-cli.js [--no-controller-manager] [--apiserver-arg=--flag=value ...]
 *
 * Prints how to point kubectl at it and keeps running until Ctrl+C, then removes everything.
 */
import { serveUntilStopped } from '../support/serve-until-stopped.js';
import { startControlPlane } from './controlplane.js';

const plane = await startControlPlane({
  controllerManager: !process.argv.includes('--no-controller-manager'),
  apiServerArgs: process.argv.filter((a) => a.startsWith('--apiserver-arg=')).map((a) => a.slice(16)),
});
process.stdout.write(
  [
    `control plane up at ${plane.server} (state and logs in ${plane.dir})`,
    `  export KUBECONFIG=${plane.kubeconfigPath}`,
    `  export PATH=${plane.binDir}:$PATH`,
    'Ctrl+C stops it.',
    '',
  ].join('\n'),
);

serveUntilStopped(() => plane.stop());
