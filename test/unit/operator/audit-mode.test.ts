// A tenant must not weaken its own audit when the platform pins the agents' audit mode (Helm
// agents.audit.enforce): the controller passes --audit-mode-enforced, the agent keeps the platform's
// mode over the Database's spec.audit.mode, and the Database says so with a condition and an Event.
import { beforeAll, describe, expect, it } from 'vitest';
import { auditOverride } from '../../../src/agent/agent.js';
import { parseControllerConfig } from '../../../src/api/controller-config.js';
import type { Condition } from '../../../src/api/meta.js';
import type { KubeObject } from '../../../src/kube/types.js';
import { agentArgs } from '../../../src/operator/database/manifests.js';
import { type KeyPairPem, createCA } from '../../../src/pki/ca.js';
import { database, reconcileOnce, storedDatabase, writtenStatus } from './fakes.js';

let ca: KeyPairPem;
beforeAll(async () => {
  ca = await createCA({ commonName: 'test' });
});

const ENFORCED = { mode: 'required', stallTimeout: '30s', enforce: true } as const;
const withAudit = (audit: object, status?: object): KubeObject => ({
  ...database({ audit }),
  ...(status ? { status } : {}),
});
const allowed = (conditions: Condition[]) => conditions.find((c) => c.type === 'AuditModeAllowed');

describe("the agent's audit mode", () => {
  it("is the Database's over the agent's default when nothing is enforced", () => {
    expect(
      auditOverride({ maxValueLength: 4096, mode: 'best-effort', stallTimeout: '2m' }, undefined),
    ).toEqual({
      override: { mode: 'best-effort', stallTimeoutMs: 120_000 },
    });
    expect(auditOverride({ maxValueLength: 4096 }, undefined)).toEqual({
      override: { mode: undefined, stallTimeoutMs: undefined },
    });
  });

  it("is the platform's when enforced, naming the mode the Database asked for in vain", () => {
    expect(
      auditOverride({ maxValueLength: 4096, mode: 'best-effort', stallTimeout: '2m' }, 'required'),
    ).toEqual({
      override: { mode: 'required', stallTimeoutMs: 120_000 },
      ignored: 'best-effort',
    });
    expect(auditOverride({ maxValueLength: 4096, mode: 'required' }, 'required')).toEqual({
      override: { mode: 'required', stallTimeoutMs: undefined },
    });
    expect(auditOverride({ maxValueLength: 4096 }, 'best-effort')).toEqual({
      override: { mode: 'best-effort', stallTimeoutMs: undefined },
    });
  });

  it('is pinned by the controller with --audit-mode-enforced, only when agents.audit.enforce is set', () => {
    const db = storedDatabase('passthrough');
    expect(agentArgs(db, { audit: ENFORCED }).join(' ')).toContain(
      '--audit-mode required --audit-stall-timeout 30s --audit-mode-enforced',
    );
    expect(agentArgs(db, { audit: { ...ENFORCED, enforce: false } })).not.toContain('--audit-mode-enforced');
    expect(parseControllerConfig('agents: {audit: {}}', 'controller.yaml').agents?.audit).toEqual({
      mode: 'required',
      stallTimeout: '30s',
      enforce: false,
    });
  });
});

describe('AuditModeAllowed', () => {
  it('is False with a Warning Event naming the Helm value when the Database asks for another mode', async () => {
    const { writer, events, done } = reconcileOnce(ca, withAudit({ mode: 'best-effort' }), {
      audit: ENFORCED,
    });
    await done;
    const { conditions } = writtenStatus(writer);
    const c = allowed(conditions)!;
    expect(c).toMatchObject({ status: 'False', reason: 'AuditModeEnforced' });
    expect(c.message).toContain('spec.audit.mode best-effort is ignored');
    expect(c.message).toContain('audit mode required');
    expect(c.message).toContain('Helm value agents.audit.enforce');
    // The agent serves, audited in the platform's mode: Ready is not held back by it.
    expect(conditions[0]).toMatchObject({ type: 'Ready', reason: 'AgentDeploying' });
    expect(events.events.filter((e) => e.type === 'Warning')).toEqual([
      { type: 'Warning', reason: 'AuditModeEnforced', message: c.message },
    ]);

    // Told once: the next reconcile with that status records nothing new.
    const again = reconcileOnce(ca, withAudit({ mode: 'best-effort' }, writtenStatus(writer)), {
      audit: ENFORCED,
    });
    await again.done;
    expect(again.events.events.filter((e) => e.type === 'Warning')).toEqual([]);
  });

  it('is True, without an Event, when the Database asks for nothing else or nothing is enforced', async () => {
    for (const [audit, settings] of [
      [{ mode: 'required' }, ENFORCED],
      [{}, ENFORCED],
      [{ mode: 'best-effort' }, { ...ENFORCED, enforce: false }],
      [{ mode: 'best-effort' }, undefined],
    ] as const) {
      const { writer, events, done } = reconcileOnce(
        ca,
        withAudit(audit),
        settings ? { audit: settings } : {},
      );
      await done;
      expect(allowed(writtenStatus(writer).conditions)).toMatchObject({
        status: 'True',
        reason: 'AuditModeAllowed',
      });
      expect(events.events.filter((e) => e.reason === 'AuditModeEnforced')).toEqual([]);
    }
  });
});
