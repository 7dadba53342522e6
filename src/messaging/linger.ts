/**
 * A bounded linger for batches (like Kafka's `linger.ms` or PostgreSQL's `commit_delay`): whether
 * a small batch about to start should wait, up to `boundMs`, for more work to join it.
 *
 * Why: a node's group commit, and the reads of the deliveries a fetch brings, cost per batch
 * (a transaction, round trips, a socket write and a PostgreSQL wake-up) more than per item. One
 * node taking all of a closed loop's requests fills its batches while the previous ones run; three
 * nodes sharing the same requests each see a third of them, start their batches a third as full,
 * and spend several times the CPU per message (docs/adr/experiments.md, "Three nodes against one on one 2-core machine").
 *
 * Waiting only pays under load: there a batch held back costs little throughput (the CPU a
 * smaller batch would burn is what limits it) and its wait is small beside the queue every item
 * already waits in; at a low rate it would add its wait to every message. So the rule asks the
 * recent arrival rate (exponentially weighted over `TAU_MS`): at least `MIN_RATE` items a second.
 * A lone message, and the paced target (100 msg/s over three nodes: ~66 steps and ~33 reads a
 * second on each), never wait. Neither the transactions' busy share nor the event loop's
 * utilization told a saturated node apart on a 2-core machine shared with PostgreSQL and NATS (a
 * node waiting for a core counts as idle in both): measured in docs/benchmarks.md.
 */

/** Items a second from which a batch waits for more. */
const MIN_RATE = 125;
/** How far back the rate looks (ms): arrivals this old weigh e-fold less. */
const TAU_MS = 50;

export class Linger {
  /** The longest a batch waits for more (ms); 0: never. */
  readonly boundMs: number;
  readonly #now: () => number;
  /** Arrivals, each weighing exp(-age / TAU_MS), as of `#at`. */
  #weight = 0;
  #at = 0;

  constructor(boundMs: number, now: () => number = () => performance.now()) {
    this.boundMs = Math.max(0, boundMs || 0);
    this.#now = now;
  }

  now(): number {
    return this.#now();
  }

  /** `n` items arrived. */
  arrived(n = 1): void {
    if (this.boundMs === 0) return;
    const t = this.#now();
    this.#weight = this.#weight * Math.exp(-(t - this.#at) / TAU_MS) + n;
    this.#at = t;
  }

  /** The recent arrival rate, items a second. */
  rate(): number {
    return ((this.#weight * Math.exp(-(this.#now() - this.#at) / TAU_MS)) / TAU_MS) * 1000;
  }

  /**
   * How long (ms) a batch whose oldest item arrived at `since` should still wait for more: 0 when
   * lingering is off, the bound has passed, or items come slower than MIN_RATE.
   */
  waitFor(since: number): number {
    if (this.boundMs === 0) return 0;
    const left = since + this.boundMs - this.#now();
    if (left <= 0 || this.rate() < MIN_RATE) return 0;
    return left;
  }
}
