// Where `kubectl db login` keeps what it got: ~/.drawbridge/<context>/<namespace>/<database>/ holding
// the private key (made here, never sent anywhere), the signed certificate, the CA that signs agent
// certificates, and a small JSON record of the login. Files are 0600 and folders 0700.
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { certificateExpiry } from '../../pki/ca.js';
import { DrawbridgeError } from '../../errors.js';

export interface DatabaseRef {
  context: string;
  namespace: string;
  name: string;
}

export interface LoginRecord {
  dbUser: string;
  protocol: 'postgres' | 'redis';
  /** Kubernetes user the certificate names (CN). */
  user: string;
  csrName: string;
  expiresAt: string;
}

export interface StoredLogin {
  record: LoginRecord;
  dir: string;
  keyFile: string;
  certFile: string;
  caFile: string;
  expiresAt: Date;
}

const KEY = 'tls.key';
const CERT = 'tls.crt';
const CA = 'ca.crt';
const RECORD = 'login.json';

/** $DRAWBRIDGE_HOME, else ~/.drawbridge. */
function storeRoot(): string {
  return process.env.DRAWBRIDGE_HOME ?? join(homedir(), '.drawbridge');
}

/** Context names may hold "/" and ":" (EKS ARNs): encoded so each stays one folder. */
function segment(value: string): string {
  return encodeURIComponent(value).replace(/^\.+$/, (dots) => '%2E'.repeat(dots.length));
}

export function loginDir(ref: DatabaseRef, root = storeRoot()): string {
  return join(root, segment(ref.context), segment(ref.namespace), segment(ref.name));
}

export function describeRef(ref: Pick<DatabaseRef, 'namespace' | 'name'>): string {
  return `${ref.namespace}/${ref.name}`;
}

export async function saveLogin(
  ref: DatabaseRef,
  files: { keyPem: string; certPem: string; caPem: string },
  record: LoginRecord,
): Promise<StoredLogin> {
  const dir = loginDir(ref);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const write = (name: string, text: string) => writeFile(join(dir, name), text, { mode: 0o600 });
  // libpq refuses a key file readable by others; writeFile's mode only applies on creation, so
  // replace rather than overwrite in place.
  await rm(join(dir, KEY), { force: true });
  await write(KEY, files.keyPem);
  await write(CERT, files.certPem);
  await write(CA, files.caPem);
  await write(RECORD, `${JSON.stringify(record, null, 2)}\n`);
  return stored(dir, record);
}

function stored(dir: string, record: LoginRecord): StoredLogin {
  return {
    record,
    dir,
    keyFile: join(dir, KEY),
    certFile: join(dir, CERT),
    caFile: join(dir, CA),
    expiresAt: new Date(record.expiresAt),
  };
}

/** The login for `ref`, or undefined when there is none. */
export async function findLogin(ref: DatabaseRef): Promise<StoredLogin | undefined> {
  const dir = loginDir(ref);
  let text: string;
  try {
    text = await readFile(join(dir, RECORD), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const login = stored(dir, JSON.parse(text) as LoginRecord);
  // The certificate file is the truth: a hand-copied or re-issued certificate wins over the record.
  login.expiresAt = certificateExpiry(await readFile(login.certFile, 'utf8'));
  return login;
}

/**
 * The login for `ref` if it is still valid `marginMs` from now; otherwise an error telling the person
 * to log in (again).
 */
export async function requireLogin(ref: DatabaseRef, now = Date.now(), marginMs = 0): Promise<StoredLogin> {
  const login = await findLogin(ref);
  const relogin = `kubectl db login ${ref.name} -n ${ref.namespace}`;
  if (!login) {
    throw new DrawbridgeError(
      'AUTHN_FAILED',
      `not logged in to ${describeRef(ref)} (context ${ref.context})`,
      `run ${relogin} --db-user USER`,
    );
  }
  if (login.expiresAt.getTime() <= now + marginMs) {
    throw new DrawbridgeError(
      'SESSION_EXPIRED',
      `your certificate for ${describeRef(ref)} expired at ${login.expiresAt.toISOString()}`,
      `run ${relogin} --db-user ${login.record.dbUser}`,
    );
  }
  return login;
}

/** Removes one login, or every login of the context when `name` is undefined; returns what was removed. */
export async function removeLogins(ref: Omit<DatabaseRef, 'name'> & { name?: string }): Promise<string[]> {
  if (ref.name !== undefined) {
    const dir = loginDir({ ...ref, name: ref.name });
    const existed = (await findLogin({ ...ref, name: ref.name })) !== undefined;
    await rm(dir, { recursive: true, force: true });
    return existed ? [describeRef({ namespace: ref.namespace, name: ref.name })] : [];
  }
  const contextDir = join(storeRoot(), segment(ref.context));
  const removed: string[] = [];
  for (const ns of await listDir(contextDir)) {
    for (const name of await listDir(join(contextDir, ns))) {
      removed.push(`${decodeURIComponent(ns)}/${decodeURIComponent(name)}`);
    }
  }
  await rm(contextDir, { recursive: true, force: true });
  return removed;
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}
