/** The live tails' bound (Logs and Events pages): the last MAX_LINES lines are kept, older ones dropped. */
export const MAX_LINES = 2000;

/** `old` followed by `batch`, keeping the last `max`; how many were dropped from the front. */
export function appendBounded<T>(
  old: readonly T[],
  batch: readonly T[],
  max: number = MAX_LINES,
): { lines: T[]; dropped: number } {
  const all = old.concat(batch);
  const dropped = Math.max(0, all.length - max);
  return { lines: dropped > 0 ? all.slice(dropped) : all, dropped };
}
