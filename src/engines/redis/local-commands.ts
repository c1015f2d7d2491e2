// Commands the agent answers or completes itself, because relaying them as they are would break the
// session's guarantees: AUTH/HELLO change who the session is, RESET logs the backend connection out,
// QUIT ends the session, and SYNC/PSYNC or CLIENT REPLY OFF would stop replies matching commands.
import { auditValue } from '../../agent/audit.js';
import { auditOverflow } from '../../agent/audit-hold.js';
import { auditArgs } from './audit.js';
import { parseAuth, parseHello } from './client-auth.js';
import { type RedisCommand, agentCommand } from './parser.js';
import { isErrorFrame } from './reply-parser.js';
import { RedisReplyError } from './router.js';
import { NOPROTO, OK, RESET, errorReply } from './serializer.js';
import type { RelayHooks } from './session-commands.js';
import type { RedisSession } from './session.js';

export type LocalHandler = (s: RedisSession, cmd: RedisCommand) => void;

const refuse = (s: RedisSession, err: RedisReplyError) =>
  s.commands.refuseInMulti(errorReply(err.prefix, err.message));

function auth(s: RedisSession, cmd: RedisCommand): void {
  const req = parseAuth(cmd);
  if (req instanceof RedisReplyError) return refuse(s, req);
  if (s.inMulti) return refuse(s, notInMulti('AUTH'));
  s.runExclusive(async () => {
    await s.login.auth(req);
    // Dropped (required mode, the log far behind): the session, now another user's, goes no further.
    if (!s.audit.emit('command', { command: 'auth', args: auditArgs(cmd, s.audit.max) }))
      return s.terminate(auditOverflow());
    s.replies.push(OK);
  });
}

/**
 * HELLO 2|3 goes to the backend without its AUTH part (the agent authenticates; see the router seam):
 * the session's own backend connection then speaks the protocol the client chose. A bare HELLO is
 * sent as HELLO of the current protocol, which answers the same.
 */
function hello(s: RedisSession, cmd: RedisCommand): void {
  const req = parseHello(cmd);
  if (req instanceof RedisReplyError) return refuse(s, req);
  if (s.inMulti) return refuse(s, new RedisReplyError('ERR', 'Command not allowed inside a transaction'));
  const protover = req.protover ?? s.protocol;
  if (protover !== 2 && protover !== 3) return void s.replies.push(NOPROTO);
  const args: (string | Buffer)[] = ['HELLO', String(protover)];
  if (req.setname) args.push('SETNAME', req.setname);
  const relay = agentCommand(args);
  // Commands pipelined after HELLO are checked in the protocol it asks for, unless the backend refuses it.
  const before = s.protocol;
  const hooks: RelayHooks = {
    protocol: protover,
    relayed: () => (s.protocol = protover),
    translate: (reply) => {
      if (isErrorFrame(reply)) s.protocol = before;
      return reply;
    },
  };
  const auth = req.auth;
  if (!auth) return s.commands.forward(relay, hooks);
  s.runExclusive(async () => {
    await s.login.auth(auth, protover);
    const args = [auditValue(auth.user, s.audit.max), '[redacted]'];
    if (!s.audit.emit('command', { command: 'auth', args })) return s.terminate(auditOverflow());
    s.commands.forward(relay, hooks);
  });
}

function quit(s: RedisSession): void {
  s.replies.push(OK);
  s.closeAfterReplies('client sent QUIT');
}

/**
 * RESET also returns the backend connection (and so the session) to RESP2 and ends tracking. Only a
 * RESET relayed does: one the roles refuse leaves the backend's transaction, protocol and tracking
 * as they were, so the agent's view of them stays too.
 */
function reset(s: RedisSession, cmd: RedisCommand): void {
  if (!s.connected) {
    forgetState(s);
    return void s.replies.push(RESET);
  }
  let relayed = false;
  s.commands.forward(cmd, {
    relayed: () => {
      relayed = true;
      forgetState(s);
    },
  });
  if (relayed) s.runExclusive(() => s.login.restore());
}

function forgetState(s: RedisSession): void {
  s.commands.endTransaction();
  s.commands.patterns.clear();
  s.protocol = 2;
  s.trackingUser = undefined;
}

function replication(s: RedisSession): void {
  refuse(
    s,
    new RedisReplyError('ERR', 'replication (SYNC/PSYNC) is not available through the drawbridge agent'),
  );
}

function clientReply(s: RedisSession, cmd: RedisCommand): void {
  const mode = cmd.args[2]?.toString('latin1').toLowerCase();
  if (mode !== 'off' && mode !== 'skip') return s.commands.forward(cmd);
  refuse(
    s,
    new RedisReplyError('ERR', 'CLIENT REPLY OFF|SKIP is not available through the drawbridge agent'),
  );
}

function notInMulti(what: string): RedisReplyError {
  return new RedisReplyError('ERR', `${what} inside MULTI is not available through the drawbridge agent`);
}

const handlers = new Map<string, LocalHandler>([
  ['auth', auth],
  ['hello', hello],
  ['quit', quit],
  ['reset', reset],
  ['sync', replication],
  ['psync', replication],
  ['client|reply', clientReply],
]);

export function localCommand(name: string): LocalHandler | undefined {
  return handlers.get(name);
}
