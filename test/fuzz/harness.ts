/**
 * The fuzz harness shared by test/fuzz/*.fuzz.ts (run with `npm run fuzz`, see docs/fuzzing.md):
 * budget and seed from the environment, the regression corpus (test/fuzz/corpus/TARGET/*),
 * per-call timing, and a watchdog thread that ends the run (saving the input) when one call
 * never returns — the 1 s check itself must not hang with the parser.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';

/** Seconds of fuzzing per target (after the corpus replay). */
export const FUZZ_SECONDS = Number(process.env.CAXTON_FUZZ_SECONDS ?? 8);
/** Optional cap on runs per target (CI uses the time budget; a replay can use a run count). */
export const FUZZ_RUNS = process.env.CAXTON_FUZZ_RUNS ? Number(process.env.CAXTON_FUZZ_RUNS) : undefined;
/** The seed of this run: printed on every failure, reused with CAXTON_FUZZ_SEED=... */
export const FUZZ_SEED = process.env.CAXTON_FUZZ_SEED
  ? Number(process.env.CAXTON_FUZZ_SEED)
  : (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;
/** A parser call using more CPU time than this is a finding. */
export const HANG_MS = Number(process.env.CAXTON_FUZZ_HANG_MS ?? 1000);
/** The watchdog ends the process when one call has not returned after this long. */
export const WATCHDOG_MS = Number(process.env.CAXTON_FUZZ_WATCHDOG_MS ?? 10_000);

/** The regression corpus: one folder per target, one input per file (CAXTON_FUZZ_CORPUS_DIR overrides it for the harness's own test). */
export const CORPUS_DIR = process.env.CAXTON_FUZZ_CORPUS_DIR ?? fileURLToPath(new URL('./corpus/', import.meta.url));

/** The vitest timeout of a fuzz test: the budget plus room for shrinking and start-up. */
export const testTimeout = (extraSeconds = 60): number => (FUZZ_SECONDS + extraSeconds) * 1000;

/** Every saved input of a target, as [file name, text]. */
export function corpus(target: string): [string, string][] {
  const dir = join(CORPUS_DIR, target);
  let names: string[];
  try {
    names = readdirSync(dir)
      .filter((n) => !n.startsWith('.'))
      .sort();
  } catch {
    return [];
  }
  return names.map((n) => [n, readFileSync(join(dir, n), 'utf8')]);
}

/** Saves an input to the target's corpus (named by its hash); returns the path. */
export function saveToCorpus(target: string, input: string, prefix = 'found'): string {
  const dir = join(CORPUS_DIR, target);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${prefix}-${createHash('sha256').update(input).digest('hex').slice(0, 16)}.txt`);
  writeFileSync(path, input);
  return path;
}

// --- watchdog ------------------------------------------------------------------------------------

const INPUT_BYTES = 4 * 1024 * 1024;
/** [0]: start time of the running call (ms since the watchdog's epoch; 0 = idle), [1]: input bytes, [2]: target index. */
const control = new Int32Array(new SharedArrayBuffer(12));
const inputBuf = new Uint8Array(new SharedArrayBuffer(INPUT_BYTES));
const targets: string[] = [];
const epoch = Date.now();
let watchdog: Worker | undefined;

// Plain JavaScript (no TypeScript loader needed in the thread): wakes every 250 ms; when one call
// has run longer than WATCHDOG_MS it writes the input into the corpus, prints target and seed,
// and kills the process: the run fails (vitest reports the crashed worker) instead of hanging.
const WATCHDOG_SOURCE = `
const { workerData } = require('node:worker_threads');
const { writeFileSync, writeSync, mkdirSync } = require('node:fs');
const { createHash } = require('node:crypto');
const { join } = require('node:path');
const { control, input, epoch, limit, dir, seed } = workerData;
setInterval(() => {
  const start = Atomics.load(control, 0);
  if (start === 0 || Date.now() - epoch - start < limit) return;
  const len = Atomics.load(control, 1);
  const target = workerData.targets[Atomics.load(control, 2)] ?? String(Atomics.load(control, 2));
  const text = new TextDecoder().decode(input.slice(0, len));
  const d = join(dir, target);
  mkdirSync(d, { recursive: true });
  const file = join(d, 'hang-' + createHash('sha256').update(text).digest('hex').slice(0, 16) + '.txt');
  writeFileSync(file, text);
  // Straight to fd 2 and SIGKILL: the main thread is stuck, so neither its stderr stream nor a
  // signal handler (vitest's) would ever run; process.exit here would only end this thread.
  writeSync(2, '\\nFUZZ HANG: target ' + target + ': one call ran over ' + limit + ' ms; seed ' + seed + '; input saved to ' + file + '\\n');
  process.kill(process.pid, 'SIGKILL');
}, 250);
`;

/** Registers the targets the watchdog may have to name (before the first guarded call). */
export function startWatchdog(names: string[]): void {
  targets.push(...names);
  if (watchdog) return;
  watchdog = new Worker(WATCHDOG_SOURCE, {
    eval: true,
    workerData: { control, input: inputBuf, epoch, limit: WATCHDOG_MS, dir: CORPUS_DIR, seed: FUZZ_SEED, targets },
  });
  watchdog.unref();
}

export function stopWatchdog(): void {
  void watchdog?.terminate();
  watchdog = undefined;
}

const encoder = new TextEncoder();

/**
 * What one guarded call did: its result or error, and how long it took — in CPU time (`ms`: the
 * measure of "over 1 s", which a loaded CI machine does not inflate the way it inflates wall
 * time; the call is synchronous, so the process's CPU time is the call's) and wall time.
 */
export interface CallOutcome<T> {
  ms: number;
  wallMs: number;
  value?: T;
  error?: unknown;
}

/** Runs `fn(input)` timed, with the watchdog armed (the input copied where it can save it). */
export function guarded<T>(target: string, input: string, fn: (input: string) => T): CallOutcome<T> {
  const idx = targets.indexOf(target);
  const { written } = encoder.encodeInto(
    input.length * 3 <= INPUT_BYTES ? input : input.slice(0, INPUT_BYTES / 3),
    inputBuf,
  );
  Atomics.store(control, 1, written);
  Atomics.store(control, 2, idx);
  Atomics.store(control, 0, Math.max(1, Date.now() - epoch));
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const took = (): { ms: number; wallMs: number } => {
    const c = process.cpuUsage(cpu0);
    return { ms: (c.user + c.system) / 1000, wallMs: performance.now() - t0 };
  };
  try {
    const value = fn(input);
    return { ...took(), value };
  } catch (error) {
    return { ...took(), error };
  } finally {
    Atomics.store(control, 0, 0);
  }
}

// --- running a property --------------------------------------------------------------------------

/**
 * Checks a property for the budget; on failure saves the counterexample to the corpus and throws
 * with the seed and fast-check's report (which has the replay path).
 */
export async function fuzz<T>(
  target: string,
  arb: fc.Arbitrary<T>,
  check: (input: T) => void | Promise<void>,
  toText: (input: T) => string,
): Promise<number> {
  let runs = 0;
  const prop = fc.asyncProperty(arb, async (input) => {
    runs++;
    await check(input);
  });
  const details = await fc.check(prop, {
    seed: FUZZ_SEED,
    numRuns: FUZZ_RUNS ?? Number.MAX_SAFE_INTEGER,
    interruptAfterTimeLimit: FUZZ_SECONDS * 1000,
    markInterruptAsFailure: false,
  });
  if (details.failed) {
    const example = details.counterexample?.[0] as T | undefined;
    const text = example !== undefined ? toText(example) : undefined;
    const saved = text !== undefined ? saveToCorpus(target, text) : '(no counterexample)';
    // The input itself is in the corpus file: the report shows a preview, so a 100,000-level
    // counterexample does not flood the CI log.
    const why = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
    throw new Error(
      `fuzz target ${target} failed after ${details.numRuns} runs (${details.numShrinks} shrinks)\n` +
        `  seed ${FUZZ_SEED}, path ${details.counterexamplePath ?? '?'} (replay: CAXTON_FUZZ_SEED=${FUZZ_SEED} npm run fuzz)\n` +
        `  counterexample (${text?.length ?? 0} chars) saved to ${saved}: ${preview(text ?? '')}\n` +
        `  ${preview(why, 2000)}`,
    );
  }
  return runs;
}

/** The start of a long text, with its length. */
export function preview(text: string, max = 240): string {
  return (
    JSON.stringify(text.length > max ? `${text.slice(0, max)}…` : text) +
    (text.length > max ? ` (${text.length} chars)` : '')
  );
}

// --- structure-aware arbitraries -----------------------------------------------------------------

/** Keys a hostile client would try: prototype keys, empty, unicode, very long. */
export const hostileKey = fc.oneof(
  fc.constantFrom(
    '__proto__',
    'constructor',
    'prototype',
    'toString',
    'hasOwnProperty',
    '',
    ' ',
    'a.b',
    '$ref',
    'X-hostile',
    '\u0000',
    '\ud800',
    '名前',
    'e\u0301',
  ),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'grapheme', maxLength: 6 }),
);

/** Strings with the characters that break parsers: quotes, escapes, brackets, unicode, controls. */
export const hostileString = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.constantFrom(
    '"',
    '\\',
    '\\"',
    '\\u0000',
    '\\ud800',
    '{',
    '[',
    ']]',
    '}}',
    '\n',
    '\r\n',
    '\t',
    '---',
    '"""',
    "'''",
    '*a',
    '&a',
    '<<',
    '#',
    '=',
    '\u2028',
    '\ufeff',
    '\uffff',
  ),
);

/** A long run of one character (or short string): the classic quadratic / deep-recursion trigger. */
export const hugeRepeat = fc
  .tuple(
    fc.constantFrom(
      ' ',
      '[',
      '{',
      '"',
      '\\',
      '{"a":',
      '[[',
      '- ',
      '  ',
      '\n',
      '#',
      '=',
      'a',
      '*',
      '&a ',
      '! ',
      '{a: ',
      '[a, ',
      ':',
      '`',
      '\u00e9',
      '\ud83d\ude00',
    ),
    fc.integer({ min: 1, max: 100_000 }),
  )
  .map(([s, n]) => s.repeat(Math.ceil(n / s.length)));

