// What the agent writes to one client stays bounded whatever the client does:
// - replies and pushes: once the client socket is over its high-water mark, the backend is not read
//   (its replies and pub/sub messages wait in the kernel and in Redis) until it drains;
// - pushes answer no command, so a subscriber that stops reading would hold them forever: past
//   limits.outputBuffer.maxBytes waiting, or with nothing read for its stallTimeout, it is
//   disconnected (Redis's client-output-buffer-limit pubsub does the same to direct clients);
// - agent-made replies (NOPERM, NOAUTH) are not flow-controlled by the backend: once maxBytes of
//   output wait, the client is not read either, so a flood of refused commands cannot pile up replies.
import type { TLSSocket } from 'node:tls';
import { DrawbridgeError } from '../../errors.js';
import type { AgentRuntime } from '../../agent/engine.js';
import type { ReplyQueue } from './reply-queue.js';
import type { Router } from './router.js';

export interface OutputOwner {
  readonly id: string;
  readonly client: TLSSocket;
  readonly replies: ReplyQueue;
  readonly agent: AgentRuntime;
  /** The session's router, once connected: paused while the client does not read. */
  readonly connected: Router | undefined;
  /** Reading the client may resume (the session checks its other reasons to keep it paused). */
  resumeClient(): void;
  terminate(err: DrawbridgeError): void;
}

export class ClientOutput {
  /** The backend is paused because the client is not reading. */
  private slow = false;
  /** Client reads are paused because maxBytes of output wait for it. */
  readsPaused = false;
  private stall: NodeJS.Timeout | undefined;
  private waitingAtStall = 0;
  private ended = false;

  constructor(private readonly s: OutputOwner) {
    s.client.on('drain', () => this.drained());
  }

  /** After a reply was queued: stop reading the backend while the client is congested. */
  replied(): void {
    if (!this.slow && this.s.replies.congested) {
      this.slow = true;
      this.s.connected?.pause();
    }
  }

  /** After a push was queued: the same, and the subscriber's limits. */
  pushed(): void {
    if (this.s.client.writableLength > this.s.agent.limits.outputMaxBytes) {
      return this.exceeded(`more than ${this.s.agent.limits.outputMaxBytes} bytes of output wait`);
    }
    if (this.slow || !this.s.replies.congested) return;
    this.slow = true;
    this.s.connected?.pause();
    this.armStall();
  }

  /** Pushes held back in the router count with those waiting in the socket. */
  held(bytes: number): void {
    if (this.s.client.writableLength + bytes > this.s.agent.limits.outputMaxBytes) {
      this.exceeded(`more than ${this.s.agent.limits.outputMaxBytes} bytes of output wait`);
    }
  }

  /** After a chunk from the client was handled: stop reading it while too much output waits. */
  read(): void {
    if (this.s.client.writableLength > this.s.agent.limits.outputMaxBytes) {
      this.readsPaused = true;
      this.s.client.pause();
    }
  }

  close(): void {
    clearTimeout(this.stall);
  }

  private drained(): void {
    clearTimeout(this.stall);
    this.stall = undefined;
    if (this.slow) {
      this.slow = false;
      this.s.connected?.resume();
    }
    if (this.readsPaused) {
      this.readsPaused = false;
      this.s.resumeClient();
    }
  }

  /** Checks, every stallTimeout while pushes are held back, that the client read something. */
  private armStall(): void {
    this.waitingAtStall = this.s.client.writableLength;
    this.stall = setTimeout(() => {
      if (!this.slow) return;
      if (this.s.client.writableLength < this.waitingAtStall) return this.armStall();
      this.exceeded(`nothing was read for ${this.s.agent.limits.outputStallMs} ms`);
    }, this.s.agent.limits.outputStallMs);
    this.stall.unref();
  }

  private exceeded(why: string): void {
    if (this.ended) return;
    this.ended = true;
    this.s.agent.limitExceeded('outputBuffer', {
      sessionId: this.s.id,
      waitingBytes: this.s.client.writableLength,
    });
    this.s.terminate(
      new DrawbridgeError(
        'CLIENT_TOO_SLOW',
        `the client is not reading its pub/sub messages: ${why} (limits.outputBuffer)`,
        'read messages as fast as they are published, or raise outputBuffer in spec.agent.limits',
      ),
    );
  }
}
