/**
 * The AWS emulator for integration tests: moto server plus our extension (test/aws/drawbridge_moto),
 * started from the cached venv (test/support/venv.sh) on a free loopback port.
 *
 * Code under test reaches it the standard way, through `AWS_ENDPOINT_URL` (see `env`), so nothing in
 * src/ knows it is talking to an emulator. `onIssue` receives every credential the emulator hands out
 * (Redshift passwords, ElastiCache ModifyUser passwords) before the API call answers, so a test can
 * make its real database accept exactly that credential; `verifyPresigned` checks a client-signed
 * IAM token (RDS, ElastiCache) with botocore and moto's record of the signing key, as AWS would.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../support/ports.js';
import { venvPython } from '../support/venv.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SOURCE_DIR = HERE.endsWith(path.join('dist', 'test', 'aws'))
  ? path.resolve(HERE, '../../../test/aws')
  : HERE;

/** What the emulator POSTs for each credential it issues. */
export type IssueEvent =
  | {
      event: 'redshift.credentials' | 'redshift-serverless.credentials';
      region: string;
      account: string;
      resource: string;
      dbUser: string;
      dbName: string | null;
      password: string;
      expiration: string;
      /** The IAM principal that asked (an assumed-role session ARN, for instance). */
      caller: string;
    }
  | {
      event: 'elasticache.user.passwords';
      region: string;
      account: string;
      userId: string;
      userName: string;
      passwords: string[];
    };

export interface VerifyResult {
  valid: boolean;
  reason: string;
  params?: Record<string, string>;
  principal?: string;
}

export interface ElastiCacheFrontOptions {
  /** The local Redis standing in for the cache, and an ACL user that may run ACL SETUSER. */
  redisPort: number;
  adminUser: string;
  adminPassword: string;
  /** Replication group ID or serverless cache name: the host the IAM token must be signed for. */
  resource: string;
  serverless?: boolean;
}

export interface Moto {
  readonly endpoint: string;
  /** Environment for code under test: endpoint, region, dummy static credentials. */
  readonly env: Record<string, string>;
  /** LDAP port verifying RDS IAM tokens (pg_hba `ldap`), when started with `ldap: true`. */
  readonly ldapPort?: number;
  /**
   * Environment for code under test that runs as `roleArn` the way IRSA does: a web identity token
   * file and AWS_ROLE_ARN, so the SDK's default chain calls AssumeRoleWithWebIdentity on the emulator.
   */
  irsaEnv(roleArn: string): Record<string, string>;
  /** Starts ElastiCache's IAM login in front of a local Redis (drawbridge_moto/elasticache_front.py); returns its port. */
  elasticacheFront(opts: ElastiCacheFrontOptions): Promise<number>;
  /** Receives every issued credential; the API call waits for the handler to finish. */
  onIssue(handler: ((event: IssueEvent) => Promise<void> | void) | undefined): Promise<void>;
  verifyPresigned(
    token: string,
    service: 'rds-db' | 'elasticache',
    expect?: Record<string, string>,
  ): Promise<VerifyResult>;
  /** Clears every emulated resource (moto's reset), keeping the process. */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

export const TEST_ACCOUNT = '123456789012';

// Never leave an emulator behind, even when a test file dies mid-way.
const live = new Set<ChildProcess>();
process.on('exit', () => live.forEach((p) => p.kill('SIGKILL')));

/** Creates the venv if needed and returns its python. */
export function motoPython(): string {
  return venvPython('test/aws/requirements.txt');
}

export async function startMoto(opts: { ldap?: boolean } = {}): Promise<Moto> {
  const python = motoPython();
  const port = await freePort();
  const ldapPort = opts.ldap ? await freePort() : undefined;
  const args = [
    '-m',
    'drawbridge_moto',
    '--port',
    String(port),
    ...(ldapPort ? ['--ldap-port', String(ldapPort)] : []),
  ];
  const proc = spawn(python, args, {
    cwd: SOURCE_DIR,
    env: { ...process.env, PYTHONPATH: SOURCE_DIR, PYTHONUNBUFFERED: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  await waitForLine(proc, `listening on ${port}`, () => stderr);

  const endpoint = `http://127.0.0.1:${port}`;
  let hookServer: Server | undefined;
  const control = async (call: string, body: object) => {
    const res = await fetch(`${endpoint}/_drawbridge/${call}`, {
      method: 'POST',
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`moto control ${call}: HTTP ${res.status} ${await res.text()}`);
    return res.json();
  };
  const closeHook = () => new Promise<void>((r) => (hookServer ? hookServer.close(() => r()) : r()));
  const tokenDir = mkdtempSync(path.join(os.tmpdir(), 'drawbridge-irsa-'));
  const env = {
    AWS_ENDPOINT_URL: endpoint,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
  };

  return {
    endpoint,
    env,
    ...(ldapPort ? { ldapPort } : {}),
    irsaEnv(roleArn) {
      const tokenFile = path.join(tokenDir, 'token');
      // The emulator does not check the OIDC token; its presence is what makes the SDK use IRSA.
      writeFileSync(
        tokenFile,
        'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZHJhd2JyaWRnZSJ9.sig',
      );
      return {
        AWS_ENDPOINT_URL: endpoint,
        AWS_REGION: 'us-east-1',
        AWS_ROLE_ARN: roleArn,
        AWS_WEB_IDENTITY_TOKEN_FILE: tokenFile,
        AWS_ROLE_SESSION_NAME: 'drawbridge-agent',
      };
    },
    async elasticacheFront(front) {
      return ((await control('elasticache-front', front)) as { port: number }).port;
    },
    async onIssue(handler) {
      await closeHook();
      hookServer = undefined;
      if (!handler) return void (await control('hook', { url: null }));
      hookServer = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          Promise.resolve()
            .then(() => handler(JSON.parse(Buffer.concat(chunks).toString()) as IssueEvent))
            .then(
              () => res.writeHead(204).end(),
              (err: unknown) => res.writeHead(500).end(String(err)),
            );
        });
      });
      const hookPort = await freePort();
      await new Promise<void>((r) => hookServer!.listen(hookPort, '127.0.0.1', r));
      await control('hook', { url: `http://127.0.0.1:${hookPort}/` });
    },
    async verifyPresigned(token, service, expect) {
      return (await control('verify', { token, service, expect })) as VerifyResult;
    },
    async reset() {
      const res = await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
      if (!res.ok) throw new Error(`moto reset: HTTP ${res.status}`);
    },
    async stop() {
      await closeHook();
      rmSync(tokenDir, { recursive: true, force: true });
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

function waitForLine(proc: ChildProcess, text: string, stderr: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => fail(new Error('moto did not start within 30 s')), 30_000);
    const fail = (err: Error) => {
      clearTimeout(timer);
      proc.kill('SIGKILL');
      reject(new Error(`${err.message}\n${stderr()}`));
    };
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes(text)) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.once('exit', (code) => fail(new Error(`moto exited with ${code}`)));
  });
}
