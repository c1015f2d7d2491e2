import { describe, expect, it } from 'vitest';
import { agentCommand, refuseInClusterAudit } from '../../../src/cli/commands/agent.js';

describe('drawbridge agent --config (standalone)', () => {
  it.each([
    [['--audit-mode-enforced'], '--audit-mode-enforced is for in-cluster agents'],
    [['--audit-mode', 'required', '--audit', '/x'], '--audit, --audit-mode are for in-cluster agents'],
    [['--audit-stall-timeout', '5s'], '--audit-stall-timeout is for in-cluster agents'],
  ])('refuses the in-cluster audit flags %j, naming the AgentConfig fields', async (flags, message) => {
    const run = agentCommand().exitOverride();
    const done = run.parseAsync(['--config', 'agent.yaml', ...flags], { from: 'user' });
    await expect(done).rejects.toThrow(message);
    await expect(done).rejects.toMatchObject({ hint: expect.stringContaining('spec.audit') });
  });

  it('takes them with --database, and --config alone', () => {
    const listen = '0.0.0.0:5432';
    const tlsDir = '/tls';
    expect(() =>
      refuseInClusterAudit({
        database: 'ns/db',
        auditModeEnforced: true,
        auditMode: 'required',
        listen,
        tlsDir,
      }),
    ).not.toThrow();
    expect(() => refuseInClusterAudit({ config: 'agent.yaml', listen, tlsDir })).not.toThrow();
  });
});
