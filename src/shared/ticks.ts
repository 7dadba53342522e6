import { settledWithin } from './while-wanted.js';

/**
 * Periodic upkeep (a deadline sweep, a gauge refresh, retention) that never overlaps itself and
 * that `stop()` waits out. A bare `setInterval(() => void work())` leaves the last tick running
 * after its owner closed: its queries then race whatever comes next on the same tables (a schema
 * dropped, a database closed), and a slow tick is started again before it ends.
 */
export class Ticks {
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #running = new Set<Promise<void>>();
  #stopped = false;

  /**
   * Runs `work` every `ms` (the timer does not hold the process open); a tick that comes while the
   * previous one of this `work` is still running is skipped. `work` handles its own failures: one
   * that escapes goes to `onError`.
   */
  every(ms: number, work: () => unknown, onError: (e: unknown) => void = () => {}): void {
    if (this.#stopped) return;
    let busy = false;
    const t = setInterval(() => {
      if (busy || this.#stopped) return;
      busy = true;
      const run: Promise<void> = Promise.resolve()
        .then(work)
        .then(
          () => {},
          (e: unknown) => onError(e),
        )
        .finally(() => {
          busy = false;
          this.#running.delete(run);
        });
      this.#running.add(run);
    }, ms);
    t.unref();
    this.#timers.push(t);
  }

  /**
   * Starts no more ticks and resolves once the ones running have ended, or after `waitAtMostMs`
   * (a tick stuck on a database that went away must not hold its owner's shutdown).
   */
  async stop(waitAtMostMs = 5000): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers) clearInterval(t);
    this.#timers.length = 0;
    if (this.#running.size > 0) await settledWithin(Promise.allSettled([...this.#running]), waitAtMostMs);
  }
}
