/**
 * Group commit for conversation steps (ADR 0046): the steps a node has waiting are taken in
 * groups, each group one PostgreSQL transaction, so that under load many conversations' steps
 * share one BEGIN, one round trip for their locks and rows, and one COMMIT with all their writes.
 * Why: each round trip costs this node a socket write and PostgreSQL a wake-up, and on a 2-core
 * machine those, not the statements, were the largest share of a message's CPU (docs/benchmarks.md).
 *
 * The rules that keep a group equivalent to its steps run one by one:
 *  - a group never holds two steps of one conversation (the second would not see the first's
 *    writes): it waits for the next group, and so does a step whose conversation is in a group now;
 *  - at most `concurrent` groups run at once; the steps arriving in one turn of the event loop
 *    when one is free start together at the end of that turn (a batch of messages, the
 *    deliveries one fetch brought: one group, not a step alone for each free slot first), and
 *    steps arriving while all are busy form the next groups, in arrival order (the steps that
 *    finish work, `first`, ahead), up to `maxSteps` each;
 *  - a node under load lingers (linger.ts): when steps arrived at 125 a second or more of late
 *    and fewer than `fill` steps wait, the next group waits for more, at most `lingerMs` after
 *    its oldest step arrived. Why: each group costs a transaction, and a node given a third of a
 *    closed loop's requests started its groups a third as full as one given them all
 *    (docs/benchmarks.md). A node at a low rate, and an idle node's lone step, never wait.
 *
 * What a group does with its steps (locks, rows, failure) is the runner's: PgMessageStore.
 */
import { Linger } from '../index.js';

/** One step waiting: the conversation it is about, and whether it finishes work already started. */
export interface GroupedStep {
  readonly key: string;
  /**
   * Goes into the next group before the steps that start new work (an acknowledgement before an
   * accept), unless a step of its conversation that arrived earlier still waits. Why: in arrival
   * order, a burst of accepted batches filled every group, and the deliveries already running
   * waited behind them while the backlog grew (a node accepted five messages for each it delivered).
   */
  readonly first?: boolean;
}

export interface StepGroupsOptions {
  /** The most steps in one group. */
  maxSteps: number;
  /** The most groups running at once. */
  concurrent: number;
  /** The longest (ms) a small group of a busy node waits for more steps (default 0: never). */
  lingerMs?: number;
  /** A group of this many steps starts without lingering (default a quarter of `maxSteps`). */
  fill?: number;
  /** The clock (ms) the linger reads (tests); default `performance.now`. */
  now?: () => number;
}

/** A waiting step, with when it arrived (the linger's bound counts from the oldest). */
interface Waiting<S> {
  s: S;
  at: number;
}

export class StepGroups<S extends GroupedStep> {
  readonly #run: (group: S[]) => Promise<void>;
  readonly #o: { maxSteps: number; concurrent: number; fill: number };
  readonly #linger: Linger;
  #waiting: Waiting<S>[] = [];
  /** Conversations with a step in a running group. */
  readonly #busy = new Set<string>();
  #running = 0;
  /** A pump is due at the end of this turn (setImmediate: after the turn's I/O callbacks and their microtasks). */
  #due = false;
  /** A lingering group's timer: it starts the group when the bound has passed. */
  #lingering: NodeJS.Timeout | undefined;

  /** `run` settles every step of its group itself and never rejects. */
  constructor(run: (group: S[]) => Promise<void>, opts: StepGroupsOptions) {
    this.#run = run;
    const maxSteps = Math.max(1, opts.maxSteps);
    this.#o = {
      maxSteps,
      concurrent: Math.max(1, opts.concurrent),
      fill: Math.min(maxSteps, Math.max(1, opts.fill ?? Math.ceil(maxSteps / 4))),
    };
    this.#linger = new Linger(opts.lingerMs ?? 0, opts.now);
  }

  /** Steps waiting for a group, and groups running (for tests and gauges). */
  get size(): { waiting: number; running: number } {
    return { waiting: this.#waiting.length, running: this.#running };
  }

  push(step: S): void {
    this.#linger.arrived();
    this.#waiting.push({ s: step, at: this.#linger.now() });
    if (this.#due || this.#running >= this.#o.concurrent) return;
    // A lingering group starts when its bound passes, or at the end of the turn that fills it.
    if (this.#lingering && this.#waiting.length < this.#o.fill) return;
    this.#due = true;
    setImmediate(() => {
      this.#due = false;
      this.#pump();
    });
  }

  /** How long the next group should wait for more steps (ms; 0: start it now). */
  #lingerFor(): number {
    if (this.#waiting.length >= this.#o.fill) return 0;
    return this.#linger.waitFor(this.#waiting[0]!.at);
  }

  /** `lingered`: the linger's bound has passed (its timer fired), so the group starts as it is. */
  #pump(lingered = false): void {
    while (this.#running < this.#o.concurrent && this.#waiting.length > 0) {
      if (!lingered && !this.#lingering) {
        const wait = this.#lingerFor();
        if (wait > 0) {
          this.#lingering = setTimeout(() => {
            this.#lingering = undefined;
            this.#pump(true);
          }, wait);
          return;
        }
      }
      if (this.#lingering) {
        if (!lingered && this.#waiting.length < this.#o.fill) return;
        clearTimeout(this.#lingering);
        this.#lingering = undefined;
      }
      const group = new Set<S>();
      const keys = new Set<string>();
      const take = (s: S): void => {
        if (group.size < this.#o.maxSteps && !keys.has(s.key) && !this.#busy.has(s.key)) {
          group.add(s);
          keys.add(s.key);
        }
      };
      // The steps that finish work first, each behind any earlier step of its conversation; then the rest, in arrival order.
      const seen = new Set<string>();
      for (const { s } of this.#waiting) {
        if (group.size >= this.#o.maxSteps) break;
        if (s.first && !seen.has(s.key)) take(s);
        seen.add(s.key);
      }
      for (const { s } of this.#waiting) {
        if (group.size >= this.#o.maxSteps) break;
        if (!group.has(s)) take(s);
      }
      // Every waiting step's conversation is in a running group: the next to end pumps again.
      if (group.size === 0) return;
      this.#waiting = this.#waiting.filter((w) => !group.has(w.s));
      for (const k of keys) this.#busy.add(k);
      this.#running++;
      void this.#run([...group]).finally(() => {
        this.#running--;
        for (const k of keys) this.#busy.delete(k);
        this.#pump();
      });
      // What is left (steps of conversations in a running group, or past a full group) starts as it is.
      lingered = true;
    }
  }
}
