// From "what AWS has" to Database objects: naming, labels and spec. Pure, so the reconcile can be
// tested on data alone.
//   name:   <aws name>[-reader|-<custom endpoint>]-<type>-<region>-<account>, or the value of the
//           AWS tag drawbridge.dev/name (plus the endpoint suffix);
//   labels: region, account-id, engine, engine-version, endpoint-type, vpc-id, the AWS tags made into
//           valid label keys/values (never an error), and drawbridge.dev/origin=aws;
//   the AWS tags verbatim in the annotation drawbridge.dev/aws-tags;
//   tls:    verify-full. RDS and Aurora server certificates chain to the Amazon RDS CAs, which are
//           not public roots, so those get spec.tls.caSecretRef (the bundle's Secret, when the
//           controller has one). Redshift (ACM) and ElastiCache (Amazon Trust Services) certificates
//           chain to public roots: system roots.
import { API_VERSION } from '../../api/meta.js';
import { type AuthType, type AwsType, Database, type Protocol } from '../../api/database.js';

export const ORIGIN_LABEL = 'drawbridge.dev/origin';
export const ORIGIN_AWS = 'aws';
const NAME_TAG = 'drawbridge.dev/name';
const TAGS_ANNOTATION = 'drawbridge.dev/aws-tags';

export interface FoundDatabase {
  type: AwsType;
  region: string;
  account: string;
  /** The AWS resource name (instance, cluster, replication group, workgroup, cache). */
  name: string;
  /** primary, reader, configuration, custom (Aurora custom endpoints also set `endpointName`). */
  endpointType: 'instance' | 'primary' | 'reader' | 'configuration' | 'custom' | 'workgroup' | 'serverless';
  endpointName?: string;
  protocol: Protocol;
  host: string;
  port: number;
  tls: boolean;
  /** Redis Cluster (ElastiCache cluster mode on). */
  cluster?: boolean;
  engine: string;
  engineVersion?: string;
  vpcId?: string;
  tags: Record<string, string>;
  identifiers: Record<string, string>;
  auth: AuthType;
  /** RDS/Aurora: IAM database authentication is on. */
  iamAuthEnabled?: boolean;
  assumeRoleArn?: string;
  externalId?: string;
}

/** A Secret key holding the Amazon RDS CA bundle (global-bundle.pem), in the Databases' namespace. */
export interface CaSecretRef {
  name: string;
  key: string;
}

/** Database types whose server certificates chain to the Amazon RDS CAs. */
export function needsRdsCa(type: AwsType): boolean {
  return type === 'rds' || type === 'aurora';
}

const LABEL_NAME_MAX = 63;

/** Any string → a valid label value (≤ 63 chars of [A-Za-z0-9._-], alphanumeric at both ends). */
export function labelValue(raw: string): string {
  return raw
    .replace(/[^A-Za-z0-9._-]+/g, '_')
    .slice(0, LABEL_NAME_MAX)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
}

/** Any tag key → a valid label key, or undefined when nothing usable remains. */
export function labelKey(raw: string): string | undefined {
  const slash = raw.lastIndexOf('/');
  const prefix = slash > 0 ? raw.slice(0, slash).toLowerCase() : '';
  const name = labelValue(slash >= 0 ? raw.slice(slash + 1) : raw);
  if (!name) return undefined;
  const validPrefix =
    /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(prefix) && prefix.length <= 253;
  return validPrefix ? `${prefix}/${name}` : labelValue(raw.replace(/\//g, '_')) || undefined;
}

/** DNS-1123 object name from anything. */
function objectNameOf(raw: string): string {
  return raw
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, '-')
    .replace(/-{2,}/g, '-')
    .slice(0, 253)
    .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '');
}

function suffix(f: FoundDatabase): string {
  if (f.endpointType === 'reader') return '-reader';
  if (f.endpointType === 'custom') return `-${f.endpointName}`;
  return '';
}

export function databaseName(f: FoundDatabase): string {
  const override = f.tags[NAME_TAG];
  return objectNameOf(
    override ? `${override}${suffix(f)}` : `${f.name}${suffix(f)}-${f.type}-${f.region}-${f.account}`,
  );
}

