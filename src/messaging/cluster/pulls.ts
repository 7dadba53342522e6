/**
 * The pulls of a delivery loop on a JetStream pull consumer (the cluster's bus and the
 * single-process JetStream queue): one fetch at a time, each delivery handed on as it arrives, and
 * a fetch the server forgot to end does not hold the loop.
 *
 * Why: a fetch ends when the server answers its expiry with "408 Request Timeout". nats-server
 * before 2.9.15 (Debian 12 ships 2.9.10) may drop a pull request that expires just as a message
 * arrives without that answer (nats-io/nats-server#3942); nats.js then ends the fetch only when two
 * idle heartbeats are missed, about a second later, and a loop that awaits the fetch's end delivered
 * nothing meanwhile: ~1 s stalls, one in a few hundred pulls, measured through nodes and with
 * nats.js alone (docs/adr/experiments.md). A fetch still open `graceMs` past its expiry is
 * overdue: the loop pulls again at once, and the overdue fetch is left to end on its own (never
 * stopped, so a delivery the server did send it is still taken). Until it ends, what it could still
 * bring is kept out of the next pulls (`owed`), so the loop never asks for more than its room.
 */
import type { Consumer, JsMsg } from '@nats-io/jetstream';
import { describeError } from '../../shared/errors.js';

export interface PullsOptions {
  /** How long the server keeps each pull open (default 1 s, the least nats.js allows). */
  expiresMs?: number;
  /** How long past its expiry a fetch may stay open before the loop pulls again without it (default 100 ms). */
  graceMs?: number;
  /** The server's idle heartbeat for each pull (nats.js's default: half of expiresMs, at least 500 ms). */
  idleHeartbeatMs?: number;
  /** Told when a fetch is overdue (how many the fetch asked for and had brought). */
  onOverdue?: (asked: number, got: number) => void;
  /**
   * Told when an overdue fetch ends and what was owed to it is room again: a loop waiting for room
   * (all of it owed to fetches on a link that went down) pulls again then.
   */
  onReleased?: () => void;
}

export class Pulls {
  readonly #consumer: Consumer;
  readonly #expiresMs: number;
  readonly #graceMs: number;
  readonly #opts: PullsOptions;
  readonly #open = new Set<{ stop(err?: Error): void }>();
  #owed = 0;

  constructor(consumer: Consumer, opts: PullsOptions = {}) {
    this.#consumer = consumer;
    this.#expiresMs = opts.expiresMs ?? 1000;
    this.#graceMs = opts.graceMs ?? 100;
    this.#opts = opts;
  }

  /** Deliveries that overdue fetches, still open, could yet bring: the loop's room is this much smaller. */
  get owed(): number {
    return this.#owed;
  }

  /**
   * One fetch of up to `max` deliveries, each handed to `take` as it arrives. Resolves when the
   * fetch ends or when it is overdue; rejects as the fetch does (a pull nats.js gave up on, NATS
   * away) unless it was overdue by then (the loop has moved on; its next pull meets the same).
   */
  async pull(max: number, take: (m: JsMsg) => void): Promise<void> {
    const batch = await this.#consumer.fetch({
      max_messages: max,
      expires: this.#expiresMs,
      ...(this.#opts.idleHeartbeatMs !== undefined && { idle_heartbeat: this.#opts.idleHeartbeatMs }),
    });
    this.#open.add(batch);
    let got = 0;
    let overdue = false;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        overdue = true;
        this.#owed += max - got;
        this.#opts.onOverdue?.(max, got);
        resolve();
      }, this.#expiresMs + this.#graceMs);
      timer.unref();
      const settle = (e?: unknown) => {
        clearTimeout(timer);
        this.#open.delete(batch);
        if (overdue) {
          this.#owed -= max - got;
          this.#opts.onReleased?.();
        } else if (e === undefined) resolve();
        else reject(e instanceof Error ? e : new Error(describeError(e)));
      };
      void (async () => {
        for await (const m of batch) {
          got++;
          if (overdue) this.#owed--;
          take(m);
        }
      })().then(() => settle(), settle);
    });
  }

  /** Stops every open fetch (the loop is stopping: a fetch on a dead link would end only when nats.js notices). */
  stop(): void {
    for (const b of this.#open) b.stop();
    this.#open.clear();
  }
}

/**
 * Whether a fetch ended because the client stopped hearing the server's idle heartbeats for its
 * pull (nats.js rejects a fetch so, rather than waiting out its expiry): the connection may be
 * fine, and a new pull is the remedy. A connection that is down fails the next pull another way.
 */
export function pullLapsed(e: unknown): boolean {
  return /heartbeats missed/i.test(describeError(e));
}
