// RESP fuzz across the login boundary, through a real in-process agent (TLS, session, login, access
// checks, audit) in front of a minimal RESP backend. Each case is a sequence of messages — AUTH and
// HELLO ... AUTH with good, refused and malformed credentials, ordinary and refused commands, MULTI /
// EXEC / RESET, and sometimes hostile bytes — encoded as RESP or inline and cut at random offsets.
// Properties: everything the agent sends back is well-formed RESP; no reply is the agent's untyped
// "internal error"; the backend sees no login but as an allowed user, and none for a case without an
// AUTH the roles allow (each case logs in as its own database user `cart-<n>`, so a login that lands
// late is still told apart); the token never reaches the audit log; the agent keeps serving.
import { type Server, type Socket, createServer } from 'node:net';
import { createSecureContext, connect as tlsConnect } from 'node:tls';
import fc from 'fast-check';
import { Agent } from '../../src/agent/agent.js';
import type { AuditEvent, AuditSink } from '../../src/agent/audit.js';
import { AgentState } from '../../src/agent/state.js';
import { AccessRole, DatabaseUser } from '../../src/api/access.js';
import { Database } from '../../src/api/database.js';
import { RequestParser } from '../../src/engines/redis/parser.js';
import { ReplyFramer, RespError, RespMap, decodeReply } from '../../src/engines/redis/reply-parser.js';
import { encodeCommand, encodeValue } from '../../src/engines/redis/serializer.js';
import { createLogger } from '../../src/log.js';
import { agentParts } from '../../src/wiring.js';
import { createCA, issueCertificate } from '../../src/pki/ca.js';
import { cut, hostileBytes } from './redis-harness.js';

const TOKEN = `${'a'.repeat(20)}.${'b'.repeat(30)}.${'c'.repeat(20)}`;
const API = { apiVersion: 'drawbridge.dev/v1alpha1' };

/** COMMAND entries (Redis 7 layout, categories at index 6) for what the fake backend knows. */
const CATALOG: [string, string[]][] = [
  ['get', ['@read']],
  ['set', ['@write']],
  ['ping', ['@connection']],
  ['echo', ['@connection']],
  ['select', ['@connection']],
  ['multi', ['@transaction']],
  ['exec', ['@transaction']],
  ['discard', ['@transaction']],
  ['reset', ['@connection']],
  ['auth', ['@connection']],
  ['hello', ['@connection']],
  ['quit', ['@connection']],
  ['eval', ['@scripting']],
  ['flushall', ['@write', '@dangerous']],
  ['swapdb', ['@write', '@dangerous']],
];

/** Database users `cart-0` ... : one per case, so the backend can tell which case a login is for. */
const CASE_USERS = 20_000;

/** A backend that answers like Redis would for these commands (MULTI queues, EXEC answers each). */
function fakeBackend(onLogin: (user: string) => void): Server {
  const catalog = encodeValue(CATALOG.map(([n, c]) => [Buffer.from(n), -1, [], 0, 0, 0, c, [], [], []]));
  const hello = encodeValue(
    ['server', 'redis', 'version', '7.0.0', 'proto', 2, 'mode', 'standalone'].map((v) =>
      typeof v === 'string' ? Buffer.from(v) : v,
    ),
  );
  // HELLO 3 switches the connection to RESP3: its reply is a map.
  const hello3 = encodeValue(
    new RespMap([
      [Buffer.from('server'), Buffer.from('redis')],
      [Buffer.from('proto'), 3],
    ]),
    3,
  );
  return createServer((socket: Socket) => {
    let queued = -1;
    const parser = new RequestParser((cmd) => {
      const name = cmd.name;
      if (name === 'auth') onLogin(cmd.args.length === 3 ? cmd.args[1]!.toString() : 'default');
      if (queued >= 0 && !['exec', 'discard', 'multi', 'reset'].includes(name)) {
        queued++;
        return void socket.write('+QUEUED\r\n');
      }
      if (name === 'exec')
        socket.write(
          queued < 0 ? '-ERR EXEC without MULTI\r\n' : `*${queued}\r\n${'+OK\r\n'.repeat(queued)}`,
        );
      else if (name === 'multi')
        socket.write(queued >= 0 ? '-ERR MULTI calls can not be nested\r\n' : '+OK\r\n');
      else if (name === 'command') socket.write(catalog);
      else if (name === 'hello') socket.write(cmd.args[1]?.toString() === '3' ? hello3 : hello);
      else if (name === 'reset') socket.write('+RESET\r\n');
      else if (name === 'ping') socket.write('+PONG\r\n');
      else if (name === 'get') socket.write('$-1\r\n');
      else socket.write('+OK\r\n');
      if (name === 'multi' && queued < 0) queued = 0;
      else if (name === 'exec' || name === 'discard' || name === 'reset') queued = -1;
    });
    socket.on('data', (d: Buffer) => {
      try {
        parser.feed(d);
      } catch {
        socket.destroy();
      }
    });
    socket.on('error', () => undefined);
  });
}

