// A parameter sent in binary format is shown as hex, its first 128 bytes. Past them the audit must
// still pin the whole value (its SHA-256), as for a text value past the limit: otherwise a client
// sends a text value in binary format (for `text` the same bytes) and all but its head goes unrecorded.
// Raw wire messages against the real PostgreSQL 15 through the real agent.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Fixture, startFixture } from '../postgres/fixture.js';
import { fe } from '../../unit/postgres/factory.js';
import { exchange, queries, withSession } from './postgres-audit-support.js';

let f: Fixture;
beforeAll(async () => {
  f = await startFixture();
});
afterAll(async () => {
  await f?.stop();
});

describe('binary parameters', () => {
  it('past the bytes shown, end with the size and SHA-256 of the whole value', async () => {
    const hidden = Buffer.from(`${'h'.repeat(128)}; and what follows is only in the hash`);
    await withSession(f, async (s) => {
      const errors = await exchange(s, [
        fe.parse('', 'SELECT $1::text'),
        fe.bind('', '', [1], [hidden]),
        fe.execute(''),
        fe.sync(),
      ]);
      expect(errors).toEqual([]);
      const [b] = await queries(f, s, 1);
      const sha = createHash('sha256').update(hidden).digest('hex');
      const head = hidden.subarray(0, 128).toString('hex');
      expect(b!.parameters).toEqual([`\\x${head}…[${hidden.length} bytes sha256:${sha}]`]);
    });
  });
});
