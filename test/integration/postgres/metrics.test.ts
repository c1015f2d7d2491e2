/**
 * The agent's /metrics after real traffic: psql sessions through a standalone agent to PostgreSQL 15,
 * one allowed and one denied, then a scrape over HTTP. Names, labels and values are checked, not just
 * presence: the counts must be the sessions that happened.
 */
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestAgent, startTestAgent } from '../../support/agent.js';
import { freePort } from '../../support/ports.js';
import { type Fixture, agentConninfo, baseDocs, psql, startFixture } from './fixture.js';

let f: Fixture;
let agent: TestAgent;
let url: string;
let dead: TestAgent | undefined;

beforeAll(async () => {
  f = await startFixture();
  const port = await freePort();
  url = `http://127.0.0.1:${port}/metrics`;
  agent = await startTestAgent({
    database: 'orders-pg',
    docs: baseDocs(f.pg.port, f.pg.ca.certPem),
    tls: f.agentTls,
    metrics: `127.0.0.1:${port}`,
  });
});
afterAll(async () => {
  await dead?.stop();
  await agent?.stop();
  await f?.stop();
});

/** `name{labels} value` lines whose labels include every one given. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

describe('agent metrics after real sessions', () => {
  let text: string;

  beforeAll(async () => {
    const on = { ...f, agent } as Fixture;
    const ok = await psql(agentConninfo(on, f.people.alice, 'alice', 'orders'), 'select 1');
    expect(ok.stdout.trim()).toBe('1');
    const denied = await psql(agentConninfo(on, f.people.mallory, 'alice', 'orders'), 'select 1');
    expect(denied.code).not.toBe(0);
    // session.end is counted when the socket closes, just after psql exits.
    await new Promise((r) => setTimeout(r, 200));
    text = await (await fetch(url)).text();
  });

  it('counts the sessions by outcome, with how long setting each up took', () => {
    const db = { database: 'orders-pg', protocol: 'postgres' };
    expect(sample(text, 'drawbridge_sessions_total', { ...db, outcome: 'established' })).toBe(1);
    expect(sample(text, 'drawbridge_sessions_total', { ...db, outcome: 'denied' })).toBe(1);
    expect(sample(text, 'drawbridge_session_setup_seconds_count', { ...db, outcome: 'established' })).toBe(1);
    const seconds = sample(text, 'drawbridge_session_setup_seconds_sum', { ...db, outcome: 'established' })!;
    expect(seconds).toBeGreaterThan(0);
    expect(seconds).toBeLessThan(10);
    expect(sample(text, 'drawbridge_sessions_active', db)).toBe(0);
  });

  it('times each query round trip (Query to ReadyForQuery)', () => {
    const db = { database: 'orders-pg', protocol: 'postgres' };
    // psql -c sends one Query; the denied session never got that far.
    expect(sample(text, 'drawbridge_command_duration_seconds_count', db)).toBe(1);
    const seconds = sample(text, 'drawbridge_command_duration_seconds_sum', db)!;
    expect(seconds).toBeGreaterThan(0);
    expect(seconds).toBeLessThan(5);
    expect(sample(text, 'drawbridge_command_duration_seconds_bucket', { ...db, le: '+Inf' })).toBe(1);
  });

  it('counts the denial by reason', () => {
    // mallory's only role allows staging databases: a role, but no allow rule for this one.
    expect(
      sample(text, 'drawbridge_access_denied_total', {
        database: 'orders-pg',
        level: 'session',
        reason: 'no_allow_rule',
      }),
    ).toBe(1);
  });

  it('exports the serving certificate and client CA expiry, and build_info', () => {
    const expiry = sample(text, 'drawbridge_certificate_expiry_timestamp_seconds', {
      certificate: 'serving',
    });
    expect(expiry).toBe(Math.floor(Date.parse(new X509Certificate(f.agentTls.certPem).validTo) / 1000));
    expect(
      sample(text, 'drawbridge_certificate_expiry_timestamp_seconds', { certificate: 'client_ca' }),
    ).toBe(Math.floor(Date.parse(new X509Certificate(f.agentTls.clientCaPem).validTo) / 1000));
    expect(
      sample(text, 'drawbridge_build_info', {
        component: 'agent',
        version: '0.1.0',
        node_version: process.version,
      }),
    ).toBe(1);
  });
});

describe('backend errors', () => {
  it('counts a session that fails on an unreachable backend by its code', async () => {
    const port = await freePort();
    // Nothing listens on the backend port: the agent's connect is refused.
    dead = await startTestAgent({
      database: 'orders-pg',
      docs: baseDocs(await freePort(), f.pg.ca.certPem),
      tls: f.agentTls,
      metrics: `127.0.0.1:${port}`,
    });
    const r = await psql(
      agentConninfo({ ...f, agent: dead } as Fixture, f.people.alice, 'alice', 'orders'),
      'select 1',
    );
    expect(r.code).not.toBe(0);
    await new Promise((done) => setTimeout(done, 200));
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const labels = { database: 'orders-pg', protocol: 'postgres' };
    expect(sample(text, 'drawbridge_backend_errors_total', { ...labels, code: 'BACKEND_UNREACHABLE' })).toBe(
      1,
    );
    expect(sample(text, 'drawbridge_sessions_total', { ...labels, outcome: 'failed' })).toBe(1);
  });
});