export interface LoginTarget {
  port: number;
  ca: string;
  /** Backend logins (AUTH) by database user, so far. */
  logins: Map<string, number>;
  audit: AuditEvent[];
  /** Cases played; case n logs in as `cart-<n mod CASE_USERS>`. */
  cases: number;
  /** Users of cases that held no allowed AUTH: the backend must never see them. */
  forbidden: Set<string>;
  stop(): Promise<void>;
}

export async function startLoginTarget(): Promise<LoginTarget> {
  const logins = new Map<string, number>();
  const backend = fakeBackend((user) => logins.set(user, (logins.get(user) ?? 0) + 1));
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  const backendPort = (backend.address() as { port: number }).port;
  const ca = await createCA({ commonName: 'fuzz CA' });
  const cert = await issueCertificate(ca, {
    commonName: 'agent',
    ipAddresses: ['127.0.0.1'],
    usage: 'server',
  });
  const audit: AuditEvent[] = [];
  const sink: AuditSink = { emit: (e) => void audit.push(e), close: async () => undefined };
  const agent = await Agent.create({
    parts: agentParts,
    state: new AgentState({
      database: Database.parse({
        ...API,
        kind: 'Database',
        metadata: { name: 'cache', labels: { env: 'prod' } },
        spec: {
          protocol: 'redis',
          uri: `redis://127.0.0.1:${backendPort}`,
          tls: { mode: 'disabled' },
          auth: { type: 'password', secretRef: { name: 'login' } },
        },
      }),
      roles: [
        AccessRole.parse({
          ...API,
          kind: 'AccessRole',
          metadata: { name: 'cart' },
          spec: {
            allow: { databaseLabels: { env: '*' }, databaseUsers: ['cart-*'] },
            deny: { redisCommands: ['@dangerous'] },
          },
        }),
      ],
      users: [
        DatabaseUser.parse({
          ...API,
          kind: 'DatabaseUser',
          metadata: { name: 'cart' },
          spec: { subjects: [{ kind: 'ServiceAccount', namespace: 'shop', name: 'cart' }], roles: ['cart'] },
        }),
      ],
      secrets: new Map([['login', caseUserPasswords()]]),
    }),
    serverTls: createSecureContext({ cert: cert.certPem, key: cert.keyPem, ca: ca.certPem }),
    audit: sink,
    log: createLogger('fuzz', 'silent'),
    tokenVerifier: {
      verify: async (t) => {
        if (t !== TOKEN) throw new Error('not a token this cluster issued');
        return { user: 'system:serviceaccount:shop:cart', groups: [], source: 'token' };
      },
    },
  });
  const { port } = await agent.listen('127.0.0.1', 0);
  return {
    port,
    ca: ca.certPem,
    logins,
    audit,
    cases: 0,
    forbidden: new Set(),
    async stop() {
      await agent.stop(0);
      await new Promise((r) => backend.close(r));
    },
  };
}

function caseUserPasswords(): Record<string, string> {
  const out: Record<string, string> = { default: 'default-pw', admin: 'admin-pw' };
  for (let i = 0; i < CASE_USERS; i++) out[`cart-${i}`] = `pw-${i}`;
  return out;
}

