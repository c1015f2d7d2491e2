// The shard-channel bookkeeping of cluster/pubsub.ts, in one pass over a command's names: an
// SSUBSCRIBE of N channels of one slot (hash tags) is grouped in O(N) (copying the group per name made
// it O(N²): seconds of a worker for 100,000 names), and its confirmations are counted without copying
// the session's subscriptions per command.

/** `names` grouped by `keyOf` (names it gives undefined are left out), each group in order. */
export function groupBy<K>(names: Buffer[], keyOf: (name: Buffer) => K | undefined): Map<K, Buffer[]> {
  const groups = new Map<K, Buffer[]>();
  for (const n of names) {
    const key = keyOf(n);
    if (key === undefined) continue;
    const group = groups.get(key);
    if (group) group.push(n);
    else groups.set(key, [n]);
  }
  return groups;
}

/**
 * The count each SSUBSCRIBE confirmation carries, as one server counts: the session's shard channels
 * (`held`) so far, with those of `names` new to it.
 */
export function shardCounts(names: Buffer[], held: ReadonlyMap<string, unknown>): number[] {
  const fresh = new Set<string>();
  return names.map((n) => {
    const key = n.toString('latin1');
    if (!held.has(key)) fresh.add(key);
    return held.size + fresh.size;
  });
}
