/**
 * One direction of a member's channel (parent → member or member → parent), batched per turn of
 * the event loop. Each message is serialized when it is sent (so a message that cannot be cloned
 * still throws at once, naming itself), queued, and every message queued in one turn of the
 * event loop crosses as one IPC message or postMessage: an array of the serialized messages.
 *
 * Why: a run's messages are few (a `run`, a `result`, a host call or two), but they come in
 * bursts: the runs of a wave of requests start in one turn, and the model replies that end them
 * fire in one timers phase. Sent one by one, each paid a pipe write that wakes the other side,
 * that side's read and its message dispatch; those, not the serialization, were most of the CPU
 * a run cost on top of `context` isolation (ADR 0143).
 *
 * Like protocol.ts it has no runtime dependency beyond Node's own modules, so the worker entry
 * and process runner stay light.
 */
import { deserialize, serialize } from 'node:v8';

/** What crosses the channel: the serialized messages of one turn, in order. */
export type Batch = Uint8Array[];

export class Outbox<M> {
  #parts: Uint8Array[] = [];
  #then: (() => void)[] = [];
  #scheduled = false;

  /**
   * @param post sends one batch; `done` is to be called once it is on its way (process mode:
   *   the write completed), or may be ignored when nothing waits on it.
   */
  constructor(private readonly post: (batch: Batch, done: () => void) => void) {}

  /**
   * Queues `message` (serialized now: throws when it cannot be cloned) to cross with the others
   * of this turn; `then` runs once the batch holding it is on its way.
   */
  send(message: M, then?: () => void): void {
    this.#parts.push(serialize(message));
    if (then) this.#then.push(then);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Sends what is queued now (also run by itself at the end of the turn). */
  flush(): void {
    this.#scheduled = false;
    if (this.#parts.length === 0) return;
    const parts = this.#parts;
    const then = this.#then;
    this.#parts = [];
    this.#then = [];
    this.post(parts, () => {
      for (const f of then) f();
    });
  }
}

/**
 * The messages of a batch as the other side sent them, in order; a message that is not a batch
 * (or a part that cannot be read) yields nothing.
 */
export function* unpack(batch: unknown): Generator<unknown> {
  if (!Array.isArray(batch)) return;
  for (const part of batch) {
    if (!(part instanceof Uint8Array)) continue;
    let message: unknown;
    try {
      message = deserialize(part);
    } catch {
      continue;
    }
    yield message;
  }
}
