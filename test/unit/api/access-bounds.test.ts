// The size bounds on access rules that the CRD cannot carry: label values are a string or a list,
// which no structural schema (nor CEL) can type, so zod refuses oversized ones in the controller.
import { describe, expect, it } from 'vitest';
import { AccessRoleSpec } from '../../../src/api/access.js';

const labels = (databaseLabels: Record<string, unknown>) =>
  AccessRoleSpec.safeParse({ allow: { databaseLabels } }).success;

describe('AccessRole databaseLabels bounds', () => {
  it('accepts 16 keys of 16 values of 128 characters', () => {
    const values = Array.from({ length: 16 }, (_, i) => `${i}`.padEnd(128, 'v'));
    expect(labels(Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, values])))).toBe(true);
  });

  it('refuses a longer value, a longer list or more keys', () => {
    expect(labels({ env: 'p'.repeat(129) })).toBe(false);
    expect(labels({ env: ['prod', 'p'.repeat(129)] })).toBe(false);
    expect(labels({ env: Array.from({ length: 17 }, (_, i) => `prod-${i}`) })).toBe(false);
    expect(labels(Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, '*'])))).toBe(false);
  });
});
