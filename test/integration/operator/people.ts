// How people and workloads reach an agent in the operator suites: a CSR login as `kubectl db login`
// makes it, a ServiceAccount token, and a PostgreSQL client verifying the agent's own name.
import pg from 'pg';
import {
  ANNOTATION_DATABASE,
  ANNOTATION_DB_USER,
  SIGNER_NAME,
  agentName,
} from '../../../src/operator/names.js';
import { createCsr } from '../../../src/pki/ca.js';
import { NS } from './docs.js';
import { type OperatorEnv, eventually } from './fixture.js';

export interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}

/** The name an agent's certificate carries (the node agent serves it on a loopback port). */
export const agentHost = (db: string) => `${agentName(db)}.${NS}.svc`;

export function people(env: OperatorEnv, caPem: string) {
  /** What `kubectl db login` does: a CSR created as the person, then the signed certificate. */
  async function login(
    kubeconfig: string,
    csrName: string,
    subject: { cn: string; orgs?: string[] },
    {
      dbUser,
      database = 'orders',
      namespace = NS,
      expirationSeconds = 86_400,
    }: { dbUser?: string; database?: string; namespace?: string; expirationSeconds?: number } = {},
  ) {
    const { csrPem, keyPem } = await createCsr({ commonName: subject.cn, organizations: subject.orgs ?? [] });
    const csr = {
      apiVersion: 'certificates.k8s.io/v1',
      kind: 'CertificateSigningRequest',
      metadata: {
        name: csrName,
        annotations: {
          [ANNOTATION_DATABASE]: `${namespace}/${database}`,
          ...(dbUser ? { [ANNOTATION_DB_USER]: dbUser } : {}),
        },
      },
      spec: {
        request: Buffer.from(csrPem).toString('base64'),
        signerName: SIGNER_NAME,
        usages: ['client auth', 'digital signature'],
        expirationSeconds,
      },
    };
    await env.plane.kubectl(['create', '-f', '-'], { input: JSON.stringify(csr), kubeconfig });
    const done = await eventually(`CSR ${csrName} decided`, async () => {
      const c = await env.get<{ status?: { certificate?: string; conditions?: Condition[] } }>(
        'csr',
        csrName,
      );
      const decided = c?.status?.certificate || c?.status?.conditions?.some((x) => x.type === 'Denied');
      return decided ? c : undefined;
    });
    const certificate = done.status?.certificate
      ? Buffer.from(done.status.certificate, 'base64').toString()
      : undefined;
    return { certificate, keyPem, conditions: done.status?.conditions ?? [] };
  }

  /** A projected-style token for the `app` ServiceAccount (TokenRequest), for `audience` or the API server's. */
  async function token(audience?: string): Promise<string> {
    const args = ['create', 'token', 'app', '-n', NS, ...(audience ? [`--audience=${audience}`] : [])];
    return (await env.plane.kubectl(args)).trim();
  }

  function client(endpoint: string, user: string, tls: { cert?: string; key?: string }, password?: string) {
    const [host, port] = endpoint.split(':');
    return new pg.Client({
      host,
      port: Number(port),
      user,
      password,
      database: 'orders',
      ssl: { ca: caPem, servername: agentHost('orders'), ...tls },
      connectionTimeoutMillis: 10_000,
    });
  }

  return { login, token, client };
}
