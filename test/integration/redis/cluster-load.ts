// Load for the suites that change a cluster under clients: keys in chosen slots, and client loops
// whose acknowledged writes can be checked afterwards.
import type { Redis } from 'ioredis';
import { keySlot } from '../../../src/engines/redis/cluster/key-slot.js';

/** Key names (via hash tags) landing in each of `slots`, `perSlot` per slot. */
export function keysInSlots(slots: number[], perSlot: number): string[] {
  const want = new Set(slots);
  const tags = new Map<number, string>();
  for (let i = 0; tags.size < want.size; i++) {
    const slot = keySlot(Buffer.from(`t${i}`));
    if (want.has(slot) && !tags.has(slot)) tags.set(slot, `t${i}`);
  }
  return [...tags.values()].flatMap((t) => Array.from({ length: perSlot }, (_, j) => `{${t}}:${j}`));
}

export interface Load {
  acked: Map<string, string>;
  errors: string[];
  ops: number;
  stop(): Promise<void>;
}

/**
 * Each client runs `op` in a loop on the keys `keyOf(client, n)` gives it, one command in flight each;
 * keys of different clients never overlap, so the last acknowledged value of a key is well defined.
 */
export function runLoad(
  clients: Redis[],
  keyOf: (client: number, n: number) => string,
  op: (c: Redis, key: string, value: string) => Promise<void>,
): Load {
  const load: Load = { acked: new Map(), errors: [], ops: 0, stop: async () => {} };
  let running = true;
  const loops = clients.map(async (c, w) => {
    for (let n = 0; running; n++) {
      const key = keyOf(w, n);
      const value = `w${w}-${n}`;
      try {
        await op(c, key, value);
        load.acked.set(key, value);
        load.ops++;
      } catch (err) {
        load.errors.push(`${key}: ${(err as Error).message}`);
        // A client whose connection died rejects at once: yield, or this loop starves the event loop.
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  });
  load.stop = async () => {
    running = false;
    await Promise.all(loops);
  };
  return load;
}
