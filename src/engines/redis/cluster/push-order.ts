// Pushes (pub/sub messages, tracking invalidations) after the replies they follow. A cluster session's
// replies complete out of order across nodes and wait in the session for the ones before them, while
// a push is written as soon as it is handed over; so a push could overtake the reply of a command sent
// before it — a message before its SUBSCRIBE's confirmation, an invalidation before the reply of the
// read it invalidates (the client would then cache the old value after dropping it). Here a push waits
// until every command dispatched before it has been answered. In-order completion, the common case,
// costs a comparison and an increment per command. What waits here is not yet in the client's
// socket, so its size is reported (onHeld) for the session to hold it to limits.outputBuffer too: a
// RESP3 subscriber running BLPOP k 0 would otherwise keep every message meanwhile, without bound.
export class PushOrder {
  private dispatched = 0;
  /** Commands 0 .. answered-1 are all answered. */
  private answered = 0;
  /** Answered out of order, above `answered`. */
  private readonly early = new Set<number>();
  private held: [number, Buffer][] = [];
  private heldBytes = 0;
  /** Told the bytes waiting here after each push held. */
  onHeld: (bytes: number) => void = () => undefined;

  constructor(private readonly out: (frame: Buffer) => void) {}

  /** A command entered the router: its number, for `answer`. */
  sent(): number {
    return this.dispatched++;
  }

  /** Command `n` was answered (its reply handed to the session): pushes waiting on it go out. */
  answer(n: number): void {
    if (n !== this.answered) {
      this.early.add(n);
      return;
    }
    this.answered++;
    while (this.early.size > 0 && this.early.delete(this.answered)) this.answered++;
    if (this.held.length === 0) return;
    let i = 0;
    while (i < this.held.length && this.held[i]![0] <= this.answered) {
      const frame = this.held[i++]![1];
      this.heldBytes -= frame.length;
      this.out(frame);
    }
    if (i > 0) this.held = this.held.slice(i);
  }

  /** Out now if every command sent so far is answered; else once they are. */
  push(frame: Buffer): void {
    if (this.answered === this.dispatched) this.out(frame);
    else {
      this.held.push([this.dispatched, frame]);
      this.heldBytes += frame.length;
      this.onHeld(this.heldBytes);
    }
  }
}
