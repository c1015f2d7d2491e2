// One client connection to a cluster agent as exact frames, for the RESP3 suites (cluster-resp3 and
// hostile/cluster-tracking): commands out as a pipeline, every frame in — replies and pushes alike —
// in arrival order, as bytes, so a test sees which RESP type came when.
import type { TLSSocket } from 'node:tls';
import { expect } from 'vitest';
import { RespMap, decodeReply } from '../../../src/engines/redis/reply-parser.js';
import { FrameReader, pipeline } from '../hostile/resp.js';
import type { ClusterFixture, ClusterPerson } from './cluster-fixture.js';

export class Wire {
  private readonly frames: FrameReader;

  private constructor(readonly socket: TLSSocket) {
    this.frames = new FrameReader(socket);
  }

  /** A connection as `person`; with `hello`, HELLO 2|3 answered first (a map for 3). */
  static async open(f: ClusterFixture, person: ClusterPerson, hello?: 2 | 3): Promise<Wire> {
    const w = new Wire(await f.raw(person));
    if (hello) {
      const [reply] = await w.call(['HELLO', String(hello)]);
      expect(decodeReply(reply!)).toBeInstanceOf(hello === 3 ? RespMap : Array);
    }
    return w;
  }

  send(...commands: string[][]): void {
    this.socket.write(pipeline(commands));
  }

  /** The next `n` frames (replies and pushes alike), within `ms`. */
  async take(n: number, ms = 5000): Promise<Buffer[]> {
    return (await this.frames.next(n, ms)).map((f) => Buffer.from(f, 'latin1'));
  }

  /** Sends `commands` and returns the next frame for each. */
  async call(...commands: string[][]): Promise<Buffer[]> {
    this.send(...commands);
    return this.take(commands.length);
  }

  /** Sends PING and returns every frame before its PONG: what arrived unasked. */
  async drain(): Promise<string[]> {
    this.send(['PING']);
    const got: string[] = [];
    for (;;) {
      const [frame] = await this.take(1);
      if (String(frame) === '+PONG\r\n') return got;
      got.push(String(frame));
    }
  }

  close(): void {
    this.socket.destroy();
  }
}
