// The seam between engines and backend authentication. An engine asks the agent for a credential per
// backend connection; the agent picks the provider by `spec.auth.type` from those it was built with
// (src/wiring.ts), so AWS providers plug in without touching engine code. The providers that read
// the Database's own Secret are here.
import type { AuthType, Database } from '../api/database.js';
import type { SecretReader } from '../api/agent-config.js';
import { DrawbridgeError } from '../errors.js';
import type { Logger } from '../log.js';

export interface CredentialRequest {
  database: Database;
  dbUser: string;
  dbName?: string;
}

export type BackendCredential =
  /** Log in with a password (SCRAM, md5, cleartext, Redis AUTH). Older passwords are tried on failure. */
  | { kind: 'password'; user: string; password: string; fallbackPasswords?: string[]; expiresAt?: Date }
  /** Log in with a client certificate (mutual TLS); the user name still goes in the startup/AUTH. */
  | { kind: 'certificate'; user: string; certPem: string; keyPem: string }
  /** Forward what the client itself sent (Redis `passthrough`). */
  | { kind: 'passthrough'; user: string };

export interface CredentialProvider {
  get(req: CredentialRequest): Promise<BackendCredential>;
}

export interface ProviderDeps {
  secrets: SecretReader;
  log: Logger;
}

export type ProviderFactory = (deps: ProviderDeps) => CredentialProvider;

/** The providers an agent build has, by `spec.auth.type`. */
export type CredentialProviders = Partial<Record<AuthType, ProviderFactory>>;

export function credentialProvider(
  providers: CredentialProviders,
  type: AuthType,
  deps: ProviderDeps,
): CredentialProvider {
  const f = providers[type];
  if (!f) {
    throw new DrawbridgeError(
      'CREDENTIALS_UNAVAILABLE',
      `auth type "${type}" is not available in this agent build`,
      'use one of: ' + Object.keys(providers).join(', '),
    );
  }
  return f(deps);
}

function secretOf(deps: ProviderDeps, db: Database): Record<string, string> {
  const name = db.spec.auth.secretRef?.name;
  if (!name) {
    throw new DrawbridgeError(
      'CREDENTIALS_UNAVAILABLE',
      `Database ${db.metadata.name} has no spec.auth.secretRef`,
    );
  }
  const values = deps.secrets.secret(name);
  if (!values) {
    throw new DrawbridgeError(
      'CREDENTIALS_UNAVAILABLE',
      `Secret "${name}" named by Database ${db.metadata.name} spec.auth.secretRef does not exist`,
      `create Secret "${name}" in the Database's namespace (a standalone agent: add a Secret document named "${name}" to its config file)`,
    );
  }
  return values;
}

/**
 * Secret key suffix for the password a user had before a manual rotation (`app.previous`): the
 * engines try `app` first, then this one, so sessions keep working whichever the server has.
 */
const PREVIOUS_PASSWORD_SUFFIX = '.previous';

const passwordProvider: ProviderFactory = (deps) => ({
  async get({ database, dbUser }) {
    const values = secretOf(deps, database);
    const password = values[dbUser];
    if (password === undefined) {
      throw new DrawbridgeError(
        'CREDENTIALS_UNAVAILABLE',
        `Secret "${database.spec.auth.secretRef!.name}" has no password for database user "${dbUser}"`,
        `add key "${dbUser}" (the database user) with its password to the Secret`,
      );
    }
    const previous = values[`${dbUser}${PREVIOUS_PASSWORD_SUFFIX}`];
    const fallback = previous && previous !== password ? { fallbackPasswords: [previous] } : {};
    return { kind: 'password', user: dbUser, password, ...fallback };
  },
});

const mtlsProvider: ProviderFactory = (deps) => ({
  async get({ database, dbUser }) {
    const values = secretOf(deps, database);
    const certPem = values['tls.crt'];
    const keyPem = values['tls.key'];
    if (!certPem || !keyPem) {
      throw new DrawbridgeError(
        'CREDENTIALS_UNAVAILABLE',
        `Secret "${database.spec.auth.secretRef!.name}" needs keys tls.crt and tls.key for mutual TLS`,
      );
    }
    return { kind: 'certificate', user: dbUser, certPem, keyPem };
  },
});

const passthroughProvider: ProviderFactory = () => ({
  async get({ dbUser }) {
    return { kind: 'passthrough', user: dbUser };
  },
});

/** The providers every build has: credentials from the Database's Secret, or the client's own. */
export const secretCredentialProviders: CredentialProviders = {
  password: passwordProvider,
  mtls: mtlsProvider,
  passthrough: passthroughProvider,
};
