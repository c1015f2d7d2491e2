// Other DBs' keyspace notification channels (`__keyspace@0__:k`, `__keyevent@0__:set`) for a session
// on DB 3 of a standalone server: exact channels (SUBSCRIBE, PUBLISH) and Redis glob patterns
// (PSUBSCRIBE), checked against Redis's own matcher semantics, then the replies cut to DB 3.
import { describe, expect, it } from 'vitest';
import { ownChannels, ownClients, ownKeyspace } from '../../../src/engines/redis/db-replies.js';
import { OtherDbChannels, globMatches } from '../../../src/engines/redis/keyspace-channels.js';
import { encodeCommand, errorReply } from '../../../src/engines/redis/serializer.js';

const db3 = new OtherDbChannels(3, 'limit');
const b = (s: string) => Buffer.from(s, 'latin1');

describe('OtherDbChannels, DB 3', () => {
  it.each([
    ['__keyspace@0__:user:1', true],
    ['__keyevent@0__:set', true],
    ['__keyspace@13__:k', true],
    ['__keyspace@30__:k', true],
    ['__keyspace@3__:k', false], // this DB's
    ['__keyevent@3__:expired', false],
    ['__keyspace@03__:k', false], // Redis writes no leading zero: nobody publishes this
    ['__keyspace@0__', false],
    ['__keyspace@__:k', false],
    ['__keyspaces@0__:k', false],
    ['orders', false],
    ['_keyspace@0__:k', false],
  ])('channel %s: %s', (channel, other) => {
    expect(db3.isOther(b(channel))).toBe(other);
  });

  it.each([
    ['*', true],
    ['__key*', true],
    ['__keyspace@*', true],
    ['__keyspace@*__:*', true],
    ['__key?????@0__:*', true],
    ['__keyspace@[0-2]__:*', true],
    ['__keyspace@[^3]__:*', true],
    ['__keyspace@3?__:*', true], // 30..39
    ['__keyevent@1*', true],
    ['?*', true],
    ['[_]_keyspace@0__:x', true],
    ['\\_\\_keyspace@0__:x', true],
    ['__keyspace@[0-\xff]__:x', true], // a range past ASCII: read as anything
    ['__keyspace@3__:*', false],
    ['__keyevent@3__:*', false],
    ['__keyspace@[3]__:*', false],
    ['__keyspace@3[_]_:*', false],
    ['__keyspace@[^0-9]__:*', false],
    ['__keyspace@0', false], // the channel goes on after the DB: `__:` would be needed
    ['orders:*', false],
    ['app:[_]*', false],
    ['_[^_]*', false],
    ['__keyspace@[]__:*', false], // an empty class matches nothing
    ['__keyspace@0[', false], // an unclosed class
  ])('pattern %s: %s', (pattern, reaches) => {
    expect(db3.patternReaches(b(pattern))).toBe(reaches);
  });

  it('DB 0: another DB is any number but 0', () => {
    const db0 = new OtherDbChannels(0, 'limit');
    expect(db0.isOther(b('__keyspace@0__:k'))).toBe(false);
    expect(db0.isOther(b('__keyspace@1__:k'))).toBe(true);
    expect(db0.patternReaches(b('__keyspace@0__:*'))).toBe(false);
    expect(db0.patternReaches(b('__keyspace@0*'))).toBe(false); // 0 has no digit after it
    expect(db0.patternReaches(b('__keyspace@?__:*'))).toBe(true);
  });

  it('DB numbers have at most 10 digits, so a long pattern is read only as far as that', () => {
    expect(db3.isOther(b('__keyspace@2147483647__:k'))).toBe(true);
    expect(db3.isOther(b('__keyspace@21474836470__:k'))).toBe(false);
    expect(db3.patternReaches(b(`__keyspace@1${'[0-9]'.repeat(9)}__:*`))).toBe(true);
    expect(db3.patternReaches(b(`__keyspace@1${'[0-9]'.repeat(1_000_000)}__:*`))).toBe(false);
    expect(db3.patternReaches(b(`${'?*'.repeat(1_000_000)}`))).toBe(true);
    expect(db3.patternReaches(b(`app:${'?'.repeat(1_000_000)}`))).toBe(false);
  });
});

