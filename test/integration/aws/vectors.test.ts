// Cross-implementation vectors: our IAM auth tokens, signed with fixed credentials and a fixed clock,
// must equal botocore's (the reference AWS SDK) for the same inputs.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { Signer } from '@aws-sdk/rds-signer';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { elasticacheAuthToken } from '../../../src/aws/presign.js';
import { motoPython } from '../../aws/moto.js';

interface Case {
  kind: 'rds' | 'elasticache';
  time: string;
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  region: string;
  host: string;
  port?: number;
  user: string;
  serverless?: boolean;
}

const KEYS = {
  accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
};
const SESSION = {
  ...KEYS,
  accessKeyId: 'ASIAIOSFODNN7EXAMPLE',
  sessionToken: 'IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ+/=',
};

const CASES: Case[] = [
  {
    kind: 'rds',
    time: '2026-01-02T03:04:05Z',
    ...KEYS,
    region: 'us-east-1',
    host: 'orders.abc.us-east-1.rds.amazonaws.com',
    port: 5432,
    user: 'alice',
  },
  {
    kind: 'rds',
    time: '2030-12-31T23:59:59Z',
    ...SESSION,
    region: 'eu-west-1',
    host: '127.0.0.1',
    port: 15432,
    user: 'user with space+plus',
  },
  {
    kind: 'elasticache',
    time: '2026-01-02T03:04:05Z',
    ...KEYS,
    region: 'us-east-1',
    host: 'my-replication-group',
    user: 'iam-user-01',
  },
  {
    kind: 'elasticache',
    time: '2026-06-30T12:00:00Z',
    ...SESSION,
    region: 'ap-northeast-2',
    host: 'serverless-cache-1',
    user: 'iam-user-01',
    serverless: true,
  },
];

function params(token: string): { host: string; query: Record<string, string> } {
  const url = new URL(`http://${token}`);
  return { host: url.host, query: Object.fromEntries([...url.searchParams.entries()].sort()) };
}

let reference: string[];
beforeAll(() => {
  const run = spawnSync(motoPython(), [path.resolve('test/aws/vectors.py')], {
    input: JSON.stringify(CASES),
    encoding: 'utf8',
  });
  if (run.status !== 0) throw new Error(`vectors.py failed: ${run.stderr}`);
  reference = JSON.parse(run.stdout) as string[];
});

afterEach(() => {
  vi.useRealTimers();
});

async function ours(c: Case): Promise<string> {
  const credentials = {
    accessKeyId: c.accessKeyId,
    secretAccessKey: c.secretAccessKey,
    ...(c.sessionToken ? { sessionToken: c.sessionToken } : {}),
  };
  if (c.kind === 'elasticache') {
    return elasticacheAuthToken({
      resourceName: c.host,
      userId: c.user,
      serverless: !!c.serverless,
      region: c.region,
      credentials,
      now: new Date(c.time),
    });
  }
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(new Date(c.time));
  return new Signer({
    hostname: c.host,
    port: c.port!,
    username: c.user,
    region: c.region,
    credentials,
  }).getAuthToken();
}

describe('IAM auth tokens equal botocore', () => {
  it.each(CASES.map((c, i) => [i, c.kind, c] as const))('case %i (%s)', async (i, _kind, c) => {
    const token = await ours(c);
    const want = reference[i]!;
    // Same host, same parameters, same signature; the order of query parameters is not significant.
    expect(params(token)).toEqual(params(want));
    expect(params(token).query['X-Amz-Signature']).toMatch(/^[0-9a-f]{64}$/);
    expect(params(token).query['X-Amz-Expires']).toBe('900');
  });

  it('fails when any input differs (the comparison can fail)', async () => {
    const token = await ours({ ...CASES[2]!, user: 'iam-user-02' });
    expect(params(token).query['X-Amz-Signature']).not.toBe(params(reference[2]!).query['X-Amz-Signature']);
  });
});
