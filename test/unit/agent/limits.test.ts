import { describe, expect, it } from 'vitest';
import { Slots, limitOf, tooManyForIdentity } from '../../../src/agent/limits.js';
import { AgentConfigSpec } from '../../../src/api/agent-config.js';
import { parseByteSize, resolveLimits } from '../../../src/api/limits.js';
import { isDrawbridgeError } from '../../../src/errors.js';

describe('limits', () => {
  it('applies the documented defaults', () => {
    expect(resolveLimits()).toEqual({
      maxConnections: 1000,
      maxConnectionsPerIdentity: 100,
      authTimeoutMs: 10_000,
      maxRequestBytes: 128 * 1024 * 1024,
      outputMaxBytes: 32 * 1024 * 1024,
      outputStallMs: 60_000,
      maxPubSubPatterns: 1024,
    });
  });

  it('takes the AgentConfig over the Database field by field, nested fields too', () => {
    const database = {
      maxConnections: 50,
      authTimeout: '3s',
      outputBuffer: { maxBytes: '4Mi', stallTimeout: '5s' },
    };
    const agentConfig = { maxConnections: 20, outputBuffer: { stallTimeout: '1m' } };
    expect(resolveLimits(database, agentConfig)).toMatchObject({
      maxConnections: 20,
      authTimeoutMs: 3000,
      outputMaxBytes: 4 * 1024 * 1024,
      outputStallMs: 60_000,
    });
  });

  it.each([
    ['65536', 65536],
    ['512Ki', 512 * 1024],
    ['128Mi', 128 * 1024 * 1024],
    ['1Gi', 1024 ** 3],
  ])('reads the size %s', (text, bytes) => expect(parseByteSize(text)).toBe(bytes));

  it('refuses sizes and counts it cannot read, naming the form', () => {
    const spec = (limits: object) =>
      AgentConfigSpec.safeParse({
        listen: '127.0.0.1:6379',
        database: 'cache',
        tls: { certFile: 'c', keyFile: 'k', clientCAFile: 'ca' },
        limits,
      });
    expect(spec({ maxRequestBytes: '64MB' }).error?.issues[0]?.message).toContain('"128Mi"');
    expect(spec({ maxConnections: 0 }).success).toBe(false);
    expect(spec({ authTimeout: 'soon' }).success).toBe(false);
    expect(spec({ maxRequestBytes: '64Mi', outputBuffer: { stallTimeout: '30s' } }).success).toBe(true);
    expect(spec({ maxPubSubPatterns: 0 }).success).toBe(false);
    expect(spec({ maxPubSubPatterns: 100_001 }).success).toBe(false);
    expect(spec({ maxPubSubPatterns: 16 }).success).toBe(true);
  });

  it('names the limit an engine error hit, by whether the client had logged in', () => {
    expect(limitOf('MESSAGE_TOO_LARGE', false)).toBe('unauthenticatedRequest');
    expect(limitOf('MESSAGE_TOO_LARGE', true)).toBe('maxRequestBytes');
    expect(limitOf('TOO_MANY_UNANSWERED', true)).toBe('unansweredMessages');
    expect(limitOf('TOO_MANY_SUBSCRIPTIONS', true)).toBe('subscriptions');
    expect(limitOf('PROTOCOL_ERROR', true)).toBeUndefined();
  });

  it('counts connection slots per key, takes none past the cap, and gives them back', () => {
    const slots = new Slots();
    expect(slots.take('alice', 2)).toBe(0);
    expect(slots.take('alice', 2)).toBe(1);
    expect(slots.take('bob', 2)).toBe(0);
    expect(slots.take(null, 2)).toBe(0);
    // Refused: not counted, so a release of another connection frees a slot at once.
    expect(slots.take('alice', 2)).toBe(2);
    slots.release('alice');
    expect(slots.take('alice', 2)).toBe(1);
    // A worker's death gives back all it held at once.
    slots.release('alice', 2);
    expect([...slots.entries()]).toEqual([
      ['bob', 1],
      [null, 1],
    ]);
  });

  it('names the limit and the fix when an identity is over its connections', () => {
    const err = tooManyForIdentity('alice', 2);
    expect(isDrawbridgeError(err, 'TOO_MANY_CONNECTIONS')).toBe(true);
    expect(err.message).toContain('"alice" already has 2 connections');
    expect(err.message).toContain('limits.maxConnectionsPerIdentity');
    expect(err.hint).toContain('raise maxConnectionsPerIdentity');
  });
});
