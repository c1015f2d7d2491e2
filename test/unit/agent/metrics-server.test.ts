import { type AddressInfo, connect } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { serveMetrics } from '../../../src/agent/metrics-server.js';
import { isDrawbridgeError } from '../../../src/errors.js';
import { createLogger } from '../../../src/log.js';

const servers: { close(): void }[] = [];
const registry = {
  contentType: 'text/plain; version=0.0.4; charset=utf-8' as const,
  metrics: () => Promise.resolve('up 1\n'),
};
afterEach(() => servers.splice(0).forEach((s) => s.close()));

async function get(port: number, path: string): Promise<[number, string]> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return [res.status, await res.text()];
}

it('answers /livez while /healthz says not ready (draining, workers restarting)', async () => {
  let ready = false;
  const server = await serveMetrics('127.0.0.1:0', { registry }, createLogger('test', 'silent'), () => ready);
  servers.push(server);
  const { port } = server.address() as AddressInfo;
  expect(await get(port, '/healthz')).toEqual([503, 'no worker is listening']);
  expect(await get(port, '/livez')).toEqual([200, 'ok']);
  ready = true;
  expect(await get(port, '/healthz')).toEqual([200, 'ok']);
  expect(await get(port, '/nope')).toEqual([404, '']);
});

it('names a taken address and the setting to change, instead of throwing from an error event', async () => {
  const log = createLogger('test', 'silent');
  const first = await serveMetrics('127.0.0.1:0', { registry }, log);
  servers.push(first);
  const taken = `127.0.0.1:${(first.address() as AddressInfo).port}`;
  const err = await serveMetrics(taken, { registry }, log, () => true, '--health-listen').catch(
    (e: unknown) => e,
  );
  expect(isDrawbridgeError(err, 'INVALID_CONFIG')).toBe(true);
  expect((err as Error).message).toBe(
    `cannot listen on ${taken} for metrics and probes: the port is in use by another process`,
  );
  expect((err as { hint?: string }).hint).toBe('stop what holds it, or choose a free port (--health-listen)');
});

it('closes a connection that sends nothing, or trickles its headers, and still answers scrapes', async () => {
  const server = await serveMetrics('127.0.0.1:0', { registry }, createLogger('test', 'silent'));
  servers.push(server);
  const { port } = server.address() as AddressInfo;
  const closed = (write?: string) => {
    const s = connect(port, '127.0.0.1', () => write && s.write(write));
    s.on('error', () => undefined);
    const trickle = setInterval(() => write && !s.destroyed && s.write('x-a: b\r\n'), 1000);
    return new Promise<boolean>((resolve) => s.once('close', () => resolve(true))).finally(() =>
      clearInterval(trickle),
    );
  };
  // Before, neither was ever closed (the sender of nothing) or only after 60-90 s (the trickler).
  const [idle, trickler] = [closed(), closed('GET /metrics HTTP/1.1\r\n')];
  expect(await get(port, '/metrics')).toEqual([200, 'up 1\n']);
  expect(await Promise.all([idle, trickler])).toEqual([true, true]);
});
