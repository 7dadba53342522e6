/**
 * Following a durable run until it stops (ends, or waits for a person): each committed change is
 * heard at once (DurableRuns.watchRun), and the journal is read again every FOLLOW_POLL_MS for what
 * another node of a cluster did. One read at a time; changes heard meanwhile fold into the next.
 */
import type { DurableRuns, RunWithSteps } from '../execution/index.js';
import { STOPS } from './tasks.js';

export const FOLLOW_POLL_MS = 1_000;

/** Where a follower stops by default: the run ended, or waits for a person. */
export const stopped = (got: RunWithSteps): boolean => STOPS.has(got.run.status);

/**
 * Yields the run each time it changed, the first read at once; returns after yielding one where
 * `stop` holds, when it is gone, or when `signal` aborts.
 */
export async function* followRun(
  runs: DurableRuns,
  id: string,
  signal: AbortSignal | undefined,
  stop: (got: RunWithSteps) => boolean = stopped,
): AsyncGenerator<RunWithSteps, void, undefined> {
  let pending = true;
  let wake: (() => void) | undefined;
  const poke = (): void => {
    pending = true;
    wake?.();
  };
  const unwatch = runs.watchRun(id, poke);
  const poll = setInterval(poke, FOLLOW_POLL_MS);
  poll.unref();
  signal?.addEventListener('abort', poke);
  const aborted = (): boolean => signal?.aborted === true;
  try {
    while (!aborted()) {
      if (!pending) await new Promise<void>((r) => (wake = r));
      wake = undefined;
      if (aborted()) return;
      pending = false;
      const got = await runs.journal.get(id);
      if (got === undefined) return;
      yield got;
      if (stop(got)) return;
    }
  } finally {
    unwatch();
    clearInterval(poll);
    signal?.removeEventListener('abort', poke);
  }
}