/** Text nested `depth` levels of a container, optionally closed. */
export const deepNesting = fc
  .tuple(
    fc.constantFrom(['[', ']'], ['{"a":', '}'], ['{"__proto__":', '}'], ['[{"k":', '}]']),
    fc.integer({ min: 1, max: 30_000 }),
    fc.boolean(),
  )
  .map(([[open, close], depth, closed]) => open.repeat(depth) + '1' + (closed ? close.repeat(depth) : ''));

/** JSON values with hostile keys and strings (kept small; depth comes from deepNesting). */
export const hostileJson: fc.Arbitrary<unknown> = fc.letrec<{ v: unknown }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom(null, true, false, 0, -1, 1e308, -0, 2 ** 53),
    hostileString,
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(hostileKey, tie('v'), { maxKeys: 4 }),
  ),
})).v;

/** One edit of a near-valid document. */
type Mutation =
  | { kind: 'insert'; at: number; text: string }
  | { kind: 'delete'; at: number; len: number }
  | { kind: 'duplicate'; at: number; len: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'replace'; at: number; text: string };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    kind: fc.constant('insert' as const),
    at: fc.nat(),
    text: fc.oneof(hostileString, deepNesting, hugeRepeat),
  }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant('duplicate' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 80 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant('replace' as const),
    at: fc.nat(),
    text: fc.oneof(hostileString, fc.constantFrom('"', '[', '{', '}', ']', '=', ':', '\n', '---', '&', '*')),
  }),
);

