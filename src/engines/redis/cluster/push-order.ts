// Pushes (pub/sub messages, tracking invalidations) after the replies they follow. A cluster session's
// replies complete out of order across nodes and wait in the session for the ones before them, while
// a push is written as soon as it is handed over; so a push could overtake the reply of a command sent
// before it — a message before its SUBSCRIBE's confirmation, an invalidation before the reply of the
// read it invalidates (the client would then cache the old value after dropping it). Here a push waits
// until every command dispatched before it has been answered. With no push waiting, a command costs
// two increments and a decrement, in whatever order the nodes answer. What waits here is not yet in
// the client's socket, so its size is reported (onHeld) for the session to hold it to
// limits.outputBuffer too: a RESP3 subscriber running BLPOP k 0 would otherwise keep every message
// meanwhile, without bound.

/**
 * Most groups of held pushes. Each answer visits every group, and a subscriber may interleave pushes
 * and commands behind one BLPOP k 0 for as long as limits.outputBuffer allows; past this many a new
 * push joins the last group, which then also waits for the commands sent since (later, never earlier).
 */
const MAX_GROUPS = 16;

/** Pushes that arrived after the same commands: out once `unanswered` of those are answered. */
interface Held {
  /** Commands numbered below this were sent before these pushes. */
  sentBefore: number;
  unanswered: number;
  frames: Buffer[];
}

export class PushOrder {
  private dispatched = 0;
  private unanswered = 0;
  /** Oldest first; each waits on as many commands as the one before it, or more. */
  private held: Held[] = [];
  private heldBytes = 0;
  /** Told the bytes waiting here after each push held. */
  onHeld: (bytes: number) => void = () => undefined;

  constructor(private readonly out: (frame: Buffer) => void) {}

  /** Commands sent, not answered yet. */
  get pending(): number {
    return this.unanswered;
  }

  /** A command entered the router: its number, for `answer`. */
  sent(): number {
    this.unanswered++;
    return this.dispatched++;
  }

  /** Command `n` was answered (its reply handed to the session): pushes waiting on it go out. */
  answer(n: number): void {
    this.unanswered--;
    if (this.held.length === 0) return;
    for (const h of this.held) if (n < h.sentBefore) h.unanswered--;
    while (this.held.length > 0 && this.held[0]!.unanswered === 0) {
      for (const frame of this.held.shift()!.frames) {
        this.heldBytes -= frame.length;
        this.out(frame);
      }
    }
  }

  /** Out now if every command sent so far is answered; else once they are. */
  push(frame: Buffer): void {
    if (this.unanswered === 0) return this.out(frame);
    const last = this.held.at(-1);
    if (last && (last.sentBefore === this.dispatched || this.held.length === MAX_GROUPS)) {
      last.sentBefore = this.dispatched;
      last.unanswered = this.unanswered;
      last.frames.push(frame);
    } else {
      this.held.push({ sentBefore: this.dispatched, unanswered: this.unanswered, frames: [frame] });
    }
    this.heldBytes += frame.length;
    this.onHeld(this.heldBytes);
  }
}
