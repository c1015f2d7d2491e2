// The floor of any Node PostgreSQL proxy: a bare TLS→TLS byte pipe that does PostgreSQL's SSLRequest
// exchange on both sides and nothing else — no parsing, rules, audit or backend credentials (the
// client's own password goes through to the server). bench/postgres.sh runs it beside the agent, in its
// own process, so the agent's TPS, CPU and RSS can be read against what Node itself costs.
// Usage: node dist/bench/pg-tls-pipe.js PORT PG_PORT SERVER_CERT SERVER_KEY CLIENT_CA PG_CA
import { readFileSync } from 'node:fs';
import { type Socket, connect, createServer } from 'node:net';
import { TLSSocket, connect as tlsConnect, createSecureContext } from 'node:tls';

const [port, pgPort, certFile, keyFile, clientCaFile, pgCaFile] = process.argv.slice(2);
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
const GSSENC_REQUEST_CODE = 80877104;
const context = createSecureContext({
  cert: readFileSync(certFile!),
  key: readFileSync(keyFile!),
  ca: readFileSync(clientCaFile!),
});
// One context for every backend connection, as for the client side (and as the agent does): a `ca`
// option per connect would build an OpenSSL context per session, CPU and memory no real proxy spends.
const pgContext = createSecureContext({ ca: readFileSync(pgCaFile!) });

/** The next chunk (loopback: a startup packet arrives whole). */
const nextChunk = (s: Socket) => new Promise<Buffer>((resolve) => s.once('data', resolve));

async function serve(raw: Socket): Promise<void> {
  raw.setNoDelay(true);
  let hello = await nextChunk(raw);
  if (hello.readInt32BE(4) === GSSENC_REQUEST_CODE) {
    raw.write('N');
    hello = await nextChunk(raw);
  }
  raw.pause();
  raw.write('S');
  const client = new TLSSocket(raw, { isServer: true, secureContext: context, requestCert: true });
  const backendRaw = connect({ host: '127.0.0.1', port: Number(pgPort), noDelay: true });
  backendRaw.write(SSL_REQUEST);
  await nextChunk(backendRaw);
  const backend = tlsConnect({ socket: backendRaw, secureContext: pgContext, servername: 'localhost' });
  client.pipe(backend).pipe(client);
  client.on('error', () => backend.destroy());
  backend.on('error', () => client.destroy());
  client.on('close', () => backend.destroy());
  backend.on('close', () => client.destroy());
}

createServer((raw) => {
  raw.on('error', () => raw.destroy());
  serve(raw).catch(() => raw.destroy());
}).listen(Number(port), '127.0.0.1');
// The bench ends it with SIGTERM: exiting (not dying of the signal) writes a --cpu-prof profile.
process.once('SIGTERM', () => process.exit(0));
