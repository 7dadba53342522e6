/**
 * What jobs left behind in a reused child process, checked by process-runner.ts whenever no job
 * is running on it (the heap alone after every job). Jobs that touched process-wide state retire
 * their process, so no job started after the check sees it; jobs running beside the one that
 * touched it may (docs/adr/0134-concurrent-jobs-per-pool-member.md lists what is and is not
 * checked, and when).
 * Every check here is cheap enough to run per request (tens of microseconds together); the costly
 * ones (every global's value, every prototype's properties) are deliberately left out.
 * Like protocol.ts it has no runtime dependencies beyond Node's, so the runner stays light.
 */
import { getHeapStatistics } from 'node:v8';

/** Globals whose value a job could replace to reach the next job (checked by identity). */
const WATCHED_GLOBALS = [
  'Object',
  'Array',
  'Function',
  'Promise',
  'JSON',
  'Math',
  'Reflect',
  'Symbol',
  'Error',
  'Date',
  'RegExp',
  'Map',
  'Set',
  'WeakMap',
  'Proxy',
  'setTimeout',
  'setInterval',
  'setImmediate',
  'clearTimeout',
  'clearInterval',
  'queueMicrotask',
  'structuredClone',
  'fetch',
  'URL',
  'AbortController',
  'TextEncoder',
  'TextDecoder',
  'Buffer',
  'process',
  'console',
] as const;

/** Prototypes a job could pollute (checked by their number of own keys). */
const WATCHED_PROTOTYPES: readonly object[] = [
  Object.prototype,
  Array.prototype,
  Function.prototype,
  Promise.prototype,
  String.prototype,
];

type Descriptor = PropertyDescriptor | undefined;

interface Snapshot {
  globals: string[];
  watched: Descriptor[];
  protoKeys: number[];
  cwd: string;
  listeners: Map<string | symbol, number>;
  /** Timers holding the event loop open (unref'd ones are not counted: Node does not list them). */
  timers: number;
}

function listenerCounts(): Map<string | symbol, number> {
  const out = new Map<string | symbol, number>();
  for (const name of process.eventNames()) out.set(name, process.listenerCount(name));
  return out;
}

function take(): Snapshot {
  return {
    globals: Object.getOwnPropertyNames(globalThis),
    watched: WATCHED_GLOBALS.map((name) => Object.getOwnPropertyDescriptor(globalThis, name)),
    protoKeys: WATCHED_PROTOTYPES.map((p) => Reflect.ownKeys(p).length),
    cwd: process.cwd(),
    listeners: listenerCounts(),
    timers: process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length,
  };
}

function changedKey<K>(a: Map<K, number>, b: Map<K, number>): K | undefined {
  for (const [k, n] of b) if ((a.get(k) ?? 0) !== n) return k;
  for (const [k, n] of a) if ((b.get(k) ?? 0) !== n) return k;
  return undefined;
}

/**
 * Node defines many globals as lazy accessors that turn into data properties on first use (with
 * the value the old getter returns from then on): that is Node warming up, not the job's doing.
 */
function sameGlobal(before: Descriptor, now: Descriptor): boolean {
  if (before === undefined || now === undefined) return before === now;
  if (before.get !== undefined && now.get === undefined) {
    try {
      return before.get.call(globalThis) === now.value;
    } catch {
      return false;
    }
  }
  return before.value === now.value && before.get === now.get && before.set === now.set;
}

/** Watches process.env writes through a proxy: comparing the environment after each job costs more. */
function watchEnv(): { env: NodeJS.ProcessEnv; touched(): boolean; reset(): void } {
  let written = false;
  const env = new Proxy(process.env, {
    set(target, key, value) {
      written = true;
      return Reflect.set(target, key, value);
    },
    deleteProperty(target, key) {
      written = true;
      return Reflect.deleteProperty(target, key);
    },
    defineProperty(target, key, descriptor) {
      written = true;
      return Reflect.defineProperty(target, key, descriptor);
    },
  });
  process.env = env;
  return {
    env,
    touched: () => written || process.env !== env,
    reset: () => {
      written = false;
    },
  };
}

/**
 * Takes the baseline once the task module is loaded; `check()` after a job returns why the
 * process must not take another one (undefined when it may).
 */
export class ProcessStateWatch {
  #base: Snapshot;
  readonly #env = watchEnv();
  readonly #heapLimitBytes: number;

  /** @param heapRetireBytes a job that leaves more than this in use on the heap retires the process. */
  constructor(heapRetireBytes: number) {
    this.#heapLimitBytes = heapRetireBytes;
    this.#base = take();
  }

  /** The full check: only meaningful while no job runs (a running job's timers and listeners count). */
  check(): string | undefined {
    const now = take();
    const base = this.#base;
    const why = this.#compare(base, now) ?? this.checkHeap();
    if (why !== undefined) return why;
    // Lazy globals Node materialized during the job are the new normal.
    this.#base = now;
    return undefined;
  }

  /** The heap alone: cheap enough to run after every job, with other jobs still running. */
  checkHeap(): string | undefined {
    const used = getHeapStatistics().used_heap_size;
    if (used > this.#heapLimitBytes)
      return `it left ${Math.round(used / 2 ** 20)} MB in use on the heap (retire above ${Math.round(this.#heapLimitBytes / 2 ** 20)} MB)`;
    return undefined;
  }

  #compare(base: Snapshot, now: Snapshot): string | undefined {
    if (this.#env.touched()) return 'it changed process.env';
    if (now.cwd !== base.cwd) return 'it changed the working directory';
    if (now.globals.length !== base.globals.length || now.globals.some((g, i) => g !== base.globals[i])) {
      const added = now.globals.filter((g) => !base.globals.includes(g));
      const removed = base.globals.filter((g) => !now.globals.includes(g));
      return `it changed the global object (${[...added.map((g) => `added ${g}`), ...removed.map((g) => `removed ${g}`)].join(', ') || 'reordered'})`;
    }
    const replaced = WATCHED_GLOBALS.find((_, i) => !sameGlobal(base.watched[i], now.watched[i]));
    if (replaced !== undefined) return `it replaced the global ${replaced}`;
    if (now.protoKeys.some((n, i) => n !== base.protoKeys[i])) return 'it changed a built-in prototype';
    const listener = changedKey(base.listeners, now.listeners);
    if (listener !== undefined) return `it left process listeners on "${String(listener)}"`;
    if (now.timers > base.timers) return `it left ${now.timers - base.timers} timer(s) running`;
    return undefined;
  }
}
