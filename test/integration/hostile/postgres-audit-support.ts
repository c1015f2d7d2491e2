// What the PostgreSQL audit suites share (postgres-audit.test.ts, postgres-audit-cache.test.ts): raw
// sessions through the agent named by their audit session id, exchanges of wire messages, and the
// session's `query` events read back from the real audit file.
import { setTimeout as sleep } from 'node:timers/promises';
import type { AuditEvent } from '../../../src/agent/audit.js';
import { decodeErrorFields } from '../../../src/engines/postgres/decoders.js';
import type { Fixture } from '../postgres/fixture.js';
import { type RawSession, rawSession } from '../postgres/raw-client.js';

/** Sends `messages` in one write and reads until `ready` ReadyForQuery; returns the errors seen. */
export async function exchange(s: RawSession, messages: Buffer[], ready = 1): Promise<string[]> {
  s.tls.write(Buffer.concat(messages));
  const errors: string[] = [];
  for (let n = 0; n < ready;) {
    const m = await s.next();
    if (!m) throw new Error(`connection closed; errors: ${errors.join('; ')}`);
    if (m.code === 0x45) errors.push(decodeErrorFields(m.body).message ?? '');
    if (m.code === 0x5a) n++;
  }
  return errors;
}

/** A raw session and its audit session id (sessions here run one at a time: the newest start is ours). */
export type Session = RawSession & { sessionId: string };

/** `query` events of one session (the audit sink flushes within milliseconds). */
export async function queries(f: Fixture, s: Session, count: number): Promise<AuditEvent[]> {
  for (let i = 0; ; i++) {
    const found = (await f.agent.auditEvents()).filter(
      (e) => e.type === 'query' && e.sessionId === s.sessionId,
    );
    if (found.length >= count || i === 30) return found;
    await sleep(100);
  }
}

/** A raw session as alice (database user alice, database orders) for `fn`, closed after it. */
export async function withSession<T>(f: Fixture, fn: (s: Session) => Promise<T>): Promise<T> {
  const starts = async () => (await f.agent.auditEvents()).filter((e) => e.type === 'session.start');
  const before = (await starts()).length;
  const raw = await rawSession(f, f.people.alice, 'alice', 'orders');
  try {
    let all = await starts();
    for (let i = 0; all.length === before && i < 30; i++) {
      await sleep(50);
      all = await starts();
    }
    return await fn(Object.assign(raw, { sessionId: all.at(-1)!.sessionId }));
  } finally {
    raw.tls.destroy();
  }
}
