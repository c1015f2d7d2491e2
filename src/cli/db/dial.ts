// Opens a mutually authenticated TLS connection to an agent with the stored login. PostgreSQL first
// asks for TLS in plaintext (SSLRequest, answered 'S'), as every libpq client does; Redis starts TLS
// at once. The agent's certificate is checked against the Drawbridge CA and the agent's name.
import { readFile } from 'node:fs/promises';
import { connect as tcpConnect, isIP, type Socket } from 'node:net';
import { type TLSSocket, checkServerIdentity, connect as tlsConnect } from 'node:tls';
import type { Protocol } from '../../api/database.js';
import { SSL_REQUEST } from '../../engines/postgres/serializer.js';
import { DrawbridgeError } from '../../errors.js';
import type { StoredLogin } from './store.js';

export interface AgentAddress {
  host: string;
  port: number;
  serverName: string;
}

export interface ClientTls {
  key: Buffer;
  cert: Buffer;
  ca: Buffer;
}

export async function readClientTls(login: StoredLogin): Promise<ClientTls> {
  const [key, cert, ca] = await Promise.all([
    readFile(login.keyFile),
    readFile(login.certFile),
    readFile(login.caFile),
  ]);
  return { key, cert, ca };
}

function unreachable(addr: AgentAddress, why: string, cause?: unknown): DrawbridgeError {
  return new DrawbridgeError(
    'BACKEND_UNREACHABLE',
    `cannot reach the agent at ${addr.host}:${addr.port}: ${why}`,
    'check the database status with kubectl db ls, or pass --endpoint host:port',
    { cause },
  );
}

function openTcp(addr: AgentAddress): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ host: addr.host, port: addr.port, noDelay: true });
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', (err) => reject(unreachable(addr, err.message, err)));
  });
}

/** Sends SSLRequest and reads the one-byte answer; 'S' means go ahead with the TLS handshake. */
function negotiatePostgresTls(socket: Socket, addr: AgentAddress): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (why: string) => {
      socket.destroy();
      reject(unreachable(addr, why));
    };
    socket.once('data', (answer: Buffer) => {
      socket.off('close', closed);
      if (answer.length !== 1 || answer[0] !== 0x53) return fail('it did not accept TLS (SSLRequest)');
      resolve();
    });
    const closed = () => fail('it closed the connection during the TLS request');
    socket.once('close', closed);
    socket.write(SSL_REQUEST);
  });
}

function startTls(socket: Socket, addr: AgentAddress, creds: ClientTls): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const tls = tlsConnect({
      socket,
      ...creds,
      // SNI takes host names only; the name check below covers IP-address certificates too.
      ...(isIP(addr.serverName) ? {} : { servername: addr.serverName }),
      checkServerIdentity: (_host, cert) => checkServerIdentity(addr.serverName, cert),
      minVersion: 'TLSv1.2',
    });
    tls.once('secureConnect', () => {
      tls.off('error', onError);
      tls.setNoDelay(true);
      resolve(tls);
    });
    const onError = (err: Error) => {
      // Destroy the TLS socket, which owns the TCP one: destroying the TCP socket under a live TLS
      // wrap crashes Node 20.
      tls.destroy();
      reject(tlsError(addr, err));
    };
    tls.once('error', onError);
  });
}

function tlsError(addr: AgentAddress, err: Error): DrawbridgeError {
  const where = `${addr.host}:${addr.port}`;
  if ((err as NodeJS.ErrnoException).code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    // Signed by the Drawbridge CA, but for another Database: its agent must not get this session.
    return new DrawbridgeError(
      'AUTHN_FAILED',
      `refusing the agent at ${where}: its certificate is not for ${addr.serverName} (${err.message})`,
      "another Database's agent (or a stale port-forward) answered there: check --endpoint and " +
        '--tls-server-name, or let kubectl db find the agent (drop --endpoint)',
      { cause: err },
    );
  }
  return new DrawbridgeError(
    'AUTHN_FAILED',
    `TLS with the agent at ${where} failed: ${err.message}`,
    'log in again (kubectl db login NAME) to refresh the certificate and the agent CA',
    { cause: err },
  );
}

export async function dialAgent(
  protocol: Protocol,
  addr: AgentAddress,
  creds: ClientTls,
): Promise<TLSSocket> {
  const socket = await openTcp(addr);
  if (protocol === 'postgres') await negotiatePostgresTls(socket, addr);
  return startTls(socket, addr, creds);
}
