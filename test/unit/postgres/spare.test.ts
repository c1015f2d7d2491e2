// The spare backend connection: opened only when a login asks, handed to the next login for the same
// target, and closed when it ages out, when the server closes it, on a target change and at shutdown.
import type { Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { BackendTarget } from '../../../src/engines/postgres/backend.js';
import { SpareBackend } from '../../../src/engines/postgres/spare.js';

const target = (host: string): BackendTarget => ({ host, port: 5432, tls: undefined });

/** An opener that records what it opened; `fail` makes the next opens reject. */
function opener() {
  const opened: PassThrough[] = [];
  const state = { fail: false };
  const open = async (): Promise<Socket> => {
    if (state.fail) throw new Error('connection refused');
    const s = new PassThrough();
    opened.push(s);
    return s as unknown as Socket;
  };
  return { open, opened, state };
}

const settle = () => sleep(5);

describe('SpareBackend', () => {
  it('opens nothing until a login asks, then hands the spare to the next login', async () => {
    const o = opener();
    const spare = new SpareBackend(o.open);
    const a = target('a');
    await settle();
    expect(o.opened).toHaveLength(0);
    expect(spare.take(a)).toBeUndefined(); // the first login opens its own
    await settle();
    expect(o.opened).toHaveLength(1);
    const taken = spare.take(a);
    expect(taken).toBe(o.opened[0]);
    expect(taken!.destroyed).toBe(false);
    await settle();
    expect(o.opened).toHaveLength(2); // replaced behind the login that took it
    spare.close();
  });

  it('does not hand a spare opened for another target, and closes it', async () => {
    const o = opener();
    const spare = new SpareBackend(o.open);
    spare.take(target('a'));
    await settle();
    expect(spare.take(target('b'))).toBeUndefined();
    expect(o.opened[0]!.destroyed).toBe(true);
    spare.close();
  });

  it('drops a spare the server closed, or one that sent anything', async () => {
    const o = opener();
    const spare = new SpareBackend(o.open);
    const a = target('a');
    spare.take(a);
    await settle();
    o.opened[0]!.destroy();
    await settle();
    expect(spare.take(a)).toBeUndefined();
    await settle();
    o.opened[1]!.write('E'); // a server that speaks before the startup packet
    await settle();
    expect(o.opened[1]!.destroyed).toBe(true);
    expect(spare.take(a)).toBeUndefined();
    spare.close();
  });

  it('closes a spare nobody took within its maximum age, and opens no new one', async () => {
    const o = opener();
    const spare = new SpareBackend(o.open, 20);
    spare.take(target('a'));
    await settle();
    await sleep(40);
    expect(o.opened[0]!.destroyed).toBe(true);
    expect(o.opened).toHaveLength(1);
    spare.close();
  });

  it('keeps serving logins when the database is unreachable', async () => {
    const o = opener();
    o.state.fail = true;
    const spare = new SpareBackend(o.open);
    const a = target('a');
    expect(spare.take(a)).toBeUndefined();
    await settle();
    o.state.fail = false;
    expect(spare.take(a)).toBeUndefined();
    await settle();
    expect(spare.take(a)).toBe(o.opened[0]);
    spare.close();
  });

  it('closes the spare at shutdown and opens no more', async () => {
    const o = opener();
    const spare = new SpareBackend(o.open);
    spare.take(target('a'));
    await settle();
    spare.close();
    expect(o.opened[0]!.destroyed).toBe(true);
    expect(spare.take(target('a'))).toBeUndefined();
    await settle();
    expect(o.opened).toHaveLength(1);
  });
});
