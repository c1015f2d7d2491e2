// AWS SDK clients per identity (region + assumed role), built once and reused. Endpoints come from the
// SDK's standard configuration (AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE>), so the same code talks to
// AWS or to an emulator.
import { ElastiCacheClient } from '@aws-sdk/client-elasticache';
import { IAMClient } from '@aws-sdk/client-iam';
import { RDSClient } from '@aws-sdk/client-rds';
import { RedshiftClient } from '@aws-sdk/client-redshift';
import { RedshiftServerlessClient } from '@aws-sdk/client-redshift-serverless';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import type { DatabaseSpec } from '../api/database.js';
import { DrawbridgeError } from '../errors.js';
import { AwsCredentials, type AwsIdentity } from './credentials.js';
import { awsCall } from './errors.js';

type ClientConfig = {
  region: string;
  credentials: AwsCredentialIdentityProvider;
  maxAttempts: number;
  requestHandler: {
    connectionTimeout: number;
    requestTimeout: number;
    socketTimeout: number;
    throwOnRequestTimeout: true;
  };
};

export interface ClientOptions {
  /** Per-request limit; without one the SDK would wait forever on a silent endpoint. */
  requestTimeoutMs?: number;
}
type ClientClass<T> = new (config: ClientConfig) => T;

export class AwsClients {
  private readonly clients = new Map<string, unknown>();
  private readonly accounts = new Map<string, Promise<string>>();

  constructor(
    readonly credentials = new AwsCredentials(),
    private readonly opts: ClientOptions = {},
  ) {}

  rds = (id: AwsIdentity) => this.client(RDSClient, id);
  redshift = (id: AwsIdentity) => this.client(RedshiftClient, id);
  redshiftServerless = (id: AwsIdentity) => this.client(RedshiftServerlessClient, id);
  elasticache = (id: AwsIdentity) => this.client(ElastiCacheClient, id);
  secrets = (id: AwsIdentity) => this.client(SecretsManagerClient, id);
  iam = (id: AwsIdentity) => this.client(IAMClient, id);
  sts = (id: AwsIdentity) => this.client(STSClient, id);

  /** A client signing with a further role hop (role chaining) from `id`. */
  chained<T>(Client: ClientClass<T>, id: AwsIdentity, roleArn: string): T {
    return this.cachedClient(
      Client,
      `${key(id)}|${roleArn}`,
      id.region,
      this.credentials.chained(id, roleArn),
    );
  }

  /** The 12-digit account of an identity (GetCallerIdentity, once). */
  account(id: AwsIdentity): Promise<string> {
    const k = key(id);
    let account = this.accounts.get(k);
    if (!account) {
      account = awsCall({ action: 'sts:GetCallerIdentity' }, async () => {
        const out = await this.sts(id).send(new GetCallerIdentityCommand({}));
        return out.Account!;
      });
      account.catch(() => this.accounts.delete(k));
      this.accounts.set(k, account);
    }
    return account;
  }

  private client<T>(Client: ClientClass<T>, id: AwsIdentity): T {
    return this.cachedClient(Client, key(id), id.region, this.credentials.for(id));
  }

  private cachedClient<T>(
    Client: ClientClass<T>,
    k: string,
    region: string,
    credentials: AwsCredentialIdentityProvider,
  ): T {
    const cacheKey = `${Client.name}|${k}`;
    let client = this.clients.get(cacheKey) as T | undefined;
    if (!client) {
      const timeout = this.opts.requestTimeoutMs ?? 10_000;
      client = new Client({
        region,
        credentials,
        maxAttempts: 3,
        // throwOnRequestTimeout: without it the handler only logs a warning and keeps waiting.
        requestHandler: {
          connectionTimeout: Math.min(timeout, 5_000),
          requestTimeout: timeout,
          socketTimeout: timeout,
          throwOnRequestTimeout: true,
        },
      });
      this.clients.set(cacheKey, client);
    }
    return client;
  }
}

function key(id: AwsIdentity): string {
  return `${id.region}|${id.assumeRoleArn ?? ''}|${id.externalId ?? ''}`;
}

let shared: AwsClients | undefined;

/** The process-wide clients (one credential chain per process, like the SDK's own default). */
export function sharedAwsClients(): AwsClients {
  shared ??= new AwsClients();
  return shared;
}

export type AwsSpec = NonNullable<DatabaseSpec['aws']>;

/** spec.aws of a Database whose auth type needs it, with a fix-naming error when absent. */
export function awsSpec(spec: DatabaseSpec, name: string): AwsSpec {
  if (!spec.aws) {
    throw new DrawbridgeError(
      'INVALID_CONFIG',
      `Database ${name} uses auth type "${spec.auth.type}" but has no spec.aws`,
      'set spec.aws.type, spec.aws.region and spec.aws.identifiers (discovery fills these in)',
    );
  }
  return spec.aws;
}

/** The identity a Database's AWS calls run as. */
export function identityOf(aws: AwsSpec): AwsIdentity {
  return {
    region: aws.region,
    ...(aws.assumeRoleArn ? { assumeRoleArn: aws.assumeRoleArn } : {}),
    ...(aws.externalId ? { externalId: aws.externalId } : {}),
  };
}

/** Keys of spec.aws.identifiers, by what they name. */
export const Identifier = {
  /** RDS instance identifier. */
  instance: 'instance',
  /** Aurora or Redshift cluster identifier. */
  cluster: 'cluster',
  /** RDS DbiResourceId / Aurora DbClusterResourceId: the `rds-db:connect` resource. */
  resourceId: 'resourceId',
  replicationGroup: 'replicationGroup',
  serverlessCache: 'serverlessCache',
  workgroup: 'workgroup',
  /** Aurora endpoint kind or name: primary, reader, custom endpoint name. */
  endpoint: 'endpoint',
} as const;

export function identifier(aws: AwsSpec, name: string, which: string): string {
  const value = aws.identifiers?.[which];
  if (!value) {
    throw new DrawbridgeError(
      'INVALID_CONFIG',
      `Database ${name} (aws type ${aws.type}) has no spec.aws.identifiers.${which}`,
      `set spec.aws.identifiers.${which} (discovery fills it in)`,
    );
  }
  return value;
}
