import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { iamCommand } from '../../../src/cli/commands/iam.js';
import type { PolicyDocument } from '../../../src/aws/iam-policy.js';
import { databases } from './fixtures.js';

async function print(args: string[]): Promise<unknown> {
  let out = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    out += String(chunk);
    return true;
  });
  try {
    const cmd = iamCommand();
    for (const c of [cmd, ...cmd.commands]) c.exitOverride().configureOutput({ writeErr: () => undefined });
    await cmd.parseAsync(['print', ...args], { from: 'user' });
  } finally {
    spy.mockRestore();
  }
  return JSON.parse(out);
}

const actions = (doc: PolicyDocument) =>
  doc.Statement.flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]));

describe('drawbridge iam print', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('prints the policy for the given types', async () => {
    const doc = (await print(['--types', 'rds,redshift-serverless'])) as PolicyDocument;
    expect(doc.Version).toBe('2012-10-17');
    expect(actions(doc)).toEqual(
      expect.arrayContaining([
        'rds-db:connect',
        'rds:DescribeDBInstances',
        'redshift-serverless:GetCredentials',
        'redshift-serverless:ListWorkgroups',
      ]),
    );
    expect(actions(doc)).not.toContain('elasticache:Connect');
  });

  it("--agents prints the agents' role policy: connect-time calls, no discovery or IAM writes", async () => {
    const doc = (await print(['--types', 'rds,elasticache', '--agents'])) as PolicyDocument;
    expect([...new Set(actions(doc))].sort()).toEqual([
      'elasticache:Connect',
      'elasticache:DescribeUsers',
      'rds-db:connect',
    ]);
  });

  it('grants exactly the databases of a config file', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'iam-print-'));
    const file = path.join(dir, 'dbs.yaml');
    await writeFile(
      file,
      databases('redshift', 2)
        .map((d) => stringify(d))
        .join('---\n'),
    );
    const doc = (await print(['--config', file])) as PolicyDocument;
    const resources = JSON.stringify(doc);
    expect(resources).toContain('arn:aws:redshift:us-east-1:123456789012:dbuser:redshift-db-1/*');
    expect(resources).not.toContain('redshift-db-2');
  });

  it('rejects an unknown type with the list of known ones', async () => {
    await expect(print(['--types', 'dynamodb'])).rejects.toThrow(/unknown type "dynamodb": use rds, aurora/);
  });
});