export function databaseLabels(f: FoundDatabase): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(f.tags)) {
    const key = labelKey(k);
    if (key) labels[key] = labelValue(v);
  }
  const own: Record<string, string | undefined> = {
    region: f.region,
    'account-id': f.account,
    engine: f.engine,
    'engine-version': f.engineVersion,
    'endpoint-type': f.endpointType,
    'vpc-id': f.vpcId,
    [ORIGIN_LABEL]: ORIGIN_AWS,
  };
  for (const [k, v] of Object.entries(own)) if (v) labels[k] = labelValue(v);
  return labels;
}

function uri(f: FoundDatabase): string {
  if (f.protocol === 'postgres') return `postgres://${f.host}:${f.port}`;
  return `${f.tls ? 'rediss' : 'redis'}://${f.host}:${f.port}${f.cluster ? '?mode=cluster' : ''}`;
}

function tls(f: FoundDatabase, rdsCa: CaSecretRef | undefined) {
  if (!f.tls) return { mode: 'disabled' };
  return { mode: 'verify-full', ...(rdsCa && needsRdsCa(f.type) ? { caSecretRef: rdsCa } : {}) };
}

/**
 * The Database objects discovery wants to exist, fully defaulted (comparable with what the API server
 * has). `rdsCa`: the Amazon RDS CA bundle's Secret for RDS/Aurora (see the header).
 */
export function desiredDatabases(
  found: FoundDatabase[],
  namespace?: string,
  rdsCa?: CaSecretRef,
): Database[] {
  const byName = new Map<string, Database>();
  for (const f of found) {
    const name = databaseName(f);
    byName.set(
      name,
      Database.parse({
        apiVersion: API_VERSION,
        kind: 'Database',
        metadata: {
          name,
          ...(namespace ? { namespace } : {}),
          labels: databaseLabels(f),
          annotations: { [TAGS_ANNOTATION]: JSON.stringify(f.tags) },
        },
        spec: {
          protocol: f.protocol,
          uri: uri(f),
          tls: tls(f, rdsCa),
          auth: { type: f.auth },
          aws: {
            type: f.type,
            region: f.region,
            accountId: f.account,
            identifiers: f.identifiers,
            ...(f.assumeRoleArn ? { assumeRoleArn: f.assumeRoleArn } : {}),
            ...(f.externalId ? { externalId: f.externalId } : {}),
          },
        },
      }),
    );
  }
  return [...byName.values()].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
}

export interface DiscoveryPlan {
  create: Database[];
  update: Database[];
  delete: Database[];
}

/**
 * What comparison covers: the parts discovery owns. Keys are sorted, because the API server returns
 * maps (labels, identifiers) in key order while discovery builds them in its own.
 */
function owned(db: Database): string {
  const sorted = (_: string, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v;
  return JSON.stringify(
    [db.spec, db.metadata.labels ?? {}, db.metadata.annotations?.[TAGS_ANNOTATION] ?? ''],
    sorted,
  );
}

/**
 * The changes that bring `existing` to `desired`. Only objects labelled drawbridge.dev/origin=aws are
 * updated or deleted; a same-named object someone else created is left alone (not overwritten).
 * `keep` protects objects whose AWS scope could not be listed this round from deletion.
 */
export function plan(
  existing: Database[],
  desired: Database[],
  keep: (db: Database) => boolean = () => false,
): DiscoveryPlan {
  const ours = (db: Database) => db.metadata.labels?.[ORIGIN_LABEL] === ORIGIN_AWS;
  const current = new Map(existing.map((db) => [db.metadata.name, db]));
  const wanted = new Set(desired.map((db) => db.metadata.name));
  const out: DiscoveryPlan = { create: [], update: [], delete: [] };
  for (const db of desired) {
    const have = current.get(db.metadata.name);
    if (!have) out.create.push(db);
    else if (ours(have) && owned(have) !== owned(db)) out.update.push(db);
  }
  for (const db of existing) {
    if (ours(db) && !wanted.has(db.metadata.name) && !keep(db)) out.delete.push(db);
  }
  return out;
}
