// The routing shortcut (CommandRules.fixedKeys) against keyPositions, over every command of a real
// Redis 7.0 `COMMAND INFO` reply: wherever the shortcut applies it must name exactly the keys the
// full key-spec search finds, whatever the arguments say.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { keyPositions, parseCommandReply } from '../../../src/engines/redis/cluster/command-rules.js';
import { decodeReply } from '../../../src/engines/redis/reply-parser.js';

const table = parseCommandReply(
  decodeReply(readFileSync(new URL('./cluster-command-info.resp', import.meta.url))),
);

/** `n` arguments, keywords of every spec included (LIMIT, STORE ...: what a keyword search would find). */
function argsOf(n: number, word: string): Buffer[] {
  return Array.from({ length: n }, (_, i) => Buffer.from(i === 0 ? 'cmd' : i % 2 ? word : String(i)));
}

describe('CommandRules.fixedKeys', () => {
  const all = [...table.values()];

  it('is found for the plain key commands and not for those whose keys depend on the arguments', () => {
    expect(table.get('set')!.fixedKeys).toEqual({ positions: [1], minArgs: 2 });
    expect(table.get('blmove')!.fixedKeys).toEqual({ positions: [1, 2], minArgs: 3 });
    expect(table.get('memory|usage')!.fixedKeys).toEqual({ positions: [2], minArgs: 3 });
    expect(table.get('ping')!.fixedKeys).toEqual({ positions: [], minArgs: 0 });
    for (const name of ['mget', 'mset', 'del', 'eval', 'xread', 'zunionstore', 'blpop', 'georadius']) {
      expect(table.get(name)!.fixedKeys, name).toBeUndefined();
    }
  });

  it('names the keys keyPositions finds, for every argument count it covers', () => {
    let checked = 0;
    for (const rules of all) {
      const fixed = rules.fixedKeys;
      if (!fixed) continue;
      for (let n = fixed.minArgs; n < fixed.minArgs + 6; n++) {
        for (const word of ['1', 'store', 'streams', 'keys']) {
          expect(keyPositions(rules, argsOf(n, word)), `${rules.name} with ${n} arguments`).toEqual(
            fixed.positions,
          );
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(500);
  });
});
