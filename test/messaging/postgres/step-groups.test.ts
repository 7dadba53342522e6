/**
 * StepGroups (src/messaging/postgres/step-groups.ts): how waiting conversation steps become groups. A group
 * never holds two steps of one conversation, a conversation is never in two running groups, at
 * most `concurrent` groups run, steps keep their arrival order, and an idle queue starts what arrived
 * in one turn of the event loop at the end of that turn, together.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Linger } from '../../../src/messaging/linger.js';
import { StepGroups } from '../../../src/messaging/postgres/step-groups.js';

interface Job {
  key: string;
  n: number;
  first?: boolean;
}

/** Groups run until released by the test, recorded in start order. */
function harness(opts: { maxSteps: number; concurrent: number; lingerMs?: number; fill?: number }) {
  const started: Job[][] = [];
  const release: (() => void)[] = [];
  let running = 0;
  let most = 0;
  const busy = new Set<string>();
  const groups = new StepGroups<Job>(async (g) => {
    for (const j of g) {
      if (busy.has(j.key)) throw new Error(`conversation ${j.key} in two running groups`);
      busy.add(j.key);
    }
    running++;
    most = Math.max(most, running);
    started.push(g);
    await new Promise<void>((r) => release.push(r));
    running--;
    for (const j of g) busy.delete(j.key);
  }, opts);
  const flush = () => new Promise((r) => setImmediate(r));
  return { groups, started, release, most: () => most, flush };
}

