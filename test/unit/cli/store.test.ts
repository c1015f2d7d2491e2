import {
  chmod,
  chown,
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  findLogin,
  loginDir,
  removeLogins,
  requireLogin,
  saveLogin,
  type DatabaseRef,
} from '../../../src/cli/db/store.js';
import { isDrawbridgeError } from '../../../src/errors.js';
import { createCA, issueCertificate } from '../../../src/pki/ca.js';

let home: string;
const saved = process.env.DRAWBRIDGE_HOME;

beforeEach(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-store-'));
  process.env.DRAWBRIDGE_HOME = home;
});

afterEach(async () => {
  if (saved === undefined) delete process.env.DRAWBRIDGE_HOME;
  else process.env.DRAWBRIDGE_HOME = saved;
  await rm(home, { recursive: true, force: true });
});

const ca = await createCA({ commonName: 'store-test' });

async function login(ref: DatabaseRef, validSeconds = 3600) {
  const cert = await issueCertificate(ca, { commonName: 'alice', usage: 'client', validSeconds });
  return saveLogin(
    ref,
    { keyPem: cert.keyPem, certPem: cert.certPem, caPem: ca.certPem },
    {
      dbUser: 'app',
      protocol: 'postgres',
      user: 'alice',
      csrName: 'db-x',
      expiresAt: new Date().toISOString(),
    },
  );
}

const orders: DatabaseRef = { context: 'kind-dev', namespace: 'shop', name: 'orders' };

describe('credential store', () => {
  it('keeps the key private and the folders closed', async () => {
    const stored = await login(orders);
    expect(stored.dir).toBe(path.join(home, 'kind-dev', 'shop', 'orders'));
    for (const file of [stored.keyFile, stored.certFile, stored.caFile]) {
      expect((await stat(file)).mode & 0o777).toBe(0o600);
    }
    expect((await stat(stored.dir)).mode & 0o777).toBe(0o700);
    expect(await readFile(stored.caFile, 'utf8')).toBe(ca.certPem);
  });

  it('takes the expiry from the certificate, not the record', async () => {
    await login(orders, 7200);
    const found = await findLogin(orders);
    expect(found!.expiresAt.getTime()).toBeGreaterThan(Date.now() + 7100_000);
    expect(found!.record.dbUser).toBe('app');
  });

  it('keeps each context name, even an EKS ARN, in one folder', () => {
    const dir = loginDir(
      { context: 'arn:aws:eks:eu-west-1:123456789012:cluster/prod', namespace: 'a', name: 'b' },
      '/r',
    );
    expect(path.relative('/r', dir).split(path.sep)).toEqual([
      'arn%3Aaws%3Aeks%3Aeu-west-1%3A123456789012%3Acluster%2Fprod',
      'a',
      'b',
    ]);
    expect(loginDir({ context: '..', namespace: 'a', name: 'b' }, '/r')).toBe('/r/%2E%2E/a/b');
  });

  it('tells a person who is not logged in what to run', async () => {
    const err = await requireLogin(orders).catch((e: unknown) => e);
    expect(isDrawbridgeError(err, 'AUTHN_FAILED')).toBe(true);
    expect((err as { hint: string }).hint).toBe('run kubectl db login orders -n shop --db-user USER');
  });

  it('tells a person with an expired certificate to log in again as the same user', async () => {
    await login(orders, 60);
    const err = await requireLogin(orders, Date.now() + 120_000).catch((e: unknown) => e);
    expect(isDrawbridgeError(err, 'SESSION_EXPIRED')).toBe(true);
    expect((err as Error).message).toMatch(/^your certificate for shop\/orders expired at /);
    expect((err as { hint: string }).hint).toBe('run kubectl db login orders -n shop --db-user app');
    await expect(requireLogin(orders)).resolves.toMatchObject({ record: { user: 'alice' } });
  });

  it('logs out of one database, or of every database of the context', async () => {
    const cache = { ...orders, name: 'cache' };
    const other = { ...orders, context: 'prod' };
    await Promise.all([login(orders), login(cache), login(other)]);

    expect(await removeLogins(cache)).toEqual(['shop/cache']);
    expect(await removeLogins(cache)).toEqual([]);
    expect(await findLogin(cache)).toBeUndefined();

    expect(await removeLogins({ context: 'kind-dev', namespace: 'shop' })).toEqual(['shop/orders']);
    expect(await findLogin(orders)).toBeUndefined();
    expect(await findLogin(other)).toBeDefined();
  });
});

// Another local user who can write in the store could swap ca.crt for a CA of their own (and read every
// session through a relay of theirs) or make a login overwrite another file through a symlink.
describe.skipIf(process.getuid === undefined)('credential store in a folder others can reach', () => {
  const refused = (p: Promise<unknown>) =>
    p.then(
      () => 'accepted',
      (err: unknown) => (isDrawbridgeError(err) ? err.message : String(err)),
    );

  it('replaces a symlink planted where a file goes instead of writing through it', async () => {
    const victim = path.join(home, 'victim');
    await writeFile(victim, 'precious\n');
    const dir = loginDir(orders);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await symlink(victim, path.join(dir, 'tls.crt'));
    const stored = await login(orders);
    expect(await readFile(victim, 'utf8')).toBe('precious\n');
    expect((await lstat(stored.certFile)).isSymbolicLink()).toBe(false);
    expect((await readdir(dir)).sort()).toEqual(['ca.crt', 'login.json', 'tls.crt', 'tls.key']);
  });

  it('refuses a login folder that is a symlink, or that others may write in or own', async () => {
    const elsewhere = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-elsewhere-'));
    try {
      await mkdir(path.join(home, 'kind-dev', 'shop'), { recursive: true, mode: 0o700 });
      await symlink(elsewhere, loginDir(orders));
      expect(await refused(login(orders))).toMatch(/orders is not a folder \(a symlink\?\)/);
      expect(await readdir(elsewhere)).toEqual([]);
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
    const other = { ...orders, name: 'other' };
    await login(other);
    await chmod(path.join(home, 'kind-dev'), 0o777);
    expect(await refused(findLogin(other))).toMatch(/kind-dev may be written by other users/);
    expect(await refused(login(other))).toMatch(/kind-dev may be written by other users/);
    await chmod(path.join(home, 'kind-dev'), 0o700);
    if (process.getuid?.() !== 0) return; // only root may give a folder away
    await chown(loginDir(other), 65534, 65534);
    expect(await refused(requireLogin(other))).toMatch(/other belongs to uid 65534/);
  });

  it('refuses a store root that others may write in, naming the fix', async () => {
    await chmod(home, 0o1777);
    const err = await login(orders).catch((e: unknown) => e);
    expect(isDrawbridgeError(err) && err.hint).toMatch(
      /chmod go-w .* or point DRAWBRIDGE_HOME at a folder of your own/,
    );
  });
});
