/** Edit distance, for "did you mean ...?" suggestions. */
export function levenshtein(a: string, b: string): number {
  if (a === b) return 0;
  const prev = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}

/** The candidate closest to `word`, if it is close enough to be a plausible typo. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDist = Infinity;
  const limit = Math.max(2, Math.floor(word.length / 3));
  const w = word.toLowerCase();
  for (const candidate of candidates) {
    const c = candidate.toLowerCase();
    // The distance is at least the difference in length: a candidate that cannot come within the
    // threshold (or beat the best so far) is not compared. So a hostile 200 KB key costs nothing
    // instead of 200 KB × every candidate (fuzzing found a second per message).
    if (Math.abs(c.length - w.length) > Math.min(limit, bestDist)) continue;
    const d = levenshtein(w, c);
    if (d < bestDist) {
      bestDist = d;
      best = candidate;
    }
  }
  return best !== undefined && bestDist <= limit ? best : undefined;
}