function applyMutation(text: string, m: Mutation): string {
  const at = text.length === 0 ? 0 : m.at % (text.length + 1);
  switch (m.kind) {
    case 'insert':
      return text.slice(0, at) + m.text + text.slice(at);
    case 'delete':
      return text.slice(0, at) + text.slice(at + m.len);
    case 'duplicate':
      return text.slice(0, at) + text.slice(at, at + m.len).repeat(2) + text.slice(at);
    case 'truncate':
      return text.slice(0, at);
    case 'replace':
      return text.slice(0, at) + m.text + text.slice(at + m.text.length);
  }
}

/** Valid documents, mutated 0–4 times: mostly near-valid input that gets deep into the parser. */
export function nearValid(seeds: string[]): fc.Arbitrary<string> {
  return fc
    .tuple(fc.constantFrom(...seeds), fc.array(mutation, { maxLength: 4 }))
    .map(([doc, ms]) => ms.reduce(applyMutation, doc));
}

/** The text targets' usual mix: near-valid documents, plus raw hostile text. */
export function documents(seeds: string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { arbitrary: nearValid(seeds), weight: 6 },
    { arbitrary: deepNesting, weight: 1 },
    { arbitrary: hugeRepeat, weight: 1 },
    { arbitrary: fc.string({ unit: 'grapheme', maxLength: 200 }), weight: 1 },
    { arbitrary: hostileJson.map((v) => JSON.stringify(v)), weight: 1 },
  );
}

/** A YAML alias bomb ("billion laughs"), `levels` deep with `fan` references per level. */
export function yamlAliasBomb(levels: number, fan: number): string {
  const lines = ['a0: &a0 ["lol", "lol"]'];
  for (let i = 1; i <= levels; i++)
    lines.push(`a${i}: &a${i} [${Array.from({ length: fan }, () => `*a${i - 1}`).join(', ')}]`);
  return lines.join('\n');
}
