import { KubeConfig } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { Database } from '../../../src/api/database.js';
import { conninfoValue, psqlCommand, redisCliCommand } from '../../../src/cli/db/connect.js';
import { parseHostPort, resolveEndpoint } from '../../../src/cli/db/endpoint.js';
import { envLines, settingsOf } from '../../../src/cli/db/settings.js';
import type { StoredLogin } from '../../../src/cli/db/store.js';

const files = { keyFile: '/h/.drawbridge/c/ns/db/tls.key', certFile: '/h/c/tls.crt', caFile: '/h/c/ca.crt' };

describe('psqlCommand', () => {
  it('verifies the agent by name and connects to the forwarded address', () => {
    const cmd = psqlCommand(
      { hostaddr: '127.0.0.1', port: 40123, serverName: 'drawbridge-orders.shop.svc' },
      files,
      'app',
      'orders',
      ['-c', 'select 1'],
    );
    expect(cmd.command).toBe('psql');
    expect(cmd.args).toEqual([
      'host=drawbridge-orders.shop.svc hostaddr=127.0.0.1 port=40123 user=app dbname=orders sslmode=verify-full ' +
        'sslcert=/h/c/tls.crt sslkey=/h/.drawbridge/c/ns/db/tls.key sslrootcert=/h/c/ca.crt application_name=kubectl-db',
      '-c',
      'select 1',
    ]);
  });

  it('leaves out hostaddr and dbname when there are none', () => {
    const [conninfo] = psqlCommand({ port: 5432, serverName: 'db.local' }, files, 'app', undefined, []).args;
    expect(conninfo).toMatch(/^host=db\.local port=5432 user=app sslmode=verify-full /);
  });
});

describe('conninfoValue', () => {
  it.each([
    ['plain', 'plain'],
    ['/Users/Jane Doe/.drawbridge/tls.key', "'/Users/Jane Doe/.drawbridge/tls.key'"],
    ["o'brien", "'o\\'brien'"],
    ['back\\slash', "'back\\\\slash'"],
    ['', "''"],
  ])('%s → %s', (value, quoted) => expect(conninfoValue(value)).toBe(quoted));
});

describe('redisCliCommand', () => {
  const sock = '/tmp/kubectl-db-x/redis.sock';

  it('talks to the local relay, and sends no AUTH for default', () => {
    const cmd = redisCliCommand(sock, 'default', []);
    expect(cmd.args).toEqual(['-s', sock]);
    expect(cmd.env).toBeUndefined();
  });

  it('picks another database user with AUTH, the password coming from the environment', () => {
    const saved = process.env.REDISCLI_AUTH;
    delete process.env.REDISCLI_AUTH;
    try {
      const cmd = redisCliCommand(sock, 'app', ['get', 'k']);
      expect(cmd.args).toEqual(['-s', sock, '--user', 'app', 'get', 'k']);
      expect(cmd.env).toEqual({ REDISCLI_AUTH: 'client-certificate' });
      process.env.REDISCLI_AUTH = 'passthrough-secret';
      expect(redisCliCommand(sock, 'app', []).env).toEqual({ REDISCLI_AUTH: 'passthrough-secret' });
    } finally {
      if (saved === undefined) delete process.env.REDISCLI_AUTH;
      else process.env.REDISCLI_AUTH = saved;
    }
  });
});

describe('parseHostPort', () => {
  it.each([
    ['drawbridge-orders.shop.svc:5432', { host: 'drawbridge-orders.shop.svc', port: 5432 }],
    ['127.0.0.1:6379', { host: '127.0.0.1', port: 6379 }],
    ['[::1]:5432', { host: '::1', port: 5432 }],
  ])('%s', (text, want) => expect(parseHostPort(text, 'x')).toEqual(want));

  it.each([
    'host',
    'host:0',
    'host:70000',
    ':5432',
    '::1:5432',
    // From a status whoever may write databases/status wrote: the host lands in URLs and conninfo.
    'evil.example/x?sslmode=disable&host=evil.example:5432',
    'user@evil.example:5432',
  ])('rejects %s', (text) => expect(() => parseHostPort(text, '--endpoint')).toThrow(/is not host:port/));
});

describe('resolveEndpoint', () => {
  const kc = new KubeConfig();
  const db = (endpoint?: string) =>
    Database.parse({
      apiVersion: 'drawbridge.dev/v1alpha1',
      kind: 'Database',
      metadata: { name: 'orders', namespace: 'shop' },
      spec: { protocol: 'postgres', uri: 'postgres://db:5432', auth: { type: 'passthrough' } },
      ...(endpoint ? { status: { endpoint } } : {}),
    });

  it("verifies the agent of this Database, whatever its status says (another Database's agent there fails)", async () => {
    // Whoever may write databases/status in shop points it at a Database in another namespace.
    const spoofed = db('drawbridge-payments.bank.svc:5432');
    const e = await resolveEndpoint(kc, spoofed, { endpoint: '127.0.0.1:40123' });
    expect(e).toMatchObject({ host: '127.0.0.1', port: 40123, serverName: 'drawbridge-orders.shop.svc' });
    expect((await resolveEndpoint(kc, db(), { endpoint: '10.0.0.9:5432' })).serverName).toBe(
      'drawbridge-orders.shop.svc',
    );
    const named = await resolveEndpoint(kc, spoofed, {
      endpoint: '127.0.0.1:1',
      tlsServerName: 'agent.example',
    });
    expect(named.serverName).toBe('agent.example');
  });
});

describe('settingsOf (kubectl db env --direct, config)', () => {
  it("names the Database's own agent, whatever host its status says", () => {
    const db = Database.parse({
      apiVersion: 'drawbridge.dev/v1alpha1',
      kind: 'Database',
      metadata: { name: 'orders', namespace: 'shop' },
      spec: { protocol: 'postgres', uri: 'postgres://db:5432/orders', auth: { type: 'passthrough' } },
      status: { endpoint: 'drawbridge-payments.bank.svc:5433' },
    });
    const login = {
      ...files,
      record: { dbUser: 'app' },
      expiresAt: new Date(0),
    } as unknown as StoredLogin;
    const direct = settingsOf(db, login).direct!;
    expect(direct).toMatchObject({ host: 'drawbridge-orders.shop.svc', port: 5433 });
    expect(direct.url).toMatch(
      /^postgres:\/\/app@drawbridge-orders\.shop\.svc:5433\/orders\?sslmode=verify-full&/,
    );
  });

  it('env refuses a value a terminal would obey (a database name in spec.uri), naming it escaped', () => {
    const db = (uri: string) =>
      Database.parse({
        apiVersion: 'drawbridge.dev/v1alpha1',
        kind: 'Database',
        metadata: { name: 'orders', namespace: 'shop' },
        spec: { protocol: 'postgres', uri, auth: { type: 'passthrough' } },
      });
    const login = { ...files, record: { dbUser: 'app' }, expiresAt: new Date(0) } as unknown as StoredLogin;
    // ESC [2J (clear the screen), a C1 CSI, a right-to-left override, as spec.uri's percent escapes.
    const hostile = settingsOf(db('postgres://db:5432/orders%1b%5b2J%c2%9b31m%e2%80%ae'), login);
    expect(() => envLines(hostile, false)).toThrow(
      'PGDATABASE of shop/orders would hold control or format characters, which a terminal obeys or hides: orders\\x1b[2J\\x9b31m\\u202e',
    );
    expect(envLines(settingsOf(db('postgres://db:5432/orders'), login), false)).toContain(
      "export PGDATABASE='orders'",
    );
  });
});
