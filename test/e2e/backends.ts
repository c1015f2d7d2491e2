/**
 * The databases of the e2e scenario (test/e2e/scenario.sh), run as host processes the pods reach:
 * a PostgreSQL 15 and a 6-node TLS + ACL Redis Cluster listening on `--host` (the node's address on the
 * pod bridge for `make e2e`, the Docker network's gateway for `make e2e-kind`), accepting PostgreSQL
 * clients from `--clients` (the pod network). Writes the Databases and their Secrets to `--out` and
 * runs until stopped (SIGTERM, or its stdin closing).
 *
 *   node dist/test/e2e/backends.js --host 10.244.0.1 --clients 10.244.0.0/24 --out backends.yaml
 */
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { startPostgres } from '../support/postgres.js';
import { RedisCluster, clusterDatabaseDocs } from '../support/redis-cluster.js';
import { serveUntilStopped } from '../support/serve-until-stopped.js';

/** The PostgreSQL login the agent uses for `app`; people and workloads never see it. */
const APP_PASSWORD = 'app-e2e-password';

const { values } = parseArgs({
  options: { host: { type: 'string' }, clients: { type: 'string' }, out: { type: 'string' } },
});
if (!values.host || !values.clients || !values.out) {
  throw new Error('usage: backends.js --host ADDRESS --clients CIDR --out FILE');
}

const pg = await startPostgres({
  host: values.host,
  clientNetwork: values.clients,
  roles: [{ name: 'app', password: APP_PASSWORD }],
  databases: ['orders'],
});
await pg.admin(
  `CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'lamp'); GRANT SELECT ON items TO app`,
  'orders',
);
const cluster = await RedisCluster.start({ host: values.host });

const secret = (name: string, stringData: Record<string, string>) => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name },
  stringData,
});
const docs = [
  secret('orders-ca', { 'ca.crt': pg.ca.certPem }),
  secret('orders-login', { app: APP_PASSWORD }),
  {
    apiVersion: 'drawbridge.dev/v1alpha1',
    kind: 'Database',
    metadata: { name: 'orders', labels: { team: 'shop', store: 'sql' } },
    spec: {
      protocol: 'postgres',
      uri: `postgres://${pg.host}:${pg.port}/orders`,
      tls: { mode: 'verify-full', caSecretRef: { name: 'orders-ca', key: 'ca.crt' } },
      auth: { type: 'password', secretRef: { name: 'orders-login' } },
    },
  },
  ...clusterDatabaseDocs(cluster, 'sessions', { team: 'shop', store: 'cache' }),
];
await writeFile(values.out, docs.map((d) => stringify(d)).join('---\n'));
process.stdout.write(`backends: PostgreSQL ${pg.host}:${pg.port}, Redis Cluster ${cluster.uri()}\n`);

serveUntilStopped(() => Promise.all([pg.stop(), cluster.stop()]).then(() => undefined), {
  untilStdinEnds: true,
});
