// The floor of any Node Redis proxy: a bare TLS→TLS byte pipe, no parsing, rules, audit or backend
// credentials (redis-benchmark authenticates itself). Its listener asks for client certificates and
// checks them against the client CA, as the agent's does (letting clients without one through), so a
// new connection costs it the same handshake; bench/pg-tls-pipe.ts does the same. The benches run it
// in its own process, as every target (bench/proxy-process.ts), so the CPU charged to it is its own.
// Usage: node dist/bench/redis-tls-pipe.js PORT REDIS_TLS_PORT SERVER_CERT SERVER_KEY REDIS_CA CLIENT_CA;
// exits when its stdin ends.
import { readFileSync } from 'node:fs';
import { createSecureContext, createServer, connect as tlsConnect } from 'node:tls';

const [port, redisPort, certFile, keyFile, caFile, clientCaFile] = process.argv.slice(2);
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
pipe.listen(Number(port), '127.0.0.1');
process.stdin.on('end', () => process.exit(0));
// The bench ends it with SIGTERM: exiting (not dying of the signal) writes a --cpu-prof profile.
process.once('SIGTERM', () => process.exit(0));
process.stdin.resume();
