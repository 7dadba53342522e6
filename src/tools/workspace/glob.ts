/**
 * Glob patterns (`*`, `?`, `[abc]`, `[!a-z]`, `{a,b}`, `**`) matched without regular expressions:
 * a pattern comes from the model, and a regex built from it (`*a*a*a*b`) can backtrack for ages.
 * Here a segment is matched in O(pattern × name) steps and `**` by a memoised walk over segments,
 * so the cost is bounded by the sizes, which are capped.
 */

const MAX_PATTERN = 1000;
const MAX_ALTERNATIVES = 256;

export class GlobError extends Error {}

/** `{a,b}` expanded (nested allowed); throws GlobError past MAX_ALTERNATIVES. */
export function expandBraces(pattern: string): string[] {
  let depth = 0;
  let start = -1;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (c === '{') {
      if (depth === 0) start = i;
      depth++;
    } else if (c === '}' && depth > 0) {
      depth--;
      if (depth === 0) {
        const body = pattern.slice(start + 1, i);
        const parts: string[] = [];
        let d = 0;
        let from = 0;
        for (let j = 0; j < body.length; j++) {
          const b = body[j];
          if (b === '\\') j++;
          else if (b === '{') d++;
          else if (b === '}') d--;
          else if (b === ',' && d === 0) {
            parts.push(body.slice(from, j));
            from = j + 1;
          }
        }
        parts.push(body.slice(from));
        if (parts.length === 1) continue; // `{x}` is literal
        const out: string[] = [];
        for (const p of parts) {
          for (const e of expandBraces(pattern.slice(0, start) + p + pattern.slice(i + 1))) {
            out.push(e);
            if (out.length > MAX_ALTERNATIVES)
              throw new GlobError(`the pattern expands to more than ${MAX_ALTERNATIVES} alternatives`);
          }
        }
        return out;
      }
    }
  }
  return [pattern];
}

/** One path segment against one pattern segment (no `/`): greedy with one backtrack point per star. */
export function matchSegment(pat: string, name: string): boolean {
  let p = 0;
  let n = 0;
  let starP = -1;
  let starN = 0;
  while (n < name.length) {
    if (p < pat.length) {
      const c = pat[p]!;
      if (c === '*') {
        starP = p++;
        starN = n;
        continue;
      }
      const len = matchOne(pat, p, name[n]!);
      if (len > 0) {
        p += len;
        n++;
        continue;
      }
    }
    if (starP < 0) return false;
    p = starP + 1;
    n = ++starN;
  }
  while (p < pat.length && pat[p] === '*') p++;
  return p === pat.length;
}

/** Length of the pattern token at `p` if it matches `ch`, else 0. */
function matchOne(pat: string, p: number, ch: string): number {
  const c = pat[p]!;
  if (c === '?') return 1;
  if (c === '\\' && p + 1 < pat.length) return pat[p + 1] === ch ? 2 : 0;
  if (c === '[') {
    const end = pat.indexOf(']', p + 2);
    if (end < 0) return c === ch ? 1 : 0;
    let i = p + 1;
    const negate = pat[i] === '!' || pat[i] === '^';
    if (negate) i++;
    let hit = false;
    for (; i < end; i++) {
      if (pat[i + 1] === '-' && i + 2 < end) {
        if (ch >= pat[i]! && ch <= pat[i + 2]!) hit = true;
        i += 2;
      } else if (pat[i] === ch) hit = true;
    }
    return hit !== negate ? end - p + 1 : 0;
  }
  return c === ch ? 1 : 0;
}

/** A compiled glob: `matches(relativePath)` with `/` separators. A pattern without `/` matches the base name at any depth, as ripgrep's --glob does. */
export class Glob {
  readonly #alts: string[][];

  constructor(pattern: string, opts: { basenameAnywhere?: boolean } = {}) {
    if (pattern.length === 0) throw new GlobError('the pattern is empty');
    if (pattern.length > MAX_PATTERN) throw new GlobError(`the pattern is longer than ${MAX_PATTERN} characters`);
    this.#alts = expandBraces(pattern).map((a) => {
      const clean = a.replace(/^\.\//, '');
      const segs = clean.split('/').filter((s, i, all) => s !== '' || i === all.length - 1);
      if (opts.basenameAnywhere && !clean.includes('/')) return ['**', ...segs];
      return segs;
    });
  }

  matches(path: string): boolean {
    const segs = path.split('/');
    return this.#alts.some((a) => matchSegments(a, segs));
  }
}

function matchSegments(pat: readonly string[], segs: readonly string[]): boolean {
  const memo = new Map<number, boolean>();
  const go = (i: number, j: number): boolean => {
    const key = i * (segs.length + 1) + j;
    const seen = memo.get(key);
    if (seen !== undefined) return seen;
    let r: boolean;
    if (i === pat.length) r = j === segs.length;
    else if (pat[i] === '**') r = go(i + 1, j) || (j < segs.length && go(i, j + 1));
    else r = j < segs.length && matchSegment(pat[i]!, segs[j]!) && go(i + 1, j + 1);
    memo.set(key, r);
    return r;
  };
  return go(0, 0);
}
