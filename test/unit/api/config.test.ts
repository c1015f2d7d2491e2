import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/api/config.js';
import { backendAddress } from '../../../src/api/database.js';
import { parseDuration } from '../../../src/api/meta.js';

const agent = `apiVersion: drawbridge.dev/v1alpha1
kind: AgentConfig
metadata: { name: agent }
spec:
  listen: 127.0.0.1:5433
  database: orders
  tls: { certFile: a.crt, keyFile: a.key, clientCAFile: ca.crt }
`;
const database = `apiVersion: drawbridge.dev/v1alpha1
kind: Database
metadata: { name: orders, labels: { env: prod } }
spec:
  protocol: postgres
  uri: postgres://127.0.0.1:5432
  auth: { type: password, secretRef: { name: pg } }
`;
const role = `apiVersion: drawbridge.dev/v1alpha1
kind: AccessRole
metadata: { name: reader }
spec:
  allow: { databaseLabels: { env: prod }, databaseUsers: [reader], databaseNames: ['*'] }
`;
const userDoc = `apiVersion: drawbridge.dev/v1alpha1
kind: DatabaseUser
metadata: { name: alice }
spec:
  subjects: [{ kind: User, name: alice }]
  roles: [reader]
`;
const secret = `apiVersion: v1
kind: Secret
metadata: { name: pg }
stringData: { reader: s3cret }
`;

const stream = (...docs: string[]) => docs.join('---\n');

describe('parseConfig', () => {
  it('parses a full stream and applies defaults once', () => {
    const b = parseConfig(stream(agent, database, role, userDoc, secret), 'agent.yaml');
    expect(b.agent?.spec.audit.path).toBe('-');
    expect(b.databases[0]?.spec.tls.mode).toBe('verify-full');
    expect(b.roles[0]?.spec.options.maxSessionTTL).toBe('8h');
    expect(b.users[0]?.spec.roles).toEqual(['reader']);
    expect(b.secrets[0]?.stringData).toEqual({ reader: 's3cret' });
  });

  it.each([
    [
      'bad protocol',
      database.replace('protocol: postgres', 'protocol: mysql'),
      /agent\.yaml document 2 \(Database orders\) is invalid:\n {2}- spec\.protocol: /,
    ],
    [
      'scheme mismatch',
      database.replace('postgres://', 'redis://'),
      /spec\.uri: scheme "redis" does not match protocol "postgres": use postgres or postgresql:\/\//,
    ],
    [
      'password without secret',
      database.replace(', secretRef: { name: pg }', ''),
      /spec\.auth\.secretRef: auth type "password" needs auth\.secretRef/,
    ],
    [
      'bad duration',
      role + '  options: { maxSessionTTL: 8 hours }\n',
      /spec\.options\.maxSessionTTL: must be a duration such as "8h"/,
    ],
    [
      'bad name',
      database.replace('name: orders,', 'name: Orders,'),
      /metadata\.name: must be a lowercase DNS name/,
    ],
    ['unknown kind', 'kind: Pod\n', /document 2: unknown kind "Pod"; expected one of AgentConfig, Database/],
    ['yaml syntax', 'kind: [\n', /document 2: YAML syntax error/],
  ])('%s → error naming document, field and fix', (_n, doc, message) => {
    const docs = [agent, doc, role, userDoc];
    expect(() => parseConfig(stream(...docs), 'agent.yaml')).toThrow(message);
  });

  it('names a YAML syntax error by line and column, never quoting the line: it may be a password', () => {
    const secret = 'kind: Secret\nmetadata: {name: pw}\nstringData:\n  alice: "hunter2-LOGTEST" extra\n';
    const text = stream(agent, secret);
    const line = text.split('\n').findIndex((l) => l.includes('hunter2')) + 1;
    const err = (() => {
      try {
        parseConfig(text, 'agent.yaml');
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err?.message).toBe(
      `agent.yaml document 2: YAML syntax error at line ${line}, column 28: Unexpected scalar at node end`,
    );
  });

  it('names a DatabaseUser role that is missing', () => {
    expect(() => parseConfig(stream(agent, database, userDoc), 'a.yaml')).toThrow(
      /DatabaseUser alice names role "reader", which is not in the file/,
    );
  });

  it('names an AgentConfig database that is missing', () => {
    expect(() => parseConfig(stream(agent, role), 'a.yaml')).toThrow(/no Database document has that name/);
  });
});

describe('helpers', () => {
  it.each([
    ['8h', 28_800_000],
    ['1h30m', 5_400_000],
    ['90s', 90_000],
    ['250ms', 250],
  ])('parseDuration(%s)', (text, ms) => expect(parseDuration(text)).toBe(ms));

  it('backendAddress reads cluster mode, TLS and defaults', () => {
    expect(backendAddress({ protocol: 'redis', uri: 'rediss://cache.local?mode=cluster' })).toEqual({
      host: 'cache.local',
      port: 6379,
      tlsInUri: true,
      cluster: true,
    });
    expect(backendAddress({ protocol: 'postgres', uri: 'postgres://[::1]:6432/orders' })).toMatchObject({
      host: '::1',
      port: 6432,
      database: 'orders',
    });
  });

  it('backendAddress parses a URI once per protocol, read-only, and follows a changed spec.uri', () => {
    const first = backendAddress({ protocol: 'redis', uri: 'redis://a.local:7000/2' });
    expect(backendAddress({ protocol: 'redis', uri: 'redis://a.local:7000/2' })).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    expect(backendAddress({ protocol: 'redis', uri: 'redis://b.local:7001/3' })).toMatchObject({
      host: 'b.local',
      port: 7001,
      database: '3',
    });
    // Without a port the protocol's default: the same URI text read for another protocol differs.
    expect(backendAddress({ protocol: 'redis', uri: 'redis://a.local/2' }).port).toBe(6379);
    expect(backendAddress({ protocol: 'postgres', uri: 'redis://a.local/2' }).port).toBe(5432);
  });
});
