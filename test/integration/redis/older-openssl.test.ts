// The agent on a Node whose OpenSSL predates the post-quantum hybrid group (Node 20 and 22: OpenSSL
// 3.0), as a standalone agent may run: session after session reaches the TLS backend. The key-share
// learning (src/api/backend-key-share.ts) once tried an OpenSSL 3.5 group list there; OpenSSL refused
// it and left the error on its queue, where Node reported it as the next backend handshake's failure,
// so every session after the first lost its backend. Skipped where the machine has no such Node.
import { rm } from 'node:fs/promises';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startWorkersAgent } from '../../support/agent-workers.js';
import { olderNode } from '../../support/older-node.js';
import { type RedisServer, ioredisAt, issuePeopleTls, startRedis } from '../../support/redis.js';
import { redisDocs } from './fixture.js';

const node = olderNode();
let redis: RedisServer;
let pki: Awaited<ReturnType<typeof issuePeopleTls>>;
const clients = new Set<Redis>();

beforeAll(async () => {
  if (!node) return;
  redis = await startRedis();
  pki = await issuePeopleTls(['alice'], 'cache agent', 'drawbridge-older-openssl-pki-');
}, 30_000);
afterAll(async () => {
  clients.forEach((c) => c.disconnect());
  await redis?.stop();
  if (pki) await rm(pki.dir, { recursive: true, force: true });
});

it.skipIf(!node)(
  'reaches the TLS backend in every session, one after another',
  async () => {
    const agent = await startWorkersAgent({
      database: 'cache',
      docs: redisDocs(redis),
      tls: pki.agentTls,
      workers: 1,
      node,
    });
    try {
      for (let i = 0; i < 4; i++) {
        const c = ioredisAt(agent.port, pki.tls('alice'), clients, { username: 'app', password: 'x' });
        await c.set(`older-openssl:${i}`, `v${i}`);
        expect(await c.get(`older-openssl:${i}`)).toBe(`v${i}`);
        c.disconnect();
        clients.delete(c);
      }
    } finally {
      expect(await agent.stop()).toBe(0);
    }
  },
  60_000,
);
