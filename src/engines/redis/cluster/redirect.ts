// MOVED and ASK are hints, not orders. Their text is nothing a client cannot forge: a script returns
// `redis.error_reply('MOVED 0 evil:6379')` and the node sends exactly what it would for a real
// redirect. Following such an address would dial it and log in there with the database user's
// password or IAM token, and a patched slot table would send every session's commands after it.
// So, everywhere the agent follows a redirect (plain commands, transactions, SSUBSCRIBE):
//
//   reply to EVAL*/FCALL*/@scripting ────▶ the client's own error: passed on verbatim, not followed
//                                           (nor retried, for TRYAGAIN/CLUSTERDOWN/LOADING: sender.ts)
//   MOVED/ASK ─▶ target named by the shape ─▶ followed at once (resharding's fast path, as before)
//            └▶ otherwise: refresh from known nodes (asking the redirecting node first), re-check
//                 ├─ named now ──────────▶ followed
//                 └─ still not ──────────▶ refused: logged, counted, never registered or dialled
//
// The checks run only when a redirect arrives; a plain command costs nothing more.
import { RedisReplyError } from '../router.js';
import type { CommandRules } from './command-rules.js';
import { errorText } from '../reply-parser.js';
import { type NodeAddress, addressKey, parseAddress } from './shape.js';
import type { Topology } from './topology.js';

export interface Redirect {
  kind: 'moved' | 'ask';
  slot: number;
  address: NodeAddress;
}

export type RefusedReason = 'script' | 'unconfirmed';

/** What a redirect may reach: the topology, and where refusals are logged and counted. */
export interface RedirectContext {
  readonly topology: Topology;
  /** The backend's rules for a command: whether it runs a script or function. */
  rules(name: string): CommandRules | undefined;
  /** A redirect was not followed; `fields` go to the log line (addresses and slots only). */
  refusedRedirect(reason: RefusedReason, fields: Record<string, unknown>): void;
}

/** `-MOVED 3999 10.0.0.2:6379` / `-ASK ...` (or the same in a RESP3 blob error) → kind, slot and address. */
export function parseRedirect(frame: Buffer): Redirect | undefined {
  const parts = errorText(frame).split(' ');
  const kind = parts[0] === 'MOVED' ? 'moved' : parts[0] === 'ASK' ? 'ask' : undefined;
  const slot = Number(parts[1]);
  const address = parseAddress(parts[2] ?? '');
  return kind && Number.isInteger(slot) && slot >= 0 && address ? { kind, slot, address } : undefined;
}

/**
 * The name when `raw` (a RESP array command) runs a script or function (EVAL*, FCALL*, a module's
 * @scripting command such as TFCALL), whose errors say what it chose. Read only when an error
 * arrives. FUNCTION LOAD is not one: its library code cannot call commands, its errors start ERR.
 */
export function scriptCall(raw: Buffer, ctx: RedirectContext): string | undefined {
  const header = raw.indexOf(0x0a);
  if (header < 0 || raw[header + 1] !== 0x24) return undefined;
  const lenEnd = raw.indexOf(0x0d, header + 2);
  const len = Number(raw.toString('latin1', header + 2, lenEnd));
  if (!(len > 0 && len <= 64)) return undefined;
  const name = raw.toString('latin1', lenEnd + 2, lenEnd + 2 + len).toLowerCase();
  return ctx.rules(name)?.runsCode ? name : undefined;
}

/**
 * Where a MOVED/ASK from node `from` may be followed: its target once the cluster names it — at once
 * when the current shape does, else after a refresh — or undefined (refused: logged and counted).
 * A followed MOVED patches the slot table. `then` runs synchronously on the fast path.
 */
export function confirmRedirect(
  ctx: RedirectContext,
  r: Redirect,
  from: number,
  then: (node: number | undefined) => void,
): void {
  const topology = ctx.topology;
  const follow = (node: number | undefined): void => {
    if (node === undefined) {
      ctx.refusedRedirect('unconfirmed', {
        kind: r.kind,
        slot: r.slot,
        target: addressKey(r.address),
        from: topology.entry(from).key,
      });
    } else if (r.kind === 'moved') {
      topology.moved(r.slot, node);
    }
    then(node);
  };
  const named = topology.named(r.address);
  if (named !== undefined) {
    follow(named);
    return;
  }
  topology.confirm(r.address, from).then(follow, () => follow(undefined));
}

/** The client's answer when the cluster's own shape does not name where a node redirected it. */
export function unconfirmedError(r: Redirect): RedisReplyError {
  return new RedisReplyError(
    'TRYAGAIN',
    `the cluster redirected this command (${r.kind.toUpperCase()} ${r.slot}) to ${addressKey(r.address)}, ` +
      "which no known node's CLUSTER SHARDS/SLOTS names; the agent connects only to nodes the cluster confirms — retry once the cluster's topology settles",
  );
}
