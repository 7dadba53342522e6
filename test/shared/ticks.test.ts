/**
 * Ticks: periodic work that never overlaps itself, whose escaped failures go to its handler, and
 * whose `stop()` waits out the tick running (bounded) and starts no more.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Ticks } from '../../src/shared/ticks.js';

afterEach(() => {
  vi.useRealTimers();
});

/** A tick that stays running until `release()`. */
function held() {
  let release = () => {};
  let started = 0;
  let ended = 0;
  const work = async () => {
    started++;
    await new Promise<void>((r) => (release = r));
    ended++;
  };
  return { work, release: () => release(), counts: () => ({ started, ended }) };
}

/** Ticks every 100 ms on fake timers, its first tick started and held. */
async function aTickRunning() {
  vi.useFakeTimers();
  const ticks = new Ticks();
  const h = held();
  ticks.every(100, h.work);
  await vi.advanceTimersByTimeAsync(100);
  return { ticks, h };
}

describe('Ticks', () => {
  it('skips a tick while the previous one of the same work is still running', async () => {
    const { ticks, h } = await aTickRunning();
    await vi.advanceTimersByTimeAsync(250);
    expect(h.counts()).toEqual({ started: 1, ended: 0 });
    h.release();
    await vi.advanceTimersByTimeAsync(100);
    expect(h.counts()).toEqual({ started: 2, ended: 1 });
    h.release();
    await ticks.stop();
  });

  it('stop() resolves only once the running tick has ended, and starts no more', async () => {
    const { ticks, h } = await aTickRunning();
    let stopped = false;
    const stopping = ticks.stop().then(() => (stopped = true));
    await vi.advanceTimersByTimeAsync(1_000);
    expect(stopped).toBe(false);
    h.release();
    await stopping;
    expect(h.counts()).toEqual({ started: 1, ended: 1 });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(h.counts().started).toBe(1);
    ticks.every(100, h.work);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(h.counts().started).toBe(1);
  });

  it('stop() gives up waiting for a stuck tick after its bound', async () => {
    const { ticks, h } = await aTickRunning();
    let stopped = false;
    const stopping = ticks.stop(500).then(() => (stopped = true));
    await vi.advanceTimersByTimeAsync(499);
    expect(stopped).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await stopping;
    expect(h.counts()).toEqual({ started: 1, ended: 0 });
  });

  it('hands a failure that escapes the work to its handler and keeps ticking', async () => {
    vi.useFakeTimers();
    const ticks = new Ticks();
    const seen: unknown[] = [];
    let n = 0;
    ticks.every(
      100,
      () => {
        n++;
        throw new Error(`tick ${n}`);
      },
      (e) => seen.push((e as Error).message),
    );
    await vi.advanceTimersByTimeAsync(300);
    expect(seen).toEqual(['tick 1', 'tick 2', 'tick 3']);
    await ticks.stop();
  });
});
