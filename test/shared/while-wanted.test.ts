/**
 * WhileWanted: held open from the first want once started, closed a linger after the last want
 * ends (a want during the linger keeps it), and for good at close. settledWithin: a wait bounded
 * in time that never rejects. wantedByListeners: an emitter's listeners as wants.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { EventEmitter } from 'node:events';
import { settledWithin, wantedByListeners, WhileWanted } from '../../src/shared/while-wanted.js';

function counted(lingerMs = 1_000) {
  const log: string[] = [];
  const w = new WhileWanted(() => {
    log.push('open');
    return () => log.push('close');
  }, lingerMs);
  return { w, log };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('WhileWanted', () => {
  it('counts wants before it starts and opens once started, once however many want it', () => {
    const { w, log } = counted();
    w.want();
    w.want();
    expect(log).toEqual([]);
    w.start();
    w.want();
    expect(log).toEqual(['open']);
    expect(w.isOpen).toBe(true);
    expect(w.wanted).toBe(3);
  });

  it('closes a linger after the last want ends; a want within the linger keeps it open', () => {
    vi.useFakeTimers();
    const { w, log } = counted(1_000);
    w.start();
    w.want();
    w.unwant();
    vi.advanceTimersByTime(900);
    w.want();
    vi.advanceTimersByTime(5_000);
    expect(log).toEqual(['open']);
    w.unwant();
    w.unwant(); // more unwants than wants: ignored
    vi.advanceTimersByTime(1_000);
    expect(log).toEqual(['open', 'close']);
    expect(w.isOpen).toBe(false);
    w.want();
    expect(log).toEqual(['open', 'close', 'open']);
    expect(w.wanted).toBe(1);
  });

  it('close closes it for good: later wants open nothing', () => {
    const { w, log } = counted();
    w.start();
    w.want();
    w.close();
    w.want();
    w.start();
    expect(log).toEqual(['open', 'close']);
    expect(w.isOpen).toBe(false);
  });
});

describe('settledWithin', () => {
  it('resolves when the promise settles, either way, or once the time is up', async () => {
    vi.useFakeTimers();
    let done = 0;
    void settledWithin(Promise.resolve('x'), 1_000).then(() => done++);
    void settledWithin(Promise.reject(new Error('link down')), 1_000).then(() => done++);
    await vi.advanceTimersByTimeAsync(0);
    expect(done).toBe(2);
    void settledWithin(new Promise(() => {}), 1_000).then(() => done++);
    await vi.advanceTimersByTimeAsync(999);
    expect(done).toBe(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(done).toBe(3);
  });
});

describe('wantedByListeners', () => {
  it('counts the listeners already there and those added or removed later, those it is told to, until detached', () => {
    const { w } = counted();
    const e = new EventEmitter();
    const ignored = () => {};
    e.on('event', () => {});
    const detach = wantedByListeners(w, e, 'event', (f) => f !== ignored);
    expect(w.wanted).toBe(1);
    const f = () => {};
    e.on('event', f);
    e.on('event', ignored);
    e.on('other', f);
    expect(w.wanted).toBe(2);
    e.off('event', f);
    expect(w.wanted).toBe(1);
    detach();
    e.on('event', f);
    expect(w.wanted).toBe(1);
  });
});
