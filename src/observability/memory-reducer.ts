import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Gives memory back once a burst is over (ADR 0031).
 *
 * Why: V8 collects its old generation when allocation asks for it. A server that goes quiet after
 * a flood allocates almost nothing, so the flood's garbage stays in the heap and the process keeps
 * its peak RSS for as long as it stays idle (measured: 147 → 307 MB during a 60,000-message flood,
 * 314 MB a minute after draining). One full collection at that moment frees it (the same run
 * comes back to within 1.5 × of its start; docs/benchmarks.md).
 *
 * What: every `intervalMs` the reducer reads the last interval's event-loop utilization and the
 * heap. When the loop was mostly idle (utilization below `idleUtilization`) and the heap has grown
 * (used or committed) by `minGrowthBytes` since the last full collection the reducer saw, it runs one full GC. A busy
 * server is never interrupted (it collects on its own), an idle one pays one collection per burst
 * (tens of ms for a ~200 MB heap, at a time when nothing waits), and a steady heap is left alone.
 *
 * How the collector is reached: Node exposes `gc` only with `--expose-gc`; setting the flag at
 * run time and taking `gc` from a new V8 context is the documented way to get it without a
 * command-line flag (the flag is switched off again at once, so no other context sees `gc`).
 * When that is refused (a future Node), the reducer does nothing.
 */
export interface MemoryReducerOptions {
  /** How often to look (default 5 s). */
  intervalMs?: number;
  /** Event-loop utilization (0..1) under which the last interval counts as idle (default 0.1). */
  idleUtilization?: number;
  /** Heap growth since the last full collection that makes one worth running (default 32 MiB). */
  minGrowthBytes?: number;
  /** Told after each collection it ran: heap bytes freed and how long it took. */
  onCollect?: (freedBytes: number, durationMs: number) => void;
  /**
   * Where the readings and the collection come from: V8's heap statistics, the event loop's
   * utilization and Node's `gc` unless given (the decision tests give their own, because when V8
   * collects on its own cannot be arranged from a test).
   */
  probe?: { heap(): { used: number; committed: number }; utilizationSinceLast(): number; collect: (() => void) | null };
}

export interface MemoryReducerStats {
  available: boolean;
  collections: number;
  freed_bytes: number;
  last_duration_ms: number | null;
}

export interface MemoryReducer {
  stats(): MemoryReducerStats;
  /** One look now (tests and the interval share it); true when it collected. */
  check(): boolean;
  close(): void;
}

let cachedGc: (() => void) | null | undefined;

/** Node's `gc`, reached without a command-line flag; null when the runtime refuses. */
export function fullGc(): (() => void) | null {
  if (cachedGc !== undefined) return cachedGc;
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (typeof exposed === 'function') return (cachedGc = exposed);
  try {
    v8.setFlagsFromString('--expose-gc');
    const fn = runInNewContext('gc') as unknown;
    cachedGc = typeof fn === 'function' ? (fn as () => void) : null;
  } catch {
    cachedGc = null;
  } finally {
    v8.setFlagsFromString('--no-expose-gc');
  }
  return cachedGc;
}

/** The runtime's own readings and collector. */
function runtimeProbe(): NonNullable<MemoryReducerOptions['probe']> {
  let elu = performance.eventLoopUtilization();
  return {
    heap: () => {
      const h = v8.getHeapStatistics();
      return { used: h.used_heap_size, committed: h.total_heap_size };
    },
    utilizationSinceLast: () => {
      const now = performance.eventLoopUtilization();
      const u = performance.eventLoopUtilization(now, elu).utilization;
      elu = now;
      return u;
    },
    collect: fullGc(),
  };
}

export function startMemoryReducer(opts: MemoryReducerOptions = {}): MemoryReducer {
  const intervalMs = opts.intervalMs ?? 5_000;
  const idle = opts.idleUtilization ?? 0.1;
  const minGrowth = opts.minGrowthBytes ?? 32 * 1024 * 1024;
  const probe = opts.probe ?? runtimeProbe();
  const gc = probe.collect;
  const stats: MemoryReducerStats = { available: gc !== null, collections: 0, freed_bytes: 0, last_duration_ms: null };
  // Growth is measured on both what the heap holds and what V8 has committed for it: after a
  // flood V8 may have collected the garbage itself (used back near its start) yet keep the pages
  // (committed 76 → 121 MB in one CI run, and RSS with it).
  let baseline = probe.heap();
  probe.utilizationSinceLast();

  // After a collection that followed growth, one more at the next idle look: V8 hands the pages
  // a full GC freed back to the system only at a later GC (measured: RSS 137 MB after the first
  // gc(), 84 MB after a second one 5 s later), and a CI run whose only collection came late ended
  // at 1.56x with a clean heap (used 42 MB) but 120 MB of it still committed.
  let followUp = false;

  const check = (): boolean => {
    const utilization = probe.utilizationSinceLast();
    const now = probe.heap();
    // A heap that shrank on its own (V8 collected or released pages) is the new baseline.
    baseline = { used: Math.min(baseline.used, now.used), committed: Math.min(baseline.committed, now.committed) };
    if (gc === null || utilization >= idle) {
      followUp = false; // busy again: V8 collects on its own from here
      return false;
    }
    const grown = now.used - baseline.used >= minGrowth || now.committed - baseline.committed >= minGrowth;
    if (!grown && !followUp) return false;
    const t0 = performance.now();
    gc();
    const ms = performance.now() - t0;
    const after = probe.heap();
    baseline = after;
    followUp = grown;
    const freed = Math.max(0, now.used - after.used);
    stats.collections++;
    stats.freed_bytes += freed;
    stats.last_duration_ms = Math.round(ms * 10) / 10;
    opts.onCollect?.(freed, ms);
    // The collection itself is not the server's work: the next interval starts after it.
    probe.utilizationSinceLast();
    return true;
  };

  const timer = setInterval(check, intervalMs);
  timer.unref();
  return { stats: () => ({ ...stats }), check, close: () => clearInterval(timer) };
}
