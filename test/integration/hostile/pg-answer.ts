// What the agent answers a raw PostgreSQL client: the suites that speak the wire themselves (TLS
// handshakes, tokens as passwords) read the first answer that settles their step.
import type { TLSSocket } from 'node:tls';
import { decodeErrorFields } from '../../../src/engines/postgres/decoders.js';
import { BACKEND_LIMITS, HandshakeBuffer } from '../../../src/engines/postgres/parser.js';

/** Reads `tls` until an ErrorResponse (its message), a message of type `done` (`outcome`), or a close. */
export async function pgAnswer(tls: TLSSocket, done: number, outcome: string): Promise<string> {
  const buffer = new HandshakeBuffer();
  const answer = await new Promise<string>((resolve) => {
    tls.on('data', (chunk: Buffer) => {
      buffer.push(chunk);
      for (let m = buffer.message(BACKEND_LIMITS); m; m = buffer.message(BACKEND_LIMITS)) {
        if (m.code === 0x45) resolve(decodeErrorFields(m.body).message ?? 'error');
        if (m.code === done) resolve(outcome);
      }
    });
    tls.once('close', () => resolve('closed'));
    // A reset while reading the answer is an answer too (and an unheard 'error' would crash the worker).
    tls.once('error', (err) => resolve(`error: ${err.message}`));
  });
  tls.destroy();
  return answer;
}
