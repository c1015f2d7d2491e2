import { describe, expect, it } from 'vitest';
import { newPassword, rotationToken } from '../../../src/aws/rotation.js';

describe('managed-user rotation', () => {
  it('makes 128-hex-character passwords (ElastiCache allows 16–128), different every time', () => {
    const a = newPassword();
    expect(a).toMatch(/^[0-9a-f]{128}$/);
    expect(newPassword()).not.toBe(a);
  });

  it('gives every replica the same idempotency token for the same secret and slot', () => {
    const t = rotationToken('drawbridge/elasticache/us-east-1/1/user/u', 42);
    expect(t).toBe(rotationToken('drawbridge/elasticache/us-east-1/1/user/u', 42));
    expect(t).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(rotationToken('drawbridge/elasticache/us-east-1/1/user/u', 43)).not.toBe(t);
    expect(rotationToken('drawbridge/elasticache/us-east-1/1/user/v', 42)).not.toBe(t);
  });
});
