/**
 * The idle collection (ADR 0031): after the heap grew, one full GC runs at the first idle look,
 * never while the event loop is busy and never for a heap that did not grow; `gc` is reached
 * without leaking into other contexts. When V8 collects on its own cannot be arranged from a
 * test, so the decisions are driven by a probe whose readings the test sets; the real effect on a
 * real server is test/messaging/flood.test.ts (RSS back within 1.5x after a 60,000-message flood).
 */
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { fullGc, startMemoryReducer, type MemoryReducer } from '../../src/observability/memory-reducer.js';

const MiB = 1024 * 1024;
let reducer: MemoryReducer | undefined;
afterEach(() => reducer?.close());

/** A heap and an event loop whose readings the test sets; `collect` frees what `garbage` says. */
function fakeRuntime(start: number) {
  const r = { used: start, committed: start, garbage: 0, utilization: 0, collections: 0 };
  const probe = {
    heap: () => ({ used: r.used, committed: Math.max(r.committed, start) }),
    utilizationSinceLast: () => r.utilization,
    collect: () => {
      r.collections++;
      r.used -= r.garbage;
      r.garbage = 0;
    },
  };
  return { r, probe };
}

describe('memory reducer', () => {
  it('reaches the real gc without exposing it to other contexts, and a collection frees garbage', () => {
    const gc = fullGc();
    expect(typeof gc).toBe('function');
    expect(runInNewContext('typeof gc')).toBe('undefined');
    let junk: unknown[] | undefined = Array.from({ length: 100_000 }, (_, i) => ({ i, s: `${'x'.repeat(64)}${i}` }));
    const withJunk = v8.getHeapStatistics().used_heap_size;
    expect(junk.length).toBe(100_000);
    junk = undefined;
    gc!();
    expect(v8.getHeapStatistics().used_heap_size).toBeLessThan(withJunk - 4 * MiB);
  });

  it('collects once the loop is idle after the heap grew, then rests', () => {
    const { r, probe } = fakeRuntime(50 * MiB);
    const freed: number[] = [];
    reducer = startMemoryReducer({ intervalMs: 3_600_000, probe, onCollect: (f) => freed.push(f) });
    r.used += 120 * MiB; // a burst: 100 MiB garbage, 20 MiB still live
    r.garbage = 100 * MiB;
    r.utilization = 0.02;
    expect(reducer.check()).toBe(true);
    expect(r.collections).toBe(1);
    expect(freed).toEqual([100 * MiB]);
    expect(reducer.stats()).toMatchObject({ available: true, collections: 1, freed_bytes: 100 * MiB });
    // One follow-up collection at the next idle look (it returns the freed pages), then rest: the
    // live 20 MiB is the new baseline.
    expect(reducer.check()).toBe(true);
    expect(r.collections).toBe(2);
    expect(reducer.check()).toBe(false);
    r.used += 10 * MiB; // less than the 32 MiB default since the last collection
    expect(reducer.check()).toBe(false);
    expect(r.collections).toBe(2);
  });

  it('drops the follow-up when the loop is busy again', () => {
    const { r, probe } = fakeRuntime(50 * MiB);
    reducer = startMemoryReducer({ intervalMs: 3_600_000, probe });
    r.used += 100 * MiB;
    r.garbage = 100 * MiB;
    r.utilization = 0;
    expect(reducer.check()).toBe(true);
    r.utilization = 0.5; // a new burst: V8 collects on its own
    expect(reducer.check()).toBe(false);
    r.utilization = 0;
    expect(reducer.check()).toBe(false);
    expect(r.collections).toBe(1);
  });

  it('leaves a busy loop alone, however much the heap grew', () => {
    const { r, probe } = fakeRuntime(50 * MiB);
    reducer = startMemoryReducer({ intervalMs: 3_600_000, probe });
    r.used += 500 * MiB;
    r.utilization = 0.6;
    expect(reducer.check()).toBe(false);
    r.utilization = 0.1; // at the threshold still counts as busy
    expect(reducer.check()).toBe(false);
    expect(r.collections).toBe(0);
    r.utilization = 0.05;
    expect(reducer.check()).toBe(true);
  });

  it('takes a heap V8 shrank on its own as the new baseline', () => {
    const { r, probe } = fakeRuntime(200 * MiB);
    reducer = startMemoryReducer({ intervalMs: 3_600_000, probe });
    r.utilization = 0;
    r.used = 60 * MiB; // V8 collected by itself
    expect(reducer.check()).toBe(false);
    r.used = 100 * MiB; // +40 MiB over the new baseline, though still under the start
    expect(reducer.check()).toBe(true);
  });

  it('collects when V8 kept the pages though it collected the garbage itself (committed grew, used did not)', () => {
    const { r, probe } = fakeRuntime(50 * MiB);
    reducer = startMemoryReducer({ intervalMs: 3_600_000, probe });
    r.utilization = 0;
    r.committed = 50 * MiB + 45 * MiB;
    expect(reducer.check()).toBe(true);
  });

  it('does nothing when the runtime refuses gc', () => {
    const { r, probe } = fakeRuntime(10 * MiB);
    reducer = startMemoryReducer({ intervalMs: 3_600_000, probe: { ...probe, collect: null } });
    r.used += 500 * MiB;
    expect(reducer.check()).toBe(false);
    expect(reducer.stats().available).toBe(false);
  });
});