describe('globMatches, as Redis matches channels (checked against KEYS on Redis 7.0)', () => {
  it.each([
    ['*', '', true],
    ['a*', 'abc', true],
    ['a*c', 'abxc', true],
    ['a*c', 'abxcd', false],
    ['a?c', 'abc', true],
    ['a?c', 'ac', false],
    ['[abc]x', 'bx', true],
    ['[^abc]x', 'bx', false],
    ['[a-c]x', 'bx', true],
    ['[c-a]x', 'bx', true], // a reversed range is swapped
    ['[]x', ']x', false], // `]` right after `[` closes an empty class
    ['a\\*', 'a*', true],
    ['a\\*', 'ab', false],
    ['[\\]]', ']', true],
    ['ab[', 'abc', false], // an unclosed class ends with the pattern
    ['ab[^', 'abc', true],
    ['*a*b*', 'xxaxxbxx', true],
    ['A*', 'abc', false], // case matters
  ])('%s ~ %s: %s', (pattern, s, matches) => {
    expect(globMatches(b(pattern), b(s))).toBe(matches);
  });
});

describe('replies cut to DB 3', () => {
  const line = (id: number, db: number) =>
    `id=${id} addr=127.0.0.1:1 name=db=3 flags=N db=${db} sub=0 cmd=get\n`;
  it('CLIENT LIST keeps the clients on DB 3, in RESP2 and RESP3', () => {
    const text = line(1, 0) + line(2, 3) + line(3, 13);
    const bulk = b(`$${text.length}\r\n${text}\r\n`);
    expect(ownClients(bulk, 3).toString('latin1')).toBe(`$${line(2, 3).length}\r\n${line(2, 3)}\r\n`);
    const verbatim = b(`=${text.length + 4}\r\ntxt:${text}\r\n`);
    expect(ownClients(verbatim, 3).toString('latin1')).toBe(
      `=${line(2, 3).length + 4}\r\ntxt:${line(2, 3)}\r\n`,
    );
    const none = b(`$${line(1, 0).length}\r\n${line(1, 0)}\r\n`);
    expect(ownClients(none, 3).toString('latin1')).toBe('$0\r\n\r\n');
  });

  it("INFO keeps DB 3's keyspace lines, drops others' (Redis 8's per-DB key sizes too)", () => {
    const text = '# Keyspace\r\ndb0:keys=1\r\ndb3:keys=2\r\ndb30:keys=3\r\ndb0_distrib_strings_sizes:1=1\r\n';
    const out = ownKeyspace(b(`$${text.length}\r\n${text}\r\n`), 3).toString('latin1');
    expect(out).toBe('$24\r\n# Keyspace\r\ndb3:keys=2\r\n\r\n');
  });

  it("PUBSUB CHANNELS keeps what the user's ACL channel patterns match, without other DBs' notification channels", () => {
    const all = [b('*')];
    const reply = encodeCommand(['__keyspace@0__:secret', 'orders', '__keyspace@3__:mine', 'team2:x']);
    expect(ownChannels(reply, all, db3)).toEqual(encodeCommand(['orders', '__keyspace@3__:mine', 'team2:x']));
    expect(ownChannels(reply, [b('orders'), b('__keyspace@*')], db3)).toEqual(
      encodeCommand(['orders', '__keyspace@3__:mine']),
    );
    expect(ownChannels(reply, [b('team[0-9]:*')])).toEqual(encodeCommand(['team2:x'])); // shard channels
    expect(ownChannels(reply, [])).toEqual(encodeCommand([]));
    expect(ownChannels(encodeCommand(['orders']), all, db3)).toEqual(encodeCommand(['orders']));
  });

  it('an error reply passes as is', () => {
    const err = errorReply('NOPERM', 'no');
    expect(ownClients(err, 3)).toBe(err);
    expect(ownKeyspace(err, 3)).toBe(err);
    expect(ownChannels(err, [b('*')], db3)).toBe(err);
  });
});
