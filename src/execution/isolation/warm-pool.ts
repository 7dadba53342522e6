import { CaxtonError, describeError, isCaxtonError } from '../../shared/errors.js';
import { backoffDelay } from '../../shared/backoff.js';
import type { PoolMember } from './pool-member.js';

export interface WarmPoolOptions<M extends PoolMember> {
  /** What a member is, for messages: 'worker thread' or 'process'. */
  label: string;
  /** The number of members taking jobs or starting (draining ones are not counted). */
  size: number;
  /** Jobs one member runs at once. */
  perMember: number;
  /** Jobs one member is given before it drains and is replaced (Infinity: never). */
  maxJobs: number;
  startTimeoutMs: number;
  create: () => M;
}

interface Waiter<M> {
  resolve(member: M): void;
  reject(error: unknown): void;
}

/** A started member: the jobs it runs now and the jobs it was given in all. */
interface Slot {
  load: number;
  given: number;
}

const BACKOFF_BASE_MS = 100;
const BACKOFF_MAX_MS = 5_000;
const CLOSE_WAIT_MS = 5_000;

export function closedError(): CaxtonError {
  return new CaxtonError('not_ready', 'the isolation pool is closed');
}

/**
 * Keeps `size` members started ahead of demand and hands jobs to them, up to `perMember` jobs
 * at once each, always to the least loaded one. Members are started in the background (never
 * on a job's path unless the pool is empty and nothing is starting). A member that stops taking
 * jobs (draining, killed, crashed) is replaced at once; a draining one finishes its jobs first.
 * Start failures (module fails to load, exit before ready, start timeout) and idle deaths are
 * retried with exponential backoff (100 ms doubling to 5 s), so a broken task module never
 * makes the pool spin; while no member is ready or starting after a start failure, jobs fail
 * fast with that failure instead of waiting for their deadline.
 */
export class WarmPool<M extends PoolMember> {
  readonly counts = { started: 0, crashed: 0, killed: 0, recycled: 0 };
  readonly #o: WarmPoolOptions<M>;
  /** Started members not yet gone, taking jobs or not. */
  readonly #live = new Map<M, Slot>();
  readonly #starting = new Set<M>();
  readonly #waiters = new Set<Waiter<M>>();
  #warmWaiters: Waiter<void>[] = [];
  #failures = 0;
  #backoff: NodeJS.Timeout | undefined;
  #lastStartError: CaxtonError | undefined;
  #closed = false;

  constructor(options: WarmPoolOptions<M>) {
    this.#o = options;
    this.#fill();
  }

  get closed(): boolean {
    return this.#closed;
  }

  get size(): number {
    return this.#o.size;
  }

