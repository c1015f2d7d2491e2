// How the cluster routes each command, learned from the backend's own `COMMAND` reply rather than a
// hand-kept table: key positions come from Redis 7 key specs (or the legacy first/last/step), and
// fan-out and merging come from the command tips Redis publishes for exactly this purpose
// (`request_policy:all_shards`, `response_policy:agg_sum`, ...). A newer Redis with new commands is
// routed correctly without an agent release.
import { runsCode } from '../../../authz/commands.js';
import { RespError, type RespValue } from '../reply-parser.js';

export type BeginSearch =
  | { type: 'index'; pos: number }
  | { type: 'keyword'; keyword: string; startFrom: number }
  | { type: 'unknown' };

export type FindKeys =
  | { type: 'range'; lastKey: number; keyStep: number; limit: number }
  | { type: 'keynum'; keyNumIdx: number; firstKey: number; keyStep: number }
  | { type: 'unknown' };

export interface KeySpec {
  begin: BeginSearch;
  find: FindKeys;
  /** Shard channels (SSUBSCRIBE, SPUBLISH): hashed like keys, but not keys. */
  notKey: boolean;
}

export type RequestPolicy = 'all_nodes' | 'all_shards' | 'multi_shard' | 'special';
export type ResponsePolicy =
  | 'one_succeeded'
  | 'all_succeeded'
  | 'agg_logical_and'
  | 'agg_logical_or'
  | 'agg_min'
  | 'agg_max'
  | 'agg_sum'
  | 'special';

export interface CommandRules {
  /** Lower-case; `parent|sub` for subcommands. */
  name: string;
  arity: number;
  flags: ReadonlySet<string>;
  specs: KeySpec[];
  /** Pre-7 servers: first key, last key (negative: from the end) and step; 0 = no keys. */
  legacy: { first: number; last: number; step: number };
  /** Some keys hide where no spec can find them (SORT ... STORE, MIGRATE ... KEYS): ask `COMMAND GETKEYS`. */
  needsGetKeys: boolean;
  requestPolicy?: RequestPolicy;
  responsePolicy?: ResponsePolicy;
  /** Runs a script or function (EVAL, FCALL, a module's @scripting command): its errors are its own. */
  runsCode: boolean;
  /**
   * keyPositions' answer when no argument can change it (GET, SET, HSET ...: keys at fixed indexes),
   * for commands of at least `minArgs` arguments: routing them allocates and searches nothing.
   */
  fixedKeys?: { positions: readonly number[]; minArgs: number };
  /** plainKind's answer (plain.ts), kept here on first use: no lookup per command. */
  plain?: number;
}

function str(v: RespValue | undefined): string {
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('latin1');
  return '';
}

function num(v: RespValue | undefined): number {
  return typeof v === 'number' ? v : Number(str(v));
}

function fields(v: RespValue | undefined): Map<string, RespValue> {
  const m = new Map<string, RespValue>();
  if (Array.isArray(v)) for (let i = 0; i + 1 < v.length; i += 2) m.set(str(v[i]), v[i + 1]!);
  return m;
}

function parseSpec(raw: RespValue): { spec: KeySpec; incomplete: boolean } {
  const f = fields(raw);
  const flags = Array.isArray(f.get('flags')) ? (f.get('flags') as RespValue[]).map(str) : [];
  const bs = fields(f.get('begin_search'));
  const bsSpec = fields(bs.get('spec'));
  const fk = fields(f.get('find_keys'));
  const fkSpec = fields(fk.get('spec'));
  let begin: BeginSearch = { type: 'unknown' };
  if (str(bs.get('type')) === 'index') begin = { type: 'index', pos: num(bsSpec.get('index')) };
  else if (str(bs.get('type')) === 'keyword') {
    begin = {
      type: 'keyword',
      keyword: str(bsSpec.get('keyword')).toLowerCase(),
      startFrom: num(bsSpec.get('startfrom')),
    };
  }
  let find: FindKeys = { type: 'unknown' };
  if (str(fk.get('type')) === 'range') {
    find = {
      type: 'range',
      lastKey: num(fkSpec.get('lastkey')),
      keyStep: num(fkSpec.get('keystep')),
      limit: num(fkSpec.get('limit')),
    };
  } else if (str(fk.get('type')) === 'keynum') {
    find = {
      type: 'keynum',
      keyNumIdx: num(fkSpec.get('keynumidx')),
      firstKey: num(fkSpec.get('firstkey')),
      keyStep: num(fkSpec.get('keystep')),
    };
  }
  const incomplete = flags.includes('incomplete') || begin.type === 'unknown' || find.type === 'unknown';
  return { spec: { begin, find, notKey: flags.includes('not_key') }, incomplete };
}

