// The floor of any Node Redis proxy: a bare TLS→TLS byte pipe, no parsing, rules, audit or backend
// credentials (redis-benchmark authenticates itself). Its listener asks for client certificates and
// checks them against the client CA, as the agent's does (letting clients without one through), so a
// new connection costs it the same handshake; bench/pg-tls-pipe.ts does the same. bench/redis-bench-env.ts
// runs it in its own process, so the CPU charged to it is its own: sharing the agent's process, each
// was charged the other's leftovers (closing the previous run's 50 connections, their garbage).
// Usage: node dist/bench/redis-tls-pipe.js REDIS_TLS_PORT SERVER_CERT SERVER_KEY REDIS_CA CLIENT_CA;
// prints the port it listens on, and exits when its stdin ends.
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createSecureContext, createServer, connect as tlsConnect } from 'node:tls';

const [redisPort, certFile, keyFile, caFile, clientCaFile] = process.argv.slice(2);
// One context for every backend connection (as the agent has): a `ca` option per connect would build
// an OpenSSL context per session, CPU no real proxy spends.
const backendContext = createSecureContext({ ca: readFileSync(caFile!) });

const serverOptions = {
  cert: readFileSync(certFile!),
  key: readFileSync(keyFile!),
  ca: readFileSync(clientCaFile!),
  requestCert: true,
  rejectUnauthorized: false,
};
const pipe = createServer(serverOptions, (client) => {
  const backend = tlsConnect({ host: '127.0.0.1', port: Number(redisPort), secureContext: backendContext });
  client.setNoDelay(true);
  backend.setNoDelay(true);
  client.pipe(backend).pipe(client);
  client.on('error', () => backend.destroy());
  backend.on('error', () => client.destroy());
});
pipe.listen(0, '127.0.0.1', () => console.log((pipe.address() as AddressInfo).port));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
