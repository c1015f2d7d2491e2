// Where `kubectl db login` keeps what it got: ~/.drawbridge/<context>/<namespace>/<database>/ holding
// the private key (made here, never sent anywhere), the signed certificate, the CA that signs agent
// certificates, and a small JSON record of the login. Files are 0600 and folders 0700.
//
// Whoever can write in these folders can swap ca.crt for a CA of their own and read every session (or
// plant a symlink that makes a login overwrite another file), so a folder another user owns or may
// write in is refused, on every login and every use, and files are written to a new private file
// and renamed into place: a symlink already there is replaced, never followed.
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readFile, readdir, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
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

const segments = (ref: DatabaseRef) => [segment(ref.context), segment(ref.namespace), segment(ref.name)];

export function loginDir(ref: DatabaseRef, root = storeRoot()): string {
  return join(root, ...segments(ref));
}

export function describeRef(ref: Pick<DatabaseRef, 'namespace' | 'name'>): string {
  return `${ref.namespace}/${ref.name}`;
}

/**
 * Refuses the store root and the folders under it down to `ref`'s unless each is ours and no one else
 * may write in it (the root may be a symlink the person made; the folders under it may not). POSIX
 * only: Windows has no owner and mode bits here.
 */
async function checkPrivate(root: string, ref: DatabaseRef): Promise<void> {
  const uid = process.getuid?.();
  if (uid === undefined) return;
  const below = segments(ref);
  const paths = below.map((_, i) => join(root, ...below.slice(0, i + 1)));
  for (const [i, path] of [root, ...paths].entries()) {
    const st = i === 0 ? await stat(path) : await lstat(path);
    const why = !st.isDirectory()
      ? 'is not a folder (a symlink?)'
      : st.uid !== uid
        ? `belongs to uid ${st.uid}, not you (${uid})`
        : st.mode & 0o022
          ? 'may be written by other users'
          : undefined;
    if (why) {
      throw new DrawbridgeError(
        'INVALID_CONFIG',
        `refusing the credential store: ${path} ${why}, so someone else could replace the agent CA kept there`,
        i === 0
          ? `chmod go-w ${path}, or point DRAWBRIDGE_HOME at a folder of your own`
          : `remove ${path} and log in again (kubectl db login)`,
      );
    }
  }
}

/** Writes a new 0600 file beside `path` and renames it over `path`: a symlink there is replaced, not followed. */
async function writePrivate(path: string, text: string): Promise<void> {
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(temp, text, { mode: 0o600, flag: 'wx' });
    await rename(temp, path);
  } catch (err) {
    await unlink(temp).catch(() => {});
    throw err;
  }
}

export async function saveLogin(
  ref: DatabaseRef,
  files: { keyPem: string; certPem: string; caPem: string },
  record: LoginRecord,
): Promise<StoredLogin> {
  const root = storeRoot();
  const dir = loginDir(ref, root);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await checkPrivate(root, ref);
  // The key first and the record last: a login cut short leaves no record, so it is not used.
  await writePrivate(join(dir, KEY), files.keyPem);
  await writePrivate(join(dir, CERT), files.certPem);
  await writePrivate(join(dir, CA), files.caPem);
  await writePrivate(join(dir, RECORD), `${JSON.stringify(record, null, 2)}\n`);
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
  const root = storeRoot();
  const dir = loginDir(ref, root);
  let text: string;
  try {
    text = await readFile(join(dir, RECORD), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  await checkPrivate(root, ref);
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