/** One `COMMAND` / `COMMAND INFO` entry (and its subcommands) into `out`. */
function addEntry(entry: RespValue, out: Map<string, CommandRules>): void {
  if (!Array.isArray(entry) || entry.length < 6) return;
  const name = str(entry[0]).toLowerCase();
  const flags = new Set(Array.isArray(entry[2]) ? entry[2].map(str) : []);
  const tips = Array.isArray(entry[7]) ? entry[7].map(str) : [];
  const parsed = Array.isArray(entry[8]) ? entry[8].map(parseSpec) : [];
  const tip = (prefix: string) => tips.find((t) => t.startsWith(prefix))?.slice(prefix.length);
  const categories = Array.isArray(entry[6])
    ? entry[6].map((c) => str(c).replace(/^@/, '').toLowerCase())
    : [];
  const rules: CommandRules = {
    name,
    arity: num(entry[1]),
    flags,
    specs: parsed.filter((p) => !p.incomplete).map((p) => p.spec),
    legacy: { first: num(entry[3]), last: num(entry[4]), step: num(entry[5]) },
    needsGetKeys: parsed.some((p) => p.incomplete) && flags.has('movablekeys'),
    runsCode: runsCode({ name, categories }),
  };
  rules.fixedKeys = fixedKeys(rules);
  const request = tip('request_policy:');
  const response = tip('response_policy:');
  if (request) rules.requestPolicy = request as RequestPolicy;
  if (response) rules.responsePolicy = response as ResponsePolicy;
  out.set(name, rules);
  if (Array.isArray(entry[9])) for (const sub of entry[9]) addEntry(sub, out);
}

/** Every command the backend knows, by rule name. */
export function parseCommandReply(reply: RespValue): Map<string, CommandRules> {
  if (reply instanceof RespError) throw new Error(reply.message);
  if (!Array.isArray(reply)) throw new Error('unexpected COMMAND reply shape');
  const out = new Map<string, CommandRules>();
  for (const entry of reply) addEntry(entry, out);
  return out;
}

function sameWord(arg: Buffer, lowerWord: string): boolean {
  if (arg.length !== lowerWord.length) return false;
  for (let i = 0; i < arg.length; i++) {
    const c = arg[i]!;
    if ((c >= 0x41 && c <= 0x5a ? c + 0x20 : c) !== lowerWord.charCodeAt(i)) return false;
  }
  return true;
}

/** Where a spec's keys start in `args`, or -1 when the spec does not apply (keyword absent). */
function beginIndex(begin: BeginSearch, args: readonly Buffer[]): number {
  if (begin.type === 'index') return begin.pos;
  if (begin.type !== 'keyword') return -1;
  const argc = args.length;
  const forward = begin.startFrom > 0;
  const step = forward ? 1 : -1;
  for (let i = forward ? begin.startFrom : argc + begin.startFrom; i >= 1 && i < argc; i += step) {
    if (sameWord(args[i]!, begin.keyword)) return i + 1;
  }
  return -1;
}

/**
 * Key positions of a command whose specs (or legacy range) all start at an index and end a fixed
 * distance after it: found by keyPositions itself over arguments long enough to hold them all, so the
 * two cannot disagree (it reads only the argument count for such specs).
 */
function fixedKeys(rules: CommandRules): CommandRules['fixedKeys'] {
  let bound: number;
  if (rules.specs.length === 0) {
    const { first, last, step } = rules.legacy;
    if (first > 0 && step > 0 && last < 0) return undefined;
    bound = Math.max(0, last);
  } else {
    bound = 0;
    for (const { begin, find } of rules.specs) {
      if (begin.type !== 'index' || find.type !== 'range' || find.lastKey < 0) return undefined;
      bound = Math.max(bound, begin.pos + find.lastKey);
    }
  }
  const positions = keyPositions(rules, new Array<Buffer>(bound + 1));
  return { positions, minArgs: positions.length === 0 ? 0 : Math.max(...positions) + 1 };
}

/**
 * Positions in `args` (args[0] = command name) of every key (and shard channel) the command names,
 * in argument order per spec — Redis's own getKeysUsingKeySpecs, so the agent hashes exactly the
 * arguments the server will. Malformed commands yield what can be found; the server rejects them.
 */
export function keyPositions(rules: CommandRules, args: readonly Buffer[]): number[] {
  const argc = args.length;
  const out: number[] = [];
  if (rules.specs.length === 0) {
    const { first, last, step } = rules.legacy;
    if (first <= 0 || step <= 0) return out;
    const end = last < 0 ? argc + last : last;
    for (let i = first; i <= end && i < argc; i += step) out.push(i);
    return out;
  }
  for (const spec of rules.specs) {
    let first = beginIndex(spec.begin, args);
    if (first < 1 || first >= argc) continue;
    let last: number;
    let step: number;
    const fk = spec.find;
    if (fk.type === 'range') {
      step = fk.keyStep;
      if (fk.lastKey >= 0) last = first + fk.lastKey;
      else if (fk.limit <= 1) last = argc + fk.lastKey;
      else last = first + (Math.floor((argc - first) / fk.limit) + fk.lastKey);
    } else if (fk.type === 'keynum') {
      step = fk.keyStep;
      const at = first + fk.keyNumIdx;
      if (at >= argc) continue;
      const n = Number(args[at]!.toString('latin1'));
      if (!Number.isInteger(n) || n < 0) continue;
      first += fk.firstKey;
      last = first + (n - 1) * step;
    } else continue;
    if (step <= 0) continue;
    for (let i = first; i <= last && i < argc; i += step) out.push(i);
  }
  return out;
}
