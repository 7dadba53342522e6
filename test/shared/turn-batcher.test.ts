import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../../src/shared/backoff.js';
import { TurnBatcher } from '../../src/shared/turn-batcher.js';

const turn = () => new Promise<void>((r) => setImmediate(r));

describe('TurnBatcher', () => {
  it('writes what one turn queued in one batch, at the end of the turn', async () => {
    const batches: number[][] = [];
    const b = new TurnBatcher<number>({ write: (batch) => void batches.push([...batch]) });
    b.push(1);
    b.push(2);
    b.push(3);
    expect(batches).toEqual([]);
    await turn();
    b.push(4);
    await turn();
    expect(batches).toEqual([[1, 2, 3], [4]]);
  });

  it("a full queue is written at once on the caller's turn, and counted", () => {
    const batches: number[][] = [];
    let full = 0;
    const b = new TurnBatcher<number>({
      maxQueue: 2,
      write: (batch) => void batches.push([...batch]),
      onFull: () => full++,
    });
    b.push(1);
    b.push(2);
    b.push(3);
    expect(batches).toEqual([[1, 2]]);
    expect(full).toBe(1);
    expect(b.full).toBe(1);
    expect(b.dropped).toBe(0);
  });

  it('behind a write under way, a full queue drops its oldest records and counts them', async () => {
    let release!: () => void;
    const batches: number[][] = [];
    const dropped: number[] = [];
    const b = new TurnBatcher<number>({
      maxQueue: 2,
      write: (batch) => {
        batches.push([...batch]);
        return new Promise<void>((r) => (release = r));
      },
      onDropped: (n) => dropped.push(n),
    });
    b.push(1);
    await turn(); // [1] is being written
    b.push(2);
    b.push(3);
    b.push(4); // full behind the running write: 2 goes
    expect(dropped).toEqual([1]);
    release();
    await turn(); // [3, 4] is being written
    release();
    await b.close();
    expect(batches).toEqual([[1], [3, 4]]);
  });

  it('a retryable failure keeps the batch, in order, and tries again; close writes what is left', async () => {
    let failing = true;
    const written: number[] = [];
    const errors: unknown[] = [];
    const b = new TurnBatcher<number>({
      retryable: () => true,
      retryMs: 10,
      onError: (e) => errors.push(e),
      write: async (batch) => {
        if (failing) throw new Error('unreachable');
        written.push(...batch);
      },
    });
    b.push(1);
    b.push(2);
    await b.flush();
    expect(written).toEqual([]);
    expect(b.queued).toBe(2);
    expect(errors).toHaveLength(1);
    b.push(3);
    failing = false;
    await b.close();
    expect(written).toEqual([1, 2, 3]);
    expect(b.dropped).toBe(0);
  });

  it('another failure drops the batch, reports it, and goes on with the next', () => {
    const errors: unknown[] = [];
    const written: number[] = [];
    const b = new TurnBatcher<number>({
      maxBatch: 1,
      onError: (e) => errors.push(e),
      write: (batch) => {
        if (batch[0] === 1) throw new Error('refused');
        written.push(...batch);
      },
    });
    b.push(1);
    b.push(2);
    void b.flush();
    expect(written).toEqual([2]);
    expect(b.dropped).toBe(1);
    expect(errors).toHaveLength(1);
  });

  it('drains on close and ignores later records', async () => {
    const written: number[] = [];
    const b = new TurnBatcher<number>({ write: async (batch) => void written.push(...batch) });
    b.push(1);
    await b.close();
    b.push(2);
    await turn();
    expect(written).toEqual([1]);
  });
});

describe('backoffDelay', () => {
  it('doubles from the base, stops at the cap, and scales by the jitter', () => {
    const p = { baseMs: 100, maxMs: 1000 };
    expect([0, 1, 2, 3, 4, 50].map((n) => backoffDelay(n, p))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(backoffDelay(1, { ...p, jitter: [0.5, 1] }, () => 0)).toBe(100);
    expect(backoffDelay(10, { ...p, jitter: [0.8, 1.2] }, () => 0.999999)).toBe(1200);
    expect(backoffDelay(-1, p)).toBe(100);
  });
});
