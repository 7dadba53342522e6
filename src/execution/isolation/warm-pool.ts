import { CaxtonError, describeError, isCaxtonError } from '../../shared/errors.js';
import { backoffDelay } from '../../shared/backoff.js';
import type { PoolMember } from './pool-member.js';

export interface WarmPoolOptions<M extends PoolMember> {
  /** What a member is, for messages: 'worker thread' or 'process'. */
  label: string;
  /** The number of members, busy, ready or starting. */
  size: number;
  startTimeoutMs: number;
  create: () => M;
}

interface Waiter<M> {
  resolve(member: M): void;
  reject(error: unknown): void;
}

const BACKOFF_BASE_MS = 100;
const BACKOFF_MAX_MS = 5_000;
const CLOSE_WAIT_MS = 5_000;

export function closedError(): CaxtonError {
  return new CaxtonError('not_ready', 'the isolation pool is closed');
}

/**
 * Keeps `size` members started ahead of demand and hands them to jobs. Members are started in
 * the background (never on a job's path unless the pool is empty and nothing is starting).
 * Start failures (module fails to load, exit before ready, start timeout) and idle deaths are
 * retried with exponential backoff (100 ms doubling to 5 s), so a broken task module never
 * makes the pool spin; while no member is ready or starting after a start failure, jobs fail
 * fast with that failure instead of waiting for their deadline.
 */
export class WarmPool<M extends PoolMember> {
  readonly counts = { started: 0, crashed: 0, killed: 0, recycled: 0 };
  readonly #o: WarmPoolOptions<M>;
  readonly #ready: M[] = [];
  readonly #busy = new Set<M>();
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

  sizes(): { ready: number; busy: number; starting: number; queued: number } {
    return {
      ready: this.#ready.length,
      busy: this.#busy.size,
      starting: this.#starting.size,
      queued: this.#waiters.size,
    };
  }

  /** Takes a ready member, waiting (until `signal` aborts) when none is. */
  acquire(signal: AbortSignal): Promise<M> {
    if (this.#closed) return Promise.reject(closedError());
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    for (let member = this.#ready.shift(); member; member = this.#ready.shift()) {
      if (member.fate === 'alive') {
        this.#take(member);
        return Promise.resolve(member);
      }
      this.#idleDeath(); // died while idle and not yet reported through `gone`
    }
    // Fork on the request path only when nothing is on its way; otherwise wait for it.
    if (this.#starting.size === 0) this.#fill();
    if (this.#lastStartError && this.#starting.size === 0) return Promise.reject(this.#lastStartError);
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

  /** Gives a member back after its job settled; dead, killed or spent members are replaced. */
  release(member: M): void {
    this.#busy.delete(member);
    if (member.fate === 'crashed') this.counts.crashed++;
    else if (member.fate === 'killed') this.counts.killed++;
    else if (member.fate === 'spent') this.counts.recycled++;
    if (member.fate === 'alive' && !this.#closed) {
      this.#offer(member);
      return;
    }
    member.setActive(false);
    if (member.fate === 'alive') member.kill();
    setImmediate(() => this.#fill());
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
    const all = [...this.#ready, ...this.#busy, ...this.#starting];
    this.#ready.length = 0;
    for (const m of all) m.kill();
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, CLOSE_WAIT_MS);
      timer.unref();
    });
    await Promise.race([Promise.all(all.map((m) => m.gone)), bound]);
    clearTimeout(timer);
  }

  #needed(): number {
    return this.#o.size - this.#ready.length - this.#starting.size - this.#busy.size;
  }

  #isWarm(): boolean {
    return this.#starting.size === 0 && this.#needed() <= 0;
  }

  #fill(): void {
    while (!this.#closed && this.#backoff === undefined && this.#needed() > 0) this.#spawn();
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
        void member.gone.then(() => this.#onGone(member));
        this.#offer(member);
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

  #take(member: M): void {
    this.#busy.add(member);
    member.setActive(true);
  }

  #offer(member: M): void {
    const [waiter] = this.#waiters;
    if (waiter) {
      this.#waiters.delete(waiter);
      this.#take(member);
      waiter.resolve(member);
      return;
    }
    member.setActive(false);
    this.#ready.push(member);
    if (this.#warmWaiters.length > 0 && this.#isWarm()) {
      const waiters = this.#warmWaiters;
      this.#warmWaiters = [];
      for (const w of waiters) w.resolve();
    }
  }

  /** A started member died: if it was idle, drop it and start another (with backoff). */
  #onGone(member: M): void {
    const i = this.#ready.indexOf(member);
    if (this.#closed || i < 0) return; // busy members are accounted for in release()
    this.#ready.splice(i, 1);
    this.#idleDeath();
  }

  #idleDeath(): void {
    this.counts.crashed++;
    this.#failures++;
    this.#scheduleRetry();
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
