/**
 * Polls `probe` until it returns a value other than undefined/false, or the time is up (default
 * 10 s). The wait is for an event, never a bound on how fast it comes (bench/ measures that): under
 * CI's load, two cores importing hundreds of test files, a second or two is not enough.
 */
export async function waitUntil<T>(
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  opts: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<{ value: T; elapsedMs: number }> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 20;
  const start = performance.now();
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return { value: v, elapsedMs: performance.now() - start };
      last = v;
    } catch (e) {
      last = e;
    }
    if (performance.now() - start > timeoutMs) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${opts.what ?? 'condition'} (last: ${last instanceof Error ? last.message : String(last)})`,
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
