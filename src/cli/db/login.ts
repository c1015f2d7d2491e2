// `kubectl db login NAME --db-user U`: a fresh key pair here, a CertificateSigningRequest for the
// drawbridge.dev/database-client signer, wait for the controller to approve and sign it, then keep the
// key, the certificate and the agents' CA under ~/.drawbridge. The private key never leaves this machine.
import * as k8s from '@kubernetes/client-node';
import { Command, InvalidArgumentError, Option } from 'commander';
import { duration, parseDuration } from '../../api/meta.js';
import { certificateExpiry, createCsr } from '../../pki/ca.js';
import { durationArg } from '../args.js';
import {
  MIN_EXPIRATION_SECONDS,
  checkIssuedCertificate,
  csrObject,
  waitForCertificate,
  type CsrState,
} from './csr.js';
import type { Io } from './io.js';
import { printable } from './printable.js';
import { type GlobalOptions, getDatabase, kubeError, loadTarget, whoami } from './kube.js';
import { Progress } from './progress.js';
import { formatDuration } from './reach.js';
import { describeRef, saveLogin } from './store.js';
import { fetchAgentCA } from './trust.js';

export interface LoginOptions {
  dbUser: string;
  ttl?: number;
  timeout: number;
  controllerNamespace: string;
}

export function parseTtl(text: string): number {
  if (!duration.safeParse(text).success) {
    throw new InvalidArgumentError('use a duration such as 1h, 30m or 1h30m');
  }
  const seconds = Math.round(parseDuration(text) / 1000);
  if (seconds < MIN_EXPIRATION_SECONDS) {
    throw new InvalidArgumentError('Kubernetes signs certificates for at least 10m');
  }
  return seconds;
}

const PHASE_TEXT: Record<CsrState['phase'], string> = {
  pending: 'waiting for the drawbridge controller to approve',
  approved: 'approved, waiting for the signed certificate',
  issued: 'certificate issued',
  denied: 'denied',
  failed: 'failed',
};

export function loginCommand(io: Io): Command {
  return new Command('login')
    .description('get a short-lived client certificate for a database (Kubernetes CSR)')
    .argument('<name>', 'Database name')
    .requiredOption('--db-user <user>', 'database user to log in as')
    .option('--ttl <duration>', "certificate lifetime (capped by your roles' maxSessionTTL)", parseTtl)
    .addOption(
      new Option('--timeout <duration>', 'how long to wait for approval')
        .argParser(durationArg('1s'))
        .default(120_000, '2m'),
    )
    .option(
      '--controller-namespace <ns>',
      'namespace of the drawbridge controller',
      process.env.DRAWBRIDGE_NAMESPACE ?? 'drawbridge',
    )
    .action(async (name: string, opts: LoginOptions, cmd: Command) => {
      const target = loadTarget(cmd.optsWithGlobals<GlobalOptions>());
      const ref = { context: target.context, namespace: target.namespace, name };
      // The CA first: without it the controller is not running and no CSR would ever be signed.
      const [db, identity, caPem] = await Promise.all([
        getDatabase(target, name),
        whoami(target.kc),
        fetchAgentCA(target.kc, opts.controllerNamespace),
      ]);

      // The signer checks that the subject is the requester: CN = user, O = groups, as the API server
      // authenticated us.
      const { csrPem, keyPem } = await createCsr({
        commonName: identity.user,
        organizations: identity.groups,
      });
      const certificates = target.kc.makeApiClient(k8s.CertificatesV1Api);
      let csrName: string;
      try {
        const created = await certificates.createCertificateSigningRequest({
          body: csrObject({
            namespace: target.namespace,
            database: name,
            dbUser: opts.dbUser,
            csrPem,
            expirationSeconds: opts.ttl,
          }),
        });
        csrName = created.metadata!.name!;
      } catch (err) {
        throw kubeError(err, 'creating the CertificateSigningRequest');
      }

      const progress = new Progress(io);
      let certPem: string;
      try {
        certPem = await waitForCertificate(csrName, {
          timeoutMs: opts.timeout,
          read: () =>
            certificates
              .readCertificateSigningRequest({ name: csrName })
              .catch((err: unknown) => Promise.reject(kubeError(err, `reading ${csrName}`))),
          onPhase: (phase, elapsed) => progress.update(`${csrName}: ${PHASE_TEXT[phase]}`, elapsed),
        });
      } finally {
        progress.done();
      }

      // Before anything is stored: our key, the CA we trust for the agents, not expired.
      checkIssuedCertificate(csrName, certPem, keyPem, caPem);
      const expiresAt = certificateExpiry(certPem);
      const login = await saveLogin(
        ref,
        { keyPem, certPem, caPem },
        {
          dbUser: opts.dbUser,
          protocol: db.spec.protocol,
          user: identity.user,
          csrName,
          expiresAt: expiresAt.toISOString(),
        },
      );
      io.out(
        printable(
          `Logged in to ${describeRef(ref)} as database user "${opts.dbUser}" (certificate for "${identity.user}",` +
            ` valid ${formatDuration(expiresAt.getTime() - Date.now())}, in ${login.dir}).\n` +
            `Connect with: kubectl db connect ${name}${target.namespace !== 'default' ? ` -n ${target.namespace}` : ''}\n`,
        ),
      );
    });
}