describe('step groups', () => {
  it('an idle queue starts a step at the end of its turn, alone', async () => {
    const h = harness({ maxSteps: 8, concurrent: 2 });
    h.groups.push({ key: 'a', n: 1 });
    await h.flush();
    expect(h.started).toEqual([[{ key: 'a', n: 1 }]]);
  });

  it('the steps of one turn (a batch) start as one group, not one alone per free slot first', async () => {
    const h = harness({ maxSteps: 64, concurrent: 4 });
    for (let i = 0; i < 100; i++) h.groups.push({ key: `c${i}`, n: i });
    expect(h.started).toEqual([]);
    await h.flush();
    expect(h.started.map((g) => g.length)).toEqual([64, 36]);
  });

  it('steps arriving while every slot is busy form the next groups in arrival order, up to maxSteps, one step per conversation', async () => {
    const h = harness({ maxSteps: 3, concurrent: 1 });
    h.groups.push({ key: 'a', n: 0 });
    await h.flush();
    const later = ['b', 'a', 'c', 'd', 'b', 'e'].map((key, i) => ({ key, n: i + 1 }));
    for (const j of later) h.groups.push(j);
    expect(h.groups.size).toEqual({ waiting: 6, running: 1 });
    h.release.shift()!();
    await h.flush();
    // a's second step waits for a's first group, which has ended: it may go now; b's second waits for the next group.
    expect(h.started[1]!.map((j) => j.n)).toEqual([1, 2, 3]);
    h.release.shift()!();
    await h.flush();
    expect(h.started[2]!.map((j) => j.n)).toEqual([4, 5, 6]);
    h.release.shift()!();
    await h.flush();
    expect(h.started).toHaveLength(3);
    expect(h.groups.size).toEqual({ waiting: 0, running: 0 });
  });

  it('steps that finish work go into the next group before new work, each behind an earlier step of its conversation', async () => {
    const h = harness({ maxSteps: 3, concurrent: 1 });
    h.groups.push({ key: 'x', n: 0 });
    await h.flush();
    for (const j of [
      { key: 'a', n: 1 },
      { key: 'b', n: 2 },
      { key: 'c', n: 3, first: true },
      { key: 'a', n: 4, first: true },
      { key: 'd', n: 5, first: true },
    ])
      h.groups.push(j);
    h.release.shift()!();
    await h.flush();
    // c and d first; a's acknowledgement waits behind a's earlier step, which fills the group.
    expect(h.started[1]!.map((j) => j.n)).toEqual([3, 5, 1]);
    h.release.shift()!();
    await h.flush();
    expect(h.started[2]!.map((j) => j.n)).toEqual([4, 2]);
  });

  it('a conversation in a running group keeps its next step waiting even when a slot is free', async () => {
    const h = harness({ maxSteps: 8, concurrent: 3 });
    h.groups.push({ key: 'a', n: 1 });
    h.groups.push({ key: 'a', n: 2 });
    h.groups.push({ key: 'b', n: 3 });
    await h.flush();
    expect(h.started.map((g) => g.map((j) => j.n))).toEqual([[1, 3]]);
    h.release.shift()!();
    await h.flush();
    expect(h.started.map((g) => g.map((j) => j.n))).toEqual([[1, 3], [2]]);
  });

  it('1,000 steps over 20 conversations: never more than `concurrent` groups, never one conversation twice at once, every step run once', async () => {
    const ran: number[] = [];
    let running = 0;
    let most = 0;
    const busy = new Set<string>();
    const groups = new StepGroups<Job>(
      async (g) => {
        running++;
        most = Math.max(most, running);
        for (const j of g) {
          expect(busy.has(j.key)).toBe(false);
          busy.add(j.key);
        }
        await new Promise((r) => setTimeout(r, Math.random() * 3));
        for (const j of g) {
          busy.delete(j.key);
          ran.push(j.n);
        }
        running--;
      },
      { maxSteps: 7, concurrent: 3 },
    );
    for (let i = 0; i < 1000; i++) {
      groups.push({ key: `c${i % 20}`, n: i });
      if (i % 50 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    while (groups.size.waiting + groups.size.running > 0) await new Promise((r) => setTimeout(r, 5));
    expect(most).toBeLessThanOrEqual(3);
    expect(most).toBeGreaterThan(1);
    expect([...ran].sort((x, y) => x - y)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    // One conversation's steps ran in arrival order.
    for (let c = 0; c < 20; c++) {
      const mine = ran.filter((n) => n % 20 === c);
      expect(mine).toEqual([...mine].sort((x, y) => x - y));
    }
  });

  describe('linger (a node under load waits briefly for its small groups to fill)', () => {
    afterEach(() => {
      vi.useRealTimers();
    });
    const fake = () => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'performance'] });
    const opts = { maxSteps: 32, concurrent: 2, lingerMs: 2, fill: 8 };
    /** A node under load: `n` steps arrived in one turn (320 a second over the last 50 ms for 16) and run as one group. */
    const loaded = async (n: number) => {
      const h = harness(opts);
      for (let i = 0; i < n; i++) h.groups.push({ key: `load${i}`, n: -1 - i });
      await vi.advanceTimersByTimeAsync(0);
      expect(h.started.map((g) => g.length)).toEqual([n]);
      return h;
    };

    it('an idle node does not wait: a lone step starts at the end of its turn', async () => {
      fake();
      const h = harness(opts);
      h.groups.push({ key: 'a', n: 1 });
      await vi.advanceTimersByTimeAsync(0);
      expect(h.started).toEqual([[{ key: 'a', n: 1 }]]);
    });

    it('a busy node at a low rate does not wait either', async () => {
      fake();
      const h = await loaded(1);
      // A group is running, but two steps in the last 50 ms are 40 a second.
      h.groups.push({ key: 'b', n: 2 });
      await vi.advanceTimersByTimeAsync(0);
      expect(h.started.map((g) => g.map((j) => j.n))).toEqual([[-1], [2]]);
    });

    it('a node under load holds a small group at most the bound, and what arrives meanwhile joins it', async () => {
      fake();
      const h = await loaded(16);
      h.groups.push({ key: 'a', n: 1 });
      await vi.advanceTimersByTimeAsync(1);
      expect(h.started).toHaveLength(1);
      h.groups.push({ key: 'b', n: 2 });
      await vi.advanceTimersByTimeAsync(0.9);
      expect(h.started).toHaveLength(1);
      await vi.advanceTimersByTimeAsync(0.2);
      // The bound counts from the oldest step's arrival, not from the last.
      expect(h.started.map((g) => g.map((j) => j.n))).toEqual([Array.from({ length: 16 }, (_, i) => -1 - i), [1, 2]]);
    });

    it('a full group does not wait', async () => {
      fake();
      const h = await loaded(16);
      for (let i = 0; i < 8; i++) h.groups.push({ key: `f${i}`, n: i });
      await vi.advanceTimersByTimeAsync(0);
      expect(h.started.map((g) => g.length)).toEqual([16, 8]);
    });

    it('a lingering group starts at the end of the turn that fills it', async () => {
      fake();
      const h = await loaded(16);
      h.groups.push({ key: 'a', n: 0 });
      await vi.advanceTimersByTimeAsync(1);
      expect(h.started).toHaveLength(1);
      for (let i = 1; i < 8; i++) h.groups.push({ key: `f${i}`, n: i });
      await vi.advanceTimersByTimeAsync(0);
      expect(h.started.map((g) => g.length)).toEqual([16, 8]);
    });

    it('the rate decays: a node that was under load and went quiet does not wait', async () => {
      fake();
      const h = await loaded(16);
      h.release.shift()!();
      await vi.advanceTimersByTimeAsync(200);
      h.groups.push({ key: 'a', n: 1 });
      await vi.advanceTimersByTimeAsync(0);
      expect(h.started.map((g) => g.length)).toEqual([16, 1]);
    });

    it('Linger alone (the reads of fetched deliveries): waits only at 125 items a second or more, at most the bound', () => {
      let t = 1000;
      const l = new Linger(2, () => t);
      l.arrived(5); // 100 a second over the last 50 ms
      expect(l.waitFor(t)).toBe(0);
      l.arrived(2); // 140 a second
      expect(l.waitFor(t)).toBe(2);
      t += 1.5;
      expect(l.waitFor(t - 1.5)).toBeCloseTo(0.5);
      expect(l.waitFor(t - 2)).toBe(0);
      expect(new Linger(0, () => t).waitFor(t)).toBe(0);
    });

    it('off (lingerMs 0): a node under load starts a small group at once', async () => {
      fake();
      const h = harness({ ...opts, lingerMs: 0 });
      for (let i = 0; i < 16; i++) h.groups.push({ key: `load${i}`, n: i });
      await vi.advanceTimersByTimeAsync(0);
      h.groups.push({ key: 'a', n: 99 });
      await vi.advanceTimersByTimeAsync(0);
      expect(h.started.map((g) => g.length)).toEqual([16, 1]);
    });
  });
});
