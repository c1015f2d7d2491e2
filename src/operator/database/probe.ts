// BackendReachable: can this network reach the backend, and does its TLS check out the way the agent
// will check it? A TCP connect plus, when TLS is on, the real handshake with the agent's own TLS
// options (PostgreSQL first asks with an SSLRequest, as libpq does).
import net from 'node:net';
import tls from 'node:tls';
import { type Database, backendAddress } from '../../api/database.js';
import type { SecretReader } from '../../api/agent-config.js';
import { backendTlsOptions } from '../../api/backend-tls.js';
import { errorMessage } from '../../errors.js';
import { CONDITION, REASON } from '../../api/database-status.js';
import type { ConditionState } from './conditions.js';

// Int32 length 8, Int32 code 80877103: the PostgreSQL SSLRequest.
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

type Outcome = Pick<ConditionState, 'status' | 'reason' | 'message'>;

function outcome(o: Outcome): ConditionState {
  return { type: CONDITION.BackendReachable, ...o };
}

export async function probeBackend(
  db: Database,
  secrets: SecretReader,
  timeoutMs = 3000,
): Promise<ConditionState> {
  const { host, port } = backendAddress(db.spec);
  const where = `${host}:${port}`;
  let tlsOptions: tls.ConnectionOptions | undefined;
  try {
    tlsOptions = backendTlsOptions(db, secrets);
  } catch (err) {
    return outcome({ status: 'False', reason: REASON.BackendTLSFailed, message: errorMessage(err) });
  }
  const sockets: net.Socket[] = [];
  const timer = new Promise<Outcome>((resolve) =>
    setTimeout(
      () =>
        resolve({
          status: 'False',
          reason: REASON.BackendUnreachable,
          message: `no answer from ${where} within ${timeoutMs} ms; check spec.uri, the server, and NetworkPolicies between the agent and the database`,
        }),
      timeoutMs,
    ).unref(),
  );
  try {
    return outcome(await Promise.race([attempt(db, host, port, tlsOptions, sockets), timer]));
  } finally {
    // The outermost socket only: a TLSSocket owns the TCP socket under it, and destroying that TCP
    // socket underneath a live TLS wrap crashes Node 20 (segfault in the TLS wrap's cleanup).
    sockets.at(-1)?.destroy();
  }
}

async function attempt(
  db: Database,
  host: string,
  port: number,
  tlsOptions: tls.ConnectionOptions | undefined,
  sockets: net.Socket[],
): Promise<Outcome> {
  const where = `${host}:${port}`;
  const socket = net.connect({ host, port });
  sockets.push(socket);
  try {
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
      return {
        status: 'False',
        reason: REASON.BackendDNSFailed,
        message: `cannot resolve "${host}" (${code}); check the host name in spec.uri`,
      };
    }
    return {
      status: 'False',
      reason: REASON.BackendUnreachable,
      message: `cannot connect to ${where}: ${errorMessage(err)}; check spec.uri and that the database is running`,
    };
  }
  if (!tlsOptions)
    return {
      status: 'True',
      reason: REASON.BackendReachable,
      message: `${where} accepts connections (plaintext)`,
    };
  if (db.spec.protocol === 'postgres') {
    socket.write(SSL_REQUEST);
    const answer = await new Promise<number>((resolve, reject) => {
      socket
        .once('data', (b: Buffer) => resolve(b[0] ?? 0))
        .once('error', reject)
        .once('end', () => resolve(0));
    });
    if (answer !== 0x53 /* 'S' */) {
      return {
        status: 'False',
        reason: REASON.BackendTLSUnavailable,
        message: `${where} does not offer TLS; turn on ssl in the server, or set spec.tls.mode: disabled`,
      };
    }
  }
  const secure = tls.connect({ ...tlsOptions, socket });
  sockets.push(secure);
  try {
    await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
  } catch (err) {
    return {
      status: 'False',
      reason: REASON.BackendTLSFailed,
      message: `TLS handshake with ${where} failed: ${errorMessage(err)}; check spec.tls (mode, caSecretRef, serverName)`,
    };
  }
  return { status: 'True', reason: REASON.BackendReachable, message: `${where} accepts TLS connections` };
}
