// The Redis error replies the agent makes (RedisReplyError) or decodes (RespError) are real Errors, so
// anything that catches one can treat it as such, yet capture no stack: they are made per command.
import { describe, expect, it } from 'vitest';
import { RespError } from '../../../src/engines/redis/reply-parser.js';
import { RedisReplyError } from '../../../src/engines/redis/router.js';

describe('Redis error replies', () => {
  it('are Errors with their message and prefix, and no captured stack frames', () => {
    const made = new RedisReplyError('CROSSSLOT', "Keys in request don't hash to the same slot");
    const decoded = new RespError('MOVED 3999 10.0.0.1:6381');
    expect(made).toBeInstanceOf(Error);
    expect(decoded).toBeInstanceOf(Error);
    expect([made.prefix, made.message]).toEqual(['CROSSSLOT', "Keys in request don't hash to the same slot"]);
    expect([decoded.prefix, decoded.message]).toEqual(['MOVED', 'MOVED 3999 10.0.0.1:6381']);
    expect(made.stack).not.toMatch(/\n\s+at /);
    expect(decoded.stack).not.toMatch(/\n\s+at /);
    // The process-wide limit is restored: other errors still get their stacks.
    expect(new Error('x').stack).toMatch(/\n\s+at /);
  });
});
