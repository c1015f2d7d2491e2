// Keeps a backend connection logged in past the end of a rotating credential (a password credential
// with `expiresAt`, e.g. an ElastiCache IAM token: AWS cuts an IAM-authenticated connection 12 h after
// its last AUTH). Shortly before `expiresAt` the connection's owner sends `AUTH user <fresh token>` in
// order with its command stream, so every reply still matches its command; Redis keeps the connection
// and its state. A refused re-AUTH ends the connection with BACKEND_AUTH_FAILED, never silently.
//
// Commands in flight are untouched, so this runs once per credential lifetime per connection, off the
// per-command path. A connection in a state where AUTH would be answered differently (inside MULTI it
// is queued, in RESP2 subscribed mode it is refused) is asked again a little later.
import { DrawbridgeError, errorMessage } from '../../errors.js';
import type { BackendCredential } from '../../agent/credentials.js';
import { authFailure } from './backend-auth.js';
import { encodeCommand } from './serializer.js';

/** A fresh credential for `user` from the Database's provider (the agent's, see RouterOptions). */
export type Renew = (user: string) => Promise<BackendCredential>;

/** The moment a credential stops working for new AUTHs on an open connection, if it does. */
export function expiryOf(credential: BackendCredential): number | undefined {
  return credential.kind === 'password' ? credential.expiresAt?.getTime() : undefined;
}

export interface ReauthHooks {
  renew: Renew;
  /** Whether the connection can take an AUTH now (checked before a credential is fetched). */
  ready(): boolean;
  /**
   * Sends `auth` in order with the connection's commands and resolves to its reply frame (or the
   * error the connection died of). Undefined when the connection cannot take an AUTH right now.
   */
  send(auth: Buffer): Promise<Buffer | DrawbridgeError> | undefined;
  /** Ends the connection: its credential can no longer be renewed. */
  fail(err: DrawbridgeError): void;
}

/** How often a connection that cannot take an AUTH now (MULTI, subscribed) or whose renewal failed is retried. */
const RETRY_MS = 2_000;
/** Re-AUTH this far ahead of `expiresAt` (a tenth of what is left when that is less). */
const LEAD_MS = 60_000;
/** setTimeout's ceiling (about 24.8 days); a later expiry is re-armed on the way. */
const MAX_DELAY_MS = 2 ** 31 - 1;

/** One connection's re-AUTH timer. `arm` it with each credential the connection logs in with. */
export class Reauth {
  private timer: NodeJS.Timeout | undefined;
  /** Bumped by every arm/cancel, so a renewal started for an older login is dropped. */
  private epoch = 0;

  constructor(private readonly hooks: ReauthHooks) {}

  /** Schedules the re-AUTH for `credential` (replacing any earlier one); no-op unless it expires. */
  arm(credential: BackendCredential): void {
    this.cancel();
    const expiresAt = expiryOf(credential);
    if (expiresAt === undefined) return;
    const left = expiresAt - Date.now();
    const delay = left - Math.min(LEAD_MS, left / 10);
    this.schedule(credential.user, expiresAt, delay);
  }

  cancel(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.epoch++;
  }

  private schedule(user: string, expiresAt: number, delay: number): void {
    const epoch = this.epoch;
    this.timer = setTimeout(
      () => void this.run(user, expiresAt, epoch),
      Math.min(Math.max(0, delay), MAX_DELAY_MS),
    );
    this.timer.unref();
  }

  private async run(user: string, expiresAt: number, epoch: number): Promise<void> {
    this.timer = undefined;
    if (expiresAt - Date.now() > MAX_DELAY_MS) {
      this.schedule(user, expiresAt, expiresAt - Date.now() - LEAD_MS);
      return;
    }
    if (!this.hooks.ready()) {
      this.schedule(user, expiresAt, RETRY_MS);
      return;
    }
    let credential: BackendCredential;
    try {
      credential = await this.hooks.renew(user);
    } catch (err) {
      if (epoch !== this.epoch) return;
      // The old credential still holds until expiresAt: keep trying until then.
      const left = expiresAt - Date.now();
      if (left > 0) this.schedule(user, expiresAt, Math.min(RETRY_MS, left));
      else this.hooks.fail(renewFailed(user, err));
      return;
    }
    if (epoch !== this.epoch) return;
    if (credential.kind !== 'password') {
      this.hooks.fail(renewFailed(user, new Error(`the provider returned a ${credential.kind} credential`)));
      return;
    }
    const sent = this.hooks.send(encodeCommand(['AUTH', credential.user, credential.password]));
    if (!sent) {
      this.schedule(user, expiresAt, RETRY_MS);
      return;
    }
    const reply = await sent;
    if (reply instanceof DrawbridgeError || epoch !== this.epoch) return; // the connection is gone
    const refused = authFailure(reply, credential.user);
    if (refused) {
      this.hooks.fail(
        new DrawbridgeError(
          'BACKEND_AUTH_FAILED',
          `re-authentication before the credential expired was refused: ${refused.message}`,
          refused.hint,
        ),
      );
      return;
    }
    this.arm(credential);
  }
}

function renewFailed(user: string, err: unknown): DrawbridgeError {
  return new DrawbridgeError(
    'BACKEND_AUTH_FAILED',
    `cannot renew the backend credential of "${user}" before it expires: ${errorMessage(err)}`,
    'check the agent can reach its credential source (AWS credentials, IRSA role, network); reconnect',
  );
}
