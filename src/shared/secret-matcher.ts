/**
 * The matching behind the secret scrubber (secrets.ts): an Aho-Corasick automaton over the forms
 * of the configured secrets, usable on a whole text (`replace`) or on a text that arrives in
 * pieces (`scan` from a saved state, and `pending` to tell how much of what was read may still
 * become a match: stream-scrub.ts).
 */

/** What a secret is replaced by. */
export const SCRUBBED = '***';

/**
 * Aho-Corasick automaton over UTF-16 code units, compiled to a dense table (state × character
 * class → state) so that scanning costs one array read per character, with no failure-link walks:
 * a text full of near-misses is as fast as any other. Characters that occur in no pattern share
 * class 0. Per state, the length of the longest pattern ending there, and its depth: the length
 * of the longest suffix of the text read that begins some pattern.
 */
export class Matcher {
  readonly #classOf = new Uint16Array(65536);
  readonly #width: number;
  readonly #table: Int32Array;
  readonly #longest: Int32Array;
  readonly #depth: Int32Array;

  constructor(patterns: Iterable<string>) {
    const list = [...patterns];
    let classes = 1;
    for (const p of list)
      for (let i = 0; i < p.length; i++)
        if (this.#classOf[p.charCodeAt(i)] === 0) this.#classOf[p.charCodeAt(i)] = classes++;
    const width = (this.#width = classes);
    // The trie.
    const children: Map<number, number>[] = [new Map()];
    const longest: number[] = [0];
    const depth: number[] = [0];
    for (const p of list) {
      let s = 0;
      for (let i = 0; i < p.length; i++) {
        const c = this.#classOf[p.charCodeAt(i)]!;
        let t = children[s]!.get(c);
        if (t === undefined) {
          t = children.length;
          children.push(new Map());
          longest.push(0);
          depth.push(i + 1);
          children[s]!.set(c, t);
        }
        s = t;
      }
      longest[s] = Math.max(longest[s]!, p.length);
    }
    this.#depth = Int32Array.from(depth);
    // Breadth-first: each state's row is its children, and otherwise its failure state's row
    // (already complete, being shallower); the longest match also follows the failure link.
    const table = (this.#table = new Int32Array(children.length * width));
    const fail = new Int32Array(children.length);
    this.#longest = new Int32Array(children.length);
    const queue: number[] = [];
    for (const [c, t] of children[0]!) {
      table[c] = t;
      queue.push(t);
    }
    this.#longest.set(longest);
    for (let q = 0; q < queue.length; q++) {
      const s = queue[q]!;
      const f = fail[s]!;
      this.#longest[s] = Math.max(this.#longest[s]!, this.#longest[f]!);
      for (let c = 0; c < width; c++) {
        const t = children[s]!.get(c);
        if (t === undefined) table[s * width + c] = table[f * width + c]!;
        else {
          table[s * width + c] = t;
          fail[t] = table[f * width + c]!;
          queue.push(t);
        }
      }
    }
  }

  /**
   * Reads `text` from `state` (0 at the start of a text) and returns the state after it. Every
   * match is added to `spans` ([start, end) pairs, ordered and disjoint, positions counted from
   * `offset` for the text's first character): overlapping and adjacent ones merged into one.
   */
  scan(text: string, state: number, offset: number, spans: number[]): number {
    const classOf = this.#classOf;
    const table = this.#table;
    const longest = this.#longest;
    const width = this.#width;
    const n = text.length;
    let s = state;
    for (let i = 0; i < n; i++) {
      s = table[s * width + classOf[text.charCodeAt(i)]!]!;
      if (s === 0) continue;
      const len = longest[s]!;
      if (len === 0) continue;
      const end = offset + i + 1;
      const start = end - len;
      // Drop the spans this one covers, then merge with an overlapping or adjacent one.
      while (spans.length > 0 && spans[spans.length - 2]! >= start) spans.length -= 2;
      if (spans.length > 0 && spans[spans.length - 1]! >= start) spans[spans.length - 1] = end;
      else spans.push(start, end);
    }
    return s;
  }

  /** How many of the last characters read to reach `state` may still be the beginning of a match. */
  pending(state: number): number {
    return this.#depth[state]!;
  }

  /** `text` with every match (overlapping ones merged) replaced by SCRUBBED; the same string when none. */
  replace(text: string): string {
    const spans: number[] = [];
    this.scan(text, 0, 0, spans);
    return spans.length === 0 ? text : withSpansReplaced(text, spans, text.length);
  }
}

/** `text` up to `end` with each span of `spans` (all ending before `end`) replaced by SCRUBBED. */
export function withSpansReplaced(text: string, spans: readonly number[], end: number): string {
  let out = '';
  let at = 0;
  for (let k = 0; k < spans.length; k += 2) {
    out += text.slice(at, spans[k]) + SCRUBBED;
    at = spans[k + 1]!;
  }
  return out + text.slice(at, end);
}
