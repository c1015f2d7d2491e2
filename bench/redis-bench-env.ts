// The servers bench/redis.sh measures: one real Redis 7 (TLS and plaintext ports) and two agents in
// front of it — one with TLS to the backend (the production setting) and one plaintext to the backend
// (the same backend hop nutcracker has). Prints `export NAME=value` lines, then `# ready`, and runs
// until SIGTERM/SIGINT or stdin closes.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createCA, issueCertificate } from '../src/pki/ca.js';
import { createLogger } from '../src/log.js';
import { type TestAgent, startTestAgent } from '../test/support/agent.js';
import { REDIS_USERS, startRedis } from '../test/support/redis.js';

const redis = await startRedis();
const dir = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-redis-bench-'));
const ca = await createCA({ commonName: 'drawbridge bench CA' });
const serving = await issueCertificate(ca, {
  commonName: 'bench agent',
  ipAddresses: ['127.0.0.1'],
  usage: 'server',
});
const client = await issueCertificate(ca, { commonName: 'bench', usage: 'client' });
const files = {
  ca: path.join(dir, 'ca.crt'),
  cert: path.join(dir, 'bench.crt'),
  key: path.join(dir, 'bench.key'),
};
await writeFile(files.ca, ca.certPem);
await writeFile(files.cert, client.certPem);
await writeFile(files.key, client.keyPem, { mode: 0o600 });

function docs(backendTls: boolean): object[] {
  return [
    {
      apiVersion: 'drawbridge.dev/v1alpha1',
      kind: 'Database',
      metadata: { name: 'bench', labels: { env: 'bench' } },
      spec: {
        protocol: 'redis',
        uri: backendTls ? `rediss://127.0.0.1:${redis.tlsPort}` : `redis://127.0.0.1:${redis.plainPort}`,
        tls: backendTls
          ? { mode: 'verify-full', caSecretRef: { name: 'redis-ca', key: 'ca.crt' } }
          : { mode: 'disabled' },
        auth: { type: 'password', secretRef: { name: 'redis-login' } },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'redis-ca' },
      stringData: { 'ca.crt': redis.ca.certPem },
    },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'redis-login' },
      stringData: { default: REDIS_USERS.default.password },
    },
    {
      apiVersion: 'drawbridge.dev/v1alpha1',
      kind: 'AccessRole',
      metadata: { name: 'bench' },
      // A deny rule the hot path evaluates on every command, as in a real policy.
      spec: {
        allow: { databaseLabels: { env: '*' }, databaseUsers: ['default'] },
        deny: { redisCommands: ['shutdown'] },
      },
    },
    {
      apiVersion: 'drawbridge.dev/v1alpha1',
      kind: 'DatabaseUser',
      metadata: { name: 'bench' },
      spec: { subjects: [{ kind: 'User', name: 'bench' }], roles: ['bench'] },
    },
  ];
}

const tls = { certPem: serving.certPem, keyPem: serving.keyPem, clientCaPem: ca.certPem };
const log = createLogger('bench-agent', 'warn');
const agents: TestAgent[] = [
  await startTestAgent({ database: 'bench', docs: docs(true), tls, log }),
  await startTestAgent({ database: 'bench', docs: docs(false), tls, log }),
];

const out = {
  REDIS_TLS_PORT: redis.tlsPort,
  REDIS_PLAIN_PORT: redis.plainPort,
  REDIS_CA: redis.caFile,
  REDIS_PASSWORD: REDIS_USERS.default.password,
  AGENT_PORT: agents[0]!.port,
  AGENT_PLAIN_BACKEND_PORT: agents[1]!.port,
  AGENT_AUDIT: agents[0]!.auditPath,
  CLIENT_CA: files.ca,
  CLIENT_CERT: files.cert,
  CLIENT_KEY: files.key,
};
for (const [k, v] of Object.entries(out)) process.stdout.write(`export ${k}=${v}\n`);
process.stdout.write('# ready\n');

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  for (const a of agents) await a.stop(0);
  await redis.stop();
  await rm(dir, { recursive: true, force: true });
  process.exit(0);
}
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
process.stdin.on('end', () => void stop());
process.stdin.resume();
