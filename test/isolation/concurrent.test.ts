import { afterEach, describe, expect, it } from 'vitest';
import { createIsolation, type Isolation, type IsolationOptions } from '../../src/execution/isolation/index.js';
import { ensureBuilt, eventually, expectCaxtonError, isAlive, OK_TIMEOUT, TASKS } from './helpers.js';

/** Host calls held until `open()`: the stand-in for a slow model call. */
class Gate {
  arrived = 0;
  #waiting: (() => void)[] = [];
  readonly onCall = (_method: string, args: unknown): Promise<unknown> => {
    this.arrived++;
    return new Promise((resolve) => this.#waiting.push(() => resolve({ echoed: args })));
  };
  open(): void {
    for (const go of this.#waiting.splice(0)) go();
  }
}

interface Where {
  pid: number;
  thread: number;
}

const memberOf = (w: Where): string => `${w.pid}/${w.thread}`;

/** Starts a job that reports where it runs (its first event) and returns both. */
function start(
  iso: Isolation,
  payload: Record<string, unknown>,
  opts: { gate?: Gate; signal?: AbortSignal; timeoutMs?: number } = {},
): { job: Promise<unknown>; where: Promise<Where> } {
  let seen!: (w: Where) => void;
  const where = new Promise<Where>((r) => (seen = r));
  const job = iso.run(payload, {
    timeoutMs: opts.timeoutMs ?? OK_TIMEOUT,
    onEvent: (e) => seen(e as Where),
    ...(opts.gate && { onCall: opts.gate.onCall }),
    ...(opts.signal && { signal: opts.signal }),
  });
  job.catch(() => {}); // each test checks the outcome it expects
  return { job, where };
}

for (const mode of ['worker', 'process'] as const) {
  describe(`${mode} isolation: many jobs at once on one member`, () => {
    let iso: Isolation | undefined;
    const open = async (options: Partial<IsolationOptions>): Promise<Isolation> => {
      await ensureBuilt();
      iso = createIsolation(mode, { taskModule: TASKS, output: 'ignore', ...options });
      await iso.warm();
      return iso;
    };
    afterEach(async () => {
      await iso?.close();
      iso = undefined;
    }, 30_000);

    it('hands each job its sticky parts whole, whether they crossed before or are new', async () => {
      const pool = await open({ poolSize: 2 });
      const first = { model: 'a', aliases: { fast: 'a-1' } };
      const second = { model: 'b', aliases: { fast: 'b-1' } };
      const echo = (config: unknown, i: number) =>
        pool.run({ op: 'echo', config, i }, { timeoutMs: OK_TIMEOUT, sticky: ['config', 'absent'] });
      // Many at once (each member gets some, in batches), then the part changes, then it comes back.
      const wave = await Promise.all(Array.from({ length: 30 }, (_, i) => echo(first, i)));
      expect(wave).toEqual(Array.from({ length: 30 }, (_, i) => ({ op: 'echo', config: first, i })));
      await expect(echo(second, 30)).resolves.toEqual({ op: 'echo', config: second, i: 30 });
      const mixed = await Promise.all(Array.from({ length: 6 }, (_, i) => echo(i % 2 ? first : second, i)));
      expect(mixed).toEqual(Array.from({ length: 6 }, (_, i) => ({ op: 'echo', config: i % 2 ? first : second, i })));
    });

    it('runs a burst of jobs whose messages cross in batches, each with its own events and result', async () => {
      const pool = await open({ poolSize: 1 });
      const jobs = Array.from({ length: 200 }, (_, i) => {
        const seen: unknown[] = [];
        const job = pool.run(
          { op: 'events', count: 3 + (i % 5) },
          { timeoutMs: OK_TIMEOUT, onEvent: (e) => seen.push(e) },
        );
        return job.then((result) => ({ result, seen }));
      });
      const out = await Promise.all(jobs);
      out.forEach(({ result, seen }, i) => {
        const count = 3 + (i % 5);
        expect(result).toEqual({ done: count });
        expect(seen).toEqual(Array.from({ length: count }, (_, k) => ({ seq: k })));
      });
    });

    it('runs jobs side by side while each waits on its host call, and answers each its own', async () => {
      const pool = await open({ poolSize: 1 });
      const gate = new Gate();
      const jobs = Array.from({ length: 40 }, (_, i) => start(pool, { op: 'pid-then-call', args: i }, { gate }));
      // Every job reaches its call before any is answered: they run at once, not one by one.
      await eventually(() => gate.arrived === 40);
      expect(pool.stats()).toMatchObject({ busy: 40, queued: 0 });
      gate.open();
      const results = (await Promise.all(jobs.map((j) => j.job))) as (Where & { answer: unknown })[];
      expect(results.map((r) => r.answer)).toEqual(Array.from({ length: 40 }, (_, i) => ({ echoed: i })));
      expect(new Set(results.map(memberOf)).size).toBe(1);
    });

    it('spreads jobs over the least loaded members and queues beyond memberConcurrency', async () => {
      const pool = await open({ poolSize: 2, memberConcurrency: 3 });
      const gate = new Gate();
      const jobs = Array.from({ length: 7 }, () => start(pool, { op: 'pid-then-call' }, { gate }));
      await eventually(() => gate.arrived === 6);
      expect(pool.stats()).toMatchObject({ busy: 6, queued: 1, ready: 0 });
      const members = await Promise.all(jobs.slice(0, 6).map((j) => j.where));
      const counts = new Map<string, number>();
      for (const m of members) counts.set(memberOf(m), (counts.get(memberOf(m)) ?? 0) + 1);
      expect([...counts.values()]).toEqual([3, 3]);
      gate.open();
      await eventually(() => gate.arrived === 7);
      gate.open();
      await expect(Promise.all(jobs.map((j) => j.job))).resolves.toHaveLength(7);
    });

    it('cancels one job through its signal, leaving the jobs beside it and the member running', async () => {
      const pool = await open({ poolSize: 1 });
      const gate = new Gate();
      const ac = new AbortController();
      const victim = start(pool, { op: 'pid-then-call' }, { gate, signal: ac.signal });
      const others = Array.from({ length: 4 }, (_, i) => start(pool, { op: 'pid-then-call', args: i }, { gate }));
      await eventually(() => gate.arrived === 5);
      ac.abort();
      await expectCaxtonError(victim.job, 'cancelled');
      // The cancelled job ends in its member (its pending call rejected there), which stays.
      await eventually(() => pool.stats().busy === 4);
      gate.open();
      const results = (await Promise.all(others.map((o) => o.job))) as Where[];
      const member = memberOf(await victim.where);
      expect(results.map(memberOf)).toEqual([member, member, member, member]);
      expect(pool.stats()).toMatchObject({ killed: 0, crashed: 0, started: 1 });
      const next = (await pool.run({ op: 'pid-then-call' }, { timeoutMs: OK_TIMEOUT, onCall: async () => 1 })) as Where;
      expect(memberOf(next)).toBe(member);
    });

    it('kills the member of a job that ignores its cancellation, failing only that member’s jobs', async () => {
      const pool = await open({ poolSize: 2, cancelGraceMs: 300 });
      const gate = new Gate();
      const ac = new AbortController();
      const stuck = start(pool, { op: 'pid-then-ignore' }, { signal: ac.signal });
      const stuckAt = memberOf(await stuck.where);
      const others = Array.from({ length: 6 }, () => start(pool, { op: 'pid-then-call' }, { gate }));
      await eventually(() => gate.arrived === 6);
      const placed = await Promise.all(others.map((o) => o.where));
      const beside = others.filter((_, i) => memberOf(placed[i]!) === stuckAt);
      const elsewhere = others.filter((_, i) => memberOf(placed[i]!) !== stuckAt);
      expect(beside.length).toBeGreaterThan(0);
      expect(elsewhere.length).toBeGreaterThan(0);
      ac.abort();
      await expectCaxtonError(stuck.job, 'cancelled');
      for (const o of beside) {
        const e = await expectCaxtonError(o.job, 'isolation_failure', /did not stop within 300 ms/);
        expect(e.details).toMatchObject({ reason: 'killed' });
      }
      if (mode === 'process') expect(isAlive(Number(stuckAt.split('/')[0]))).toBe(false);
      gate.open();
      const survived = (await Promise.all(elsewhere.map((o) => o.job))) as Where[];
      expect(survived.every((w) => memberOf(w) !== stuckAt)).toBe(true);
      await eventually(() => pool.stats().killed === 1);
      await pool.warm();
      expect(pool.stats()).toMatchObject({ ready: 2, started: 3 });
    });

    it('fails only the crashed member’s jobs, and the pool replaces it', async () => {
      const pool = await open({ poolSize: 2 });
      const gate = new Gate();
      const others = Array.from({ length: 4 }, () => start(pool, { op: 'pid-then-call' }, { gate }));
      await eventually(() => gate.arrived === 4);
      const placed = await Promise.all(others.map((o) => o.where));
      const crash = start(pool, { op: 'pid-then-exit', waitMs: 50 });
      const crashedAt = memberOf(await crash.where);
      await expectCaxtonError(crash.job, 'isolation_failure', /exited with code 3/);
      const beside = others.filter((_, i) => memberOf(placed[i]!) === crashedAt);
      const elsewhere = others.filter((_, i) => memberOf(placed[i]!) !== crashedAt);
      expect(beside.length).toBe(2);
      for (const o of beside) await expectCaxtonError(o.job, 'isolation_failure', /exited with code 3/);
      gate.open();
      await expect(Promise.all(elsewhere.map((o) => o.job))).resolves.toHaveLength(2);
      await eventually(() => pool.stats().crashed === 1);
      await pool.warm();
      expect(pool.stats()).toMatchObject({ ready: 2, started: 3 });
    });
  });
}

describe('process isolation: recycling drains a process without failing its jobs', () => {
  let iso: Isolation | undefined;
  afterEach(() => iso?.close());

  it('stops giving a process jobs after maxRequestsPerProcess, lets its jobs finish, then replaces it', async () => {
    await ensureBuilt();
    iso = createIsolation('process', { taskModule: TASKS, poolSize: 1, maxRequestsPerProcess: 3, output: 'ignore' });
    await iso.warm();
    const pool = iso;
    const gate = new Gate();
    const first = Array.from({ length: 3 }, () => start(pool, { op: 'pid-then-call' }, { gate }));
    await eventually(() => gate.arrived === 3);
    const drained = memberOf(await first[0]!.where);
    // The fourth job goes to the replacement, started as soon as the first process had its share.
    const fourth = start(pool, { op: 'pid-then-call' }, { gate });
    const next = memberOf(await fourth.where);
    expect(next).not.toBe(drained);
    await eventually(() => gate.arrived === 4);
    gate.open();
    const results = (await Promise.all(first.map((j) => j.job))) as Where[];
    expect(results.map(memberOf)).toEqual([drained, drained, drained]);
    await expect(fourth.job).resolves.toMatchObject({ pid: Number(next.split('/')[0]) });
    await eventually(() => pool.stats().recycled === 1);
    expect(isAlive(Number(drained.split('/')[0]))).toBe(false);
    expect(pool.stats()).toMatchObject({ crashed: 0, killed: 0, failed: 0, completed: 4 });
  });

  it('checks process state once no job runs, then retires a process a job left touched', async () => {
    await ensureBuilt();
    iso = createIsolation('process', { taskModule: TASKS, poolSize: 1, output: 'ignore' });
    await iso.warm();
    const pool = iso;
    const gate = new Gate();
    const beside = start(pool, { op: 'pid-then-call' }, { gate });
    await eventually(() => gate.arrived === 1);
    const touched = (await pool.run(
      { op: 'state', touch: 'global', global: '__caxtonConcurrentLeak' },
      { timeoutMs: OK_TIMEOUT },
    )) as { pid: number };
    // Another job still runs there: the check waits for it, and the process keeps its jobs.
    expect(memberOf(await beside.where).startsWith(`${touched.pid}/`)).toBe(true);
    expect(pool.stats()).toMatchObject({ recycled: 0, busy: 1 });
    gate.open();
    await expect(beside.job).resolves.toMatchObject({ pid: touched.pid });
    await eventually(() => pool.stats().recycled === 1);
    const after = (await pool.run({ op: 'state', global: '__caxtonConcurrentLeak' }, { timeoutMs: OK_TIMEOUT })) as {
      pid: number;
      global: unknown;
    };
    expect(after.pid).not.toBe(touched.pid);
    expect(after.global).toBeUndefined();
  });
});
