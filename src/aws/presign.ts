// ElastiCache IAM auth tokens: a SigV4 query-presigned `GET http://<name>/?Action=connect&User=<user>`
// (plus `ResourceType=ServerlessCache` for serverless caches), service `elasticache`, valid 900 s, with
// the scheme stripped — the format in AWS's "Authenticating with IAM" guide for ElastiCache.
import { createHash, createHmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity, Checksum, SourceData } from '@smithy/types';

/** SHA-256 / HMAC-SHA-256 on node:crypto, in the shape SignatureV4 expects. */
class Sha256 implements Checksum {
  private hash;
  constructor(private readonly secret?: SourceData) {
    this.hash = this.start();
  }
  update(data: Uint8Array): void {
    this.hash.update(data);
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
  reset(): void {
    this.hash = this.start();
  }
  private start() {
    return this.secret === undefined
      ? createHash('sha256')
      : createHmac(
          'sha256',
          typeof this.secret === 'string' ? this.secret : Buffer.from(this.secret as Uint8Array),
        );
  }
}

const TOKEN_TTL_SECONDS = 900;

export interface ElastiCacheTokenRequest {
  /** Replication group ID or serverless cache name. */
  resourceName: string;
  userId: string;
  serverless: boolean;
  region: string;
  credentials: AwsCredentialIdentity;
  /** Signing time; defaults to now. */
  now?: Date;
}

export async function elasticacheAuthToken(req: ElastiCacheTokenRequest): Promise<string> {
  const host = req.resourceName.toLowerCase();
  const signer = new SignatureV4({
    service: 'elasticache',
    region: req.region,
    credentials: req.credentials,
    sha256: Sha256,
    applyChecksum: false,
  });
  const query: Record<string, string> = { Action: 'connect', User: req.userId };
  if (req.serverless) query.ResourceType = 'ServerlessCache';
  const signed = await signer.presign(
    { method: 'GET', protocol: 'http:', hostname: host, path: '/', query, headers: { host } },
    { expiresIn: TOKEN_TTL_SECONDS, signingDate: req.now ?? new Date() },
  );
  const pairs = Object.entries(signed.query ?? {}).map(([k, v]) => `${rfc3986(k)}=${rfc3986(String(v))}`);
  return `${host}/?${pairs.join('&')}`;
}

/** URI encoding as SigV4 defines it (RFC 3986 unreserved characters stay as they are). */
function rfc3986(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}