  /** `ready`: members taking jobs with room for another; `busy`: jobs running. */
  sizes(): { ready: number; busy: number; starting: number; queued: number } {
    let ready = 0;
    let busy = 0;
    for (const [member, slot] of this.#live) {
      busy += slot.load;
      if (this.#takes(member, slot) && slot.load < this.#o.perMember) ready++;
    }
    return { ready, busy, starting: this.#starting.size, queued: this.#waiters.size };
  }

  /** Takes a place on the least loaded member, waiting (until `signal` aborts) when none has room. */
  acquire(signal: AbortSignal): Promise<M> {
    if (this.#closed) return Promise.reject(closedError());
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    const member = this.#pick();
    if (member) {
      this.#take(member);
      return Promise.resolve(member);
    }
    // Fork on the request path only when nothing is on its way; otherwise wait for it.
    if (this.#starting.size === 0) this.#fill();
    if (this.#lastStartError && this.#starting.size === 0 && this.#accepting() === 0)
      return Promise.reject(this.#lastStartError);
    return new Promise<M>((resolve, reject) => {
      const onAbort = (): void => {
        this.#waiters.delete(waiter);
        reject(signal.reason as Error);
      };
      const waiter: Waiter<M> = {
        resolve: (m) => {
          signal.removeEventListener('abort', onAbort);
          resolve(m);
        },
        reject: (e) => {
          signal.removeEventListener('abort', onAbort);
          reject(e as Error);
        },
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.#waiters.add(waiter);
    });
  }

  /** Gives a member's place back after its job settled. */
  release(member: M): void {
    const slot = this.#live.get(member);
    if (!slot) return; // gone already
    slot.load--;
    if (slot.load === 0) {
      member.setActive(false);
      // Its share of jobs given, it drained here: nothing it was given is still on its way to it.
      if (slot.given >= this.#o.maxJobs) member.drain();
    }
    if (!this.#takes(member, slot)) setImmediate(() => this.#fill());
    this.#dispatch();
  }

  /** Resolves once every member has started (see Isolation.warm). */
  warm(): Promise<void> {
    if (this.#closed) return Promise.reject(closedError());
    if (this.#isWarm()) return Promise.resolve();
    if (this.#lastStartError && this.#starting.size === 0) return Promise.reject(this.#lastStartError);
    return new Promise<void>((resolve, reject) => this.#warmWaiters.push({ resolve, reject }));
  }

  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      clearTimeout(this.#backoff);
      this.#backoff = undefined;
      this.#rejectJobWaiters(closedError());
      this.#rejectWarmWaiters(closedError());
    }
    const all = [...this.#live.keys(), ...this.#starting];
    for (const m of all) m.kill();
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, CLOSE_WAIT_MS);
      timer.unref();
    });
    await Promise.race([Promise.all(all.map((m) => m.gone)), bound]);
    clearTimeout(timer);
  }

  /** Whether the member takes jobs: alive, and not yet given its share. */
  #takes(member: M, slot: Slot): boolean {
    return member.fate === 'alive' && slot.given < this.#o.maxJobs;
  }

  #accepting(): number {
    let n = 0;
    for (const [member, slot] of this.#live) if (this.#takes(member, slot)) n++;
    return n;
  }

  #needed(): number {
    return this.#o.size - this.#accepting() - this.#starting.size;
  }

  #isWarm(): boolean {
    return this.#starting.size === 0 && this.#needed() <= 0;
  }

  #fill(): void {
    while (!this.#closed && this.#backoff === undefined && this.#needed() > 0) this.#spawn();
  }

  /**
   * The least loaded member taking jobs with room for one more. One still running a cancelled
   * job comes last: it is killed, with every job on it, if that job ignores its cancellation.
   */
  #pick(): M | undefined {
    let best: M | undefined;
    let bestScore = Number.POSITIVE_INFINITY;
    for (const [member, slot] of this.#live) {
      if (!this.#takes(member, slot) || slot.load >= this.#o.perMember) continue;
      const score = slot.load + (member.cancelling > 0 ? this.#o.perMember : 0);
      if (score < bestScore) {
        best = member;
        bestScore = score;
      }
    }
    return best;
  }

  #take(member: M): void {
    const slot = this.#live.get(member)!;
    slot.load++;
    slot.given++;
    if (slot.load === 1) member.setActive(true);
    if (slot.given >= this.#o.maxJobs) this.#fill(); // its replacement starts now
  }

  /** Hands places to waiting jobs while a member has room. */
  #dispatch(): void {
    for (const waiter of this.#waiters) {
      const member = this.#pick();
      if (!member) break;
      this.#waiters.delete(waiter);
      this.#take(member);
      waiter.resolve(member);
    }
  }

  #spawn(): void {
    let member: M;
    try {
      member = this.#o.create();
    } catch (e) {
      this.#startFailed(this.#startError(e));
      return;
    }
    this.counts.started++;
    this.#starting.add(member);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      const ms = this.#o.startTimeoutMs;
      timer = setTimeout(
        () =>
          reject(
            new CaxtonError('isolation_failure', `the ${this.#o.label} did not load the task module within ${ms} ms`),
          ),
        ms,
      );
      timer.unref();
    });
    Promise.race([member.ready, deadline]).then(
      () => {
        clearTimeout(timer);
        this.#starting.delete(member);
        if (this.#closed) {
          member.kill();
          return;
        }
        this.#failures = 0;
        this.#lastStartError = undefined;
        this.#live.set(member, { load: 0, given: 0 });
        member.setActive(false);
        void member.gone.then(() => this.#onGone(member));
        this.#dispatch();
        if (this.#warmWaiters.length > 0 && this.#isWarm()) {
          const waiters = this.#warmWaiters;
          this.#warmWaiters = [];
          for (const w of waiters) w.resolve();
        }
      },
      (e: unknown) => {
        clearTimeout(timer);
        this.#starting.delete(member);
        member.kill();
        if (!this.#closed) this.#startFailed(this.#startError(e));
      },
    );
  }

  #startError(e: unknown): CaxtonError {
    if (isCaxtonError(e)) return e;
    return new CaxtonError('isolation_failure', `could not start a ${this.#o.label}: ${describeError(e)}`, undefined, {
      cause: e,
    });
  }

  /** A started member is gone: count why, and start another (with backoff if it died idle). */
  #onGone(member: M): void {
    const slot = this.#live.get(member);
    this.#live.delete(member);
    if (this.#closed || !slot) return;
    if (member.fate === 'spent') this.counts.recycled++;
    else if (member.fate === 'killed') this.counts.killed++;
    else this.counts.crashed++;
    if (member.fate === 'crashed' && slot.load === 0) {
      this.#failures++;
      this.#scheduleRetry();
    } else setImmediate(() => this.#fill());
  }

  #startFailed(error: CaxtonError): void {
    this.#failures++;
    this.#lastStartError = error;
    this.#rejectWarmWaiters(error);
    // Fail waiting jobs fast unless another member may still come up.
    if (this.#starting.size === 0) this.#rejectJobWaiters(error);
    this.#scheduleRetry();
  }

  #rejectJobWaiters(error: CaxtonError): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w.reject(error);
  }

  #rejectWarmWaiters(error: CaxtonError): void {
    const waiters = this.#warmWaiters;
    this.#warmWaiters = [];
    for (const w of waiters) w.reject(error);
  }

  #scheduleRetry(): void {
    if (this.#backoff !== undefined || this.#closed) return;
    const delay = backoffDelay(this.#failures - 1, { baseMs: BACKOFF_BASE_MS, maxMs: BACKOFF_MAX_MS });
    this.#backoff = setTimeout(() => {
      this.#backoff = undefined;
      this.#fill();
    }, delay);
    this.#backoff.unref();
  }
}
