/**
 * The agent's command latency histogram after real Redis traffic: redis-cli through a standalone agent
 * to Redis 7, then a scrape of /metrics over HTTP. One command in COMMAND_SAMPLE is timed, so the
 * count follows the commands sent; the sum is the time those took (agent and Redis).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMAND_SAMPLE } from '../../../src/agent/metrics.js';
import { freePort } from '../../support/ports.js';
import { type RedisFixture, redisDocs, startRedisFixture } from './fixture.js';

let f: RedisFixture;
let url: string;
let port: number;

beforeAll(async () => {
  f = await startRedisFixture();
  const metricsPort = await freePort();
  url = `http://127.0.0.1:${metricsPort}/metrics`;
  ({ port } = await f.startAgent(redisDocs(f.redis), { metrics: `127.0.0.1:${metricsPort}` }));
});
afterAll(async () => {
  await f?.stop();
});

const value = (text: string, re: RegExp) => Number(re.exec(text)?.[1]);

describe('redis command latency', () => {
  it('samples one command in COMMAND_SAMPLE, with the database label', async () => {
    const commands = 4 * COMMAND_SAMPLE;
    const lines = Array.from({ length: commands }, (_, i) => `SET k${i} v${i}`);
    const out = await f.cliAt(port, 'alice', [], lines.join('\n') + '\n');
    expect(
      out
        .trim()
        .split('\n')
        .filter((l) => l === 'OK'),
    ).toHaveLength(commands);
    const text = await (await fetch(url)).text();
    const labels = 'protocol="redis",database="cache"';
    const count = value(
      text,
      new RegExp(`^drawbridge_command_duration_seconds_count\\{${labels}\\} (\\d+)$`, 'm'),
    );
    // redis-cli adds a command or two of its own at connect; a sample is skipped while one is in flight.
    expect(count).toBeGreaterThanOrEqual(3);
    expect(count).toBeLessThanOrEqual(5);
    const sum = value(
      text,
      new RegExp(`^drawbridge_command_duration_seconds_sum\\{${labels}\\} (\\S+)$`, 'm'),
    );
    expect(sum).toBeGreaterThan(0);
    expect(sum / count).toBeLessThan(1);
    const inf = value(
      text,
      new RegExp(`^drawbridge_command_duration_seconds_bucket\\{le="\\+Inf",${labels}\\} (\\d+)$`, 'm'),
    );
    expect(inf).toBe(count);
  });
});

describe('redis command denials', () => {
  it('are counted by the rule that refused them', async () => {
    const denied = (text: string, reason: string) =>
      value(
        text,
        new RegExp(
          `^drawbridge_access_denied_total\\{protocol="redis",level="command",reason="${reason}",database="cache"\\} (\\d+)$`,
          'm',
        ),
      ) || 0;
    const before = await (await fetch(url)).text();
    // alice: anything but @dangerous (FLUSHALL), no scripts under a deny, her DB only (SELECT 5);
    // rita: @read and @connection only (SET).
    const alice = await f.cliAt(port, 'alice', [], 'FLUSHALL\nFLUSHALL\nEVAL "return 1" 0\nSELECT 5\n');
    expect(alice).toContain('NOPERM');
    await f.cliAt(port, 'rita', ['--user', 'reader', '--pass', 'ignored', '--no-auth-warning'], 'SET k v\n');
    const after = await (await fetch(url)).text();
    const counted = (reason: string) => denied(after, reason) - denied(before, reason);
    expect(counted('deny_rule')).toBe(2);
    expect(counted('scripting')).toBe(1);
    expect(counted('arguments')).toBe(1);
    expect(counted('no_allow_rule')).toBe(1);
  });
});
