// The seeds' troubleshooting section, as the agent reports it: what happens when AWS credentials
// cannot be had, and what the error tells the person to do. Real SDK credential chain, real sockets.
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Database } from '../../../src/api/database.js';
import { redshiftProvider } from '../../../src/aws/backend/redshift.js';
import { AwsClients } from '../../../src/aws/clients.js';
import { AwsCredentials, defaultChain } from '../../../src/aws/credentials.js';
import { AwsReason, isAwsError } from '../../../src/aws/errors.js';

let saved: NodeJS.ProcessEnv;
let silent: net.Server | undefined;
const held = new Set<net.Socket>();

beforeEach(() => {
  saved = { ...process.env };
  for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k];
  process.env.AWS_SHARED_CREDENTIALS_FILE = '/nonexistent/credentials';
  process.env.AWS_CONFIG_FILE = '/nonexistent/config';
});
afterEach(async () => {
  process.env = saved;
  held.forEach((s) => s.destroy());
  await new Promise<void>((r) => (silent ? silent.close(() => r()) : r()));
  silent = undefined;
});

/** A TCP endpoint that accepts and never answers — an IMDSv2 PUT dropped at hop limit 1 looks like this. */
async function blackhole(): Promise<number> {
  silent = net.createServer((s) => {
    held.add(s);
    s.on('data', () => undefined);
  });
  await new Promise<void>((r) => silent!.listen(0, '127.0.0.1', r));
  return (silent.address() as net.AddressInfo).port;
}

async function failure(): Promise<unknown> {
  try {
    await new AwsCredentials(defaultChain({ timeoutMs: 500 })).for({ region: 'us-east-1' })();
  } catch (err) {
    return err;
  }
  throw new Error('credentials were found');
}

describe('no AWS credentials', () => {
  it('names IRSA / instance profile / env keys when no provider has any (NoCredentialProviders)', async () => {
    process.env.AWS_EC2_METADATA_DISABLED = 'true';
    const err = await failure();
    expect(isAwsError(err, AwsReason.NoCredentials)).toBe(true);
    expect((err as Error).message).toContain('no valid providers in chain');
    expect((err as { hint: string }).hint).toMatch(/IRSA.*eks\.amazonaws\.com\/role-arn/);
  });

  it('points at the IMDSv2 hop limit when the metadata service does not answer', async () => {
    process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = `http://127.0.0.1:${await blackhole()}`;
    const err = await failure();
    expect(isAwsError(err, AwsReason.IMDSHopLimit)).toBe(true);
    expect((err as { hint: string }).hint).toMatch(/http-put-response-hop-limit 2/);
  });
});

describe('AWS unreachable', () => {
  it('ends in AWSUnreachable naming the network path, not a hang', async () => {
    process.env.AWS_ACCESS_KEY_ID = 'AKIAEXAMPLE';
    process.env.AWS_SECRET_ACCESS_KEY = 'secret';
    process.env.AWS_ENDPOINT_URL = `http://127.0.0.1:${await blackhole()}`;
    const clients = new AwsClients(new AwsCredentials(), { requestTimeoutMs: 300 });
    const provider = redshiftProvider(clients);
    const database = Database.parse({
      apiVersion: 'drawbridge.dev/v1alpha1',
      kind: 'Database',
      metadata: { name: 'warehouse' },
      spec: {
        protocol: 'postgres',
        uri: 'postgres://warehouse.example:5439/dev',
        auth: { type: 'redshift' },
        aws: {
          type: 'redshift',
          region: 'us-east-1',
          accountId: '123456789012',
          identifiers: { cluster: 'warehouse' },
        },
      },
    });
    const err = await provider.get({ database, dbUser: 'alice' }).catch((e: unknown) => e);
    expect(isAwsError(err, AwsReason.Unreachable)).toBe(true);
    expect((err as Error).message).toContain('redshift:GetClusterCredentials on warehouse for alice');
    expect((err as { hint: string }).hint).toMatch(/outbound HTTPS/);
  });
});
