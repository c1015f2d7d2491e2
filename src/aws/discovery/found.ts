// From "what AWS has" to Database objects: naming, labels and spec. Pure, so the reconcile can be
// tested on data alone.
//   name:   <aws name>[-reader|-<custom endpoint>]-<type>-<region>-<account>, or the value of the
//           AWS tag drawbridge.dev/name (plus the endpoint suffix);
//   labels: region, account-id, engine, engine-version, endpoint-type, vpc-id, the AWS tags made into
//           valid label keys/values (never an error), and drawbridge.dev/origin=aws. AccessRoles select
//           by these labels, so a tag never sets one of discovery's own (even where AWS gave no value,
//           e.g. an Aurora cluster's vpc-id) nor a drawbridge.dev/, kubernetes.io/ or k8s.io/ key;
//   names:  a name two found databases ask for (a tag naming another database's name, an Aurora
//           cluster `x-reader` beside cluster x's reader) stays with the Database that already has it,
//           else goes to neither: a tag or a new resource never takes over another database's name;
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

/** The name made of the database's AWS identity (unique in AWS, though not always once joined). */
function ownName(f: FoundDatabase): string {
  return objectNameOf(`${f.name}${suffix(f)}-${f.type}-${f.region}-${f.account}`);
}

/** The name a found database asks for: its drawbridge.dev/name tag's, else its own. */
export function databaseName(f: FoundDatabase): string {
  const override = f.tags[NAME_TAG];
  return (override && objectNameOf(`${override}${suffix(f)}`)) || ownName(f);
}

export interface NameOptions {
  /** The Databases that exist: a contested name stays with the discovered one already holding it. */
  existing?: Database[];
  /** Called for each name several found databases asked for, with their AWS names. */
  onConflict?: (name: string, claimants: string[]) => void;
}

/**
 * One name per found database, or undefined for those left without. A name asked for by several
 * endpoints stays with the one the existing Database points at, else with the one whose own name it
 * is (never a tag's); the others fall back from a tag name to their own name, and are left out when
 * that is contested too. Several finds of one endpoint (two matchers) are one claim, the last as before.
 */
function assignNames(found: FoundDatabase[], opts: NameOptions): (string | undefined)[] {
  const own = found.map(ownName);
  const names: (string | undefined)[] = found.map(databaseName);
  const held = new Map(
    (opts.existing ?? [])
      .filter((d) => d.metadata.labels?.[ORIGIN_LABEL] === ORIGIN_AWS)
      .map((d) => [d.metadata.name, d.spec?.uri]),
  );
  for (const fallBack of [true, false]) {
    const claims = new Map<string, number[]>();
    names.forEach((n, i) => n && claims.set(n, [...(claims.get(n) ?? []), i]));
    for (const [name, who] of claims) {
      const endpoints = [...new Map(who.map((i) => [uri(found[i]!), i])).values()];
      if (endpoints.length === 1) continue;
      opts.onConflict?.(
        name,
        endpoints.map((i) => `${found[i]!.type} ${found[i]!.name} (${found[i]!.host})`),
      );
      const holder = endpoints.filter((i) => uri(found[i]!) === held.get(name));
      const ownNamed = endpoints.filter((i) => own[i] === name);
      const keeper = [holder, ownNamed].find((k) => k.length === 1)?.[0];
      const kept = keeper === undefined ? undefined : uri(found[keeper]!);
      for (const i of who) {
        if (uri(found[i]!) !== kept) names[i] = fallBack && own[i] !== name ? own[i] : undefined;
      }
    }
  }
  return names;
}

/** Labels only discovery sets, from what AWS answered. */
const FACT_LABELS = new Set(['region', 'account-id', 'engine', 'engine-version', 'endpoint-type', 'vpc-id']);
const RESERVED_PREFIXES = ['drawbridge.dev', 'kubernetes.io', 'k8s.io'];

/** A label key no AWS tag may set: discovery's facts and the platform's and Kubernetes' prefixes. */
function reservedKey(key: string): boolean {
  if (FACT_LABELS.has(key)) return true;
  const prefix = key.slice(0, Math.max(0, key.lastIndexOf('/')));
  return RESERVED_PREFIXES.some((p) => prefix === p || prefix.endsWith(`.${p}`));
}

export function databaseLabels(f: FoundDatabase): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(f.tags)) {
    const key = labelKey(k);
    if (key && !reservedKey(key)) labels[key] = labelValue(v);
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
  names: NameOptions = {},
): Database[] {
  const byName = new Map<string, Database>();
  const assigned = assignNames(found, names);
  for (const [i, f] of found.entries()) {
    const name = assigned[i];
    if (!name) continue;
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