// `cart` in these messages becomes the case's own database user when a case is played.
const GOOD_AUTH = [
  ['AUTH', 'cart', TOKEN],
  ['HELLO', '2', 'AUTH', 'cart', TOKEN],
  ['HELLO', '3', 'AUTH', 'cart', TOKEN],
];
const messages: string[][] = [
  ...GOOD_AUTH,
  ['AUTH', 'admin', TOKEN], // a user the roles do not allow
  ['AUTH', TOKEN], // `default`: not allowed either
  ['AUTH', 'cart', 'hunter2'], // not a token
  ['AUTH', 'cart', `${TOKEN}x`], // a token the verifier rejects
  ['AUTH'],
  ['AUTH', 'a', 'b', 'c'],
  ['HELLO', '4', 'AUTH', 'cart', TOKEN], // NOPROTO: no login
  ['HELLO', '2', 'AUTH', 'cart'],
  ['HELLO', 'x'],
  ['PING'],
  ['GET', 'k'],
  ['SET', 'k', 'v'],
  ['MULTI'],
  ['EXEC'],
  ['DISCARD'],
  ['RESET'],
  ['SELECT', '0'],
  ['SELECT', '1'],
  ['SWAPDB', '0', '1'],
  ['EVAL', 'return 1', '0'],
  ['FLUSHALL'],
  ['CLIENT', 'REPLY', 'OFF'],
  ['NOSUCH', 'x'],
];
const isGoodAuth = (m: string[]) => GOOD_AUTH.some((g) => g.join(' ') === m.join(' '));

/** A case: messages (each RESP or inline), maybe hostile bytes at the end, and where TCP cuts it. */
export const loginCase = fc.record({
  messages: fc.array(fc.tuple(fc.constantFrom(...messages), fc.boolean()), { minLength: 1, maxLength: 10 }),
  tail: fc.option(hostileBytes, { nil: undefined }),
  offsets: fc.array(fc.nat(), { maxLength: 4 }),
});
export type LoginCase = typeof loginCase extends fc.Arbitrary<infer T> ? T : never;

/** Plays one case on a new connection and checks every property; rejects with what broke. */
export async function checkLoginCase(t: LoginTarget, c: LoginCase): Promise<void> {
  const user = `cart-${t.cases++ % CASE_USERS}`;
  const auditBefore = t.audit.length;
  const bytes = Buffer.concat([
    ...c.messages.map(([m, inline]) => {
      const args = m.map((a) => (a === 'cart' ? user : a));
      return inline ? Buffer.from(`${args.join(' ')}\r\n`) : encodeCommand(args);
    }),
    c.tail ?? Buffer.alloc(0),
  ]);
  if (!c.messages.some(([m]) => isGoodAuth(m))) t.forbidden.add(user);
  const received = await play(t, cut(bytes, c.offsets));
  const replies: unknown[] = [];
  const framer = new ReplyFramer((f) => replies.push(decodeReply(f)));
  framer.feed(received); // throws on anything that is not RESP
  for (const r of replies) {
    if (r instanceof RespError && /internal error/.test(r.message))
      throw new Error(`untyped error: ${r.message}`);
  }
  checkLogins(t);
  if (JSON.stringify(t.audit.slice(auditBefore)).includes(TOKEN))
    throw new Error('the token is in the audit log');
}

/** The backend saw logins only as allowed users (`cart-<n>`), and none for a case without an allowed AUTH. */
function checkLogins(t: LoginTarget): void {
  for (const user of t.logins.keys()) {
    if (!user.startsWith('cart-'))
      throw new Error(`the backend saw a login as "${user}", which no role allows`);
    if (t.forbidden.has(user))
      throw new Error(`the backend saw a login for a case without an allowed AUTH (${user})`);
  }
}

/** Writes the chunks, half-closes, and returns all the agent sent until it closed (at most 3 s). */
function play(t: LoginTarget, chunks: Buffer[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    const s = tlsConnect({ host: '127.0.0.1', port: t.port, ca: t.ca }, () => {
      for (const c of chunks) s.write(c);
      s.end();
    });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('the session neither answered nor closed within 3 s'));
    }, 3000);
    s.on('data', (d: Buffer) => got.push(d));
    s.on('error', () => undefined);
    s.once('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(got));
    });
  });
}

/** The property, for the unit test and bench/fuzz-redis.ts; the agent must serve a new session after. */
export async function fuzzLogin(params: fc.Parameters<[LoginCase]>): Promise<void> {
  const t = await startLoginTarget();
  try {
    await fc.assert(
      fc.asyncProperty(loginCase, (c) => checkLoginCase(t, c)),
      params,
    );
    await checkLoginCase(t, { messages: [[['PING'], false]], tail: undefined, offsets: [] });
  } finally {
    await t.stop();
  }
}
