// Workloads without a client certificate send a ServiceAccount token as their password: the agent asks
// for a cleartext password (inside TLS) and hands the token to the TokenVerifier seam.
import { PassThrough } from 'node:stream';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { describe, expect, it } from 'vitest';
import type { Identity, TokenVerifier } from '../../../src/authn/identity.js';
import { identify } from '../../../src/engines/postgres/frontend.js';
import { Wire } from '../../../src/engines/postgres/wire.js';
import { be, fe } from './factory.js';

const TOKEN = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YXBwOmFwaSJ9.c2lnbmF0dXJl';

/** A TLS socket with no client certificate; what the agent writes is collected, what the client sends is pushed. */
function connection(clientSends: Buffer) {
  const written: Buffer[] = [];
  const stream = new PassThrough();
  const tls = Object.assign(stream, {
    getPeerX509Certificate: () => undefined,
    write: (b: Buffer) => written.push(b) > 0,
  }) as unknown as TLSSocket;
  const wire = new Wire(tls as Socket, 'client');
  setImmediate(() => stream.emit('data', clientSends));
  return { tls, wire, written };
}

const verifier = (seen: string[]): TokenVerifier => ({
  async verify(token: string): Promise<Identity> {
    seen.push(token);
    return { user: 'system:serviceaccount:app:api', groups: ['system:serviceaccounts'], source: 'token' };
  },
});

describe('identify without a client certificate', () => {
  it('asks for a password and verifies the token sent as one', async () => {
    const seen: string[] = [];
    const c = connection(fe.password(TOKEN));
    const identity = await identify(c.tls, c.wire, verifier(seen));
    expect(identity).toMatchObject({ user: 'system:serviceaccount:app:api', source: 'token' });
    expect(seen).toEqual([TOKEN]);
    expect(c.written).toEqual([be.authCleartext()]);
  });

  it('refuses a password that is not a token, naming the fix', async () => {
    const c = connection(fe.password('hunter2'));
    await expect(identify(c.tls, c.wire, verifier([]))).rejects.toMatchObject({
      code: 'AUTHN_FAILED',
      message: expect.stringContaining('not a ServiceAccount token'),
    });
  });

  it('refuses without asking when the agent has no token verifier (standalone)', async () => {
    const c = connection(Buffer.alloc(0));
    await expect(identify(c.tls, c.wire, undefined)).rejects.toMatchObject({
      code: 'AUTHN_FAILED',
      hint: expect.stringContaining('kubectl db login'),
    });
    expect(c.written).toEqual([]);
  });

  it('passes on a verifier rejection', async () => {
    const c = connection(fe.password(TOKEN));
    const failing: TokenVerifier = {
      verify: () => Promise.reject(Object.assign(new Error('token expired'), { code: 'AUTHN_FAILED' })),
    };
    await expect(identify(c.tls, c.wire, failing)).rejects.toThrow('token expired');
  });
});
