// The manifests the operator end-to-end suite applies: Databases for PostgreSQL and the Redis Cluster,
// their Secrets, and the access rules (alice by name, the `app` workload by ServiceAccount).
import type { PostgresServer } from '../../support/postgres.js';
import { CLUSTER_USERS, type RedisCluster } from '../../support/redis-cluster.js';

export const NS = 'shop';
export const PASSWORDS = { alice: 'alice-pw', carol: 'carol-pw' };
const DRAWBRIDGE = 'drawbridge.dev/v1alpha1';

export function database(
  postgres: PostgresServer,
  name: string,
  spec: object = {},
  labels = { env: 'prod' },
) {
  return {
    apiVersion: DRAWBRIDGE,
    kind: 'Database',
    metadata: { name, namespace: NS, labels },
    spec: {
      protocol: 'postgres',
      uri: `postgres://127.0.0.1:${postgres.port}/orders`,
      tls: { mode: 'verify-full', caSecretRef: { name: 'pg-ca', key: 'ca.crt' } },
      auth: { type: 'password', secretRef: { name: 'pg-passwords' } },
      ...spec,
    },
  };
}

export const accessDocs = () => [
  {
    apiVersion: DRAWBRIDGE,
    kind: 'AccessRole',
    metadata: { name: 'dev', namespace: NS },
    spec: {
      allow: { databaseLabels: { env: 'prod' }, databaseUsers: ['{{traits.dbUsers}}'], databaseNames: ['*'] },
      options: { maxSessionTTL: '1h' },
    },
  },
  {
    apiVersion: DRAWBRIDGE,
    kind: 'DatabaseUser',
    metadata: { name: 'alice', namespace: NS },
    spec: { subjects: [{ kind: 'User', name: 'alice' }], roles: ['dev'], traits: { dbUsers: ['alice'] } },
  },
  {
    apiVersion: DRAWBRIDGE,
    kind: 'DatabaseUser',
    metadata: { name: 'app', namespace: NS },
    spec: {
      subjects: [{ kind: 'ServiceAccount', name: 'app', namespace: NS }],
      roles: ['dev'],
      traits: { dbUsers: ['carol'] },
    },
  },
];

export const secret = (name: string, stringData: Record<string, string>) => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name, namespace: NS },
  stringData,
});

/** A Database for the 6-node TLS Redis Cluster, reachable as database user `app` by alice and the app workload. */
export const redisDocs = (cluster: RedisCluster) => [
  secret('cluster-ca', { 'ca.crt': cluster.tls.caPem }),
  secret('cluster-login', { app: CLUSTER_USERS.app.password }),
  {
    apiVersion: DRAWBRIDGE,
    kind: 'Database',
    metadata: { name: 'sessions', namespace: NS, labels: { env: 'prod' } },
    spec: {
      protocol: 'redis',
      uri: cluster.uri(),
      tls: { mode: 'verify-full', caSecretRef: { name: 'cluster-ca', key: 'ca.crt' } },
      auth: { type: 'password', secretRef: { name: 'cluster-login' } },
    },
  },
  {
    apiVersion: DRAWBRIDGE,
    kind: 'AccessRole',
    metadata: { name: 'cache', namespace: NS },
    spec: {
      allow: { databaseLabels: { env: 'prod' }, databaseUsers: ['app'] },
      deny: { redisCommands: ['@dangerous'] },
    },
  },
  {
    apiVersion: DRAWBRIDGE,
    kind: 'DatabaseUser',
    metadata: { name: 'cache-users', namespace: NS },
    spec: {
      subjects: [
        { kind: 'User', name: 'alice' },
        { kind: 'ServiceAccount', name: 'app', namespace: NS },
      ],
      roles: ['cache'],
    },
  },
];
