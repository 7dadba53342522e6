import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIsolation, type Isolation } from '../../src/execution/isolation/index.js';
import { commonSuite, pooledSuite } from './suites.js';
import { ensureBuilt, eventually, expectCaxtonError, isAlive, OK_TIMEOUT, TASKS } from './helpers.js';

commonSuite('process', { output: 'ignore' });
pooledSuite('process');

describe('process isolation', () => {
  let iso: Isolation;
  beforeAll(async () => {
    await ensureBuilt();
    iso = createIsolation('process', { taskModule: TASKS, poolSize: 2, output: 'ignore' });
    await iso.warm();
  }, 120_000);
  afterAll(() => iso.close());

  it('pre-starts its processes before any job arrives', () => {
    expect(iso.stats()).toMatchObject({
      mode: 'process',
      size: 2,
      ready: 2,
      busy: 0,
      starting: 0,
      started: 2,
      completed: 0,
    });
  });

  it('reuses its warm processes from one job to the next', async () => {
    const pids = new Set<number>();
    for (let i = 0; i < 6; i++) {
      const { pid } = (await iso.run({ op: 'pid' }, { timeoutMs: OK_TIMEOUT })) as { pid: number };
      expect(pid).not.toBe(process.pid);
      pids.add(pid);
    }
    expect(pids.size).toBeLessThanOrEqual(2);
    expect(iso.stats()).toMatchObject({ started: 2, crashed: 0, recycled: 0, completed: 6 });
  });

  it('fails a job whose process is killed with SIGKILL from outside, then runs the next job', async () => {
    let childPid: number | undefined;
    const job = iso.run(
      { op: 'pid-then-wait' },
      {
        timeoutMs: OK_TIMEOUT,
        onEvent: (e) => {
          childPid = (e as { pid: number }).pid;
          process.kill(childPid, 'SIGKILL');
        },
      },
    );
    const e = await expectCaxtonError(
      job,
      'isolation_failure',
      /^the isolated process exited with signal SIGKILL during the request$/,
    );
    expect(e.details).toMatchObject({ signal: 'SIGKILL', pid: childPid });
    const crashed = iso.stats().crashed;
    expect(crashed).toBeGreaterThanOrEqual(1);
    await expect(iso.run({ op: 'echo', after: 'kill' }, { timeoutMs: OK_TIMEOUT })).resolves.toEqual({
      op: 'echo',
      after: 'kill',
    });
    // The pool replaced the killed process.
    await iso.warm();
    expect(iso.stats()).toMatchObject({ ready: 2, busy: 0 });
  });

  it('fails only the request whose process is killed while others run on the other process', async () => {
    let victim: number | undefined;
    const killed = iso.run(
      { op: 'pid-then-wait' },
      { timeoutMs: OK_TIMEOUT, onEvent: (e) => (victim = (e as { pid: number }).pid) },
    );
    const outcome = expectCaxtonError(killed, 'isolation_failure', /exited with signal SIGKILL during the request/);
    await eventually(() => victim !== undefined);
    const neighbour = iso.run({ op: 'sleep', ms: 200 }, { timeoutMs: OK_TIMEOUT });
    process.kill(victim!, 'SIGKILL');
    await outcome;
    await expect(neighbour).resolves.toEqual({ slept: 200 });
    const { pid } = (await iso.run({ op: 'pid' }, { timeoutMs: OK_TIMEOUT })) as { pid: number };
    expect(pid).not.toBe(victim);
  });

  it('kills the process of a cancelled job that ignores its cancellation', async () => {
    const ac = new AbortController();
    let childPid = 0;
    const job = iso.run(
      { op: 'pid-then-wait' },
      {
        timeoutMs: OK_TIMEOUT,
        signal: ac.signal,
        onEvent: (e) => {
          childPid = (e as { pid: number }).pid;
          ac.abort();
        },
      },
    );
    await expectCaxtonError(job, 'cancelled');
    await eventually(() => !isAlive(childPid));
  });

  it('kills the process of a timed-out job that ignores its signal, and replaces it', async () => {
    let childPid = 0;
    const job = iso.run(
      { op: 'pid-then-wait' },
      { timeoutMs: 1_500, onEvent: (e) => (childPid = (e as { pid: number }).pid) },
    );
    await expectCaxtonError(job, 'timeout');
    await eventually(() => !isAlive(childPid));
    await iso.warm();
    expect(iso.stats().ready).toBe(2);
  });

  it('kills the process of a running job on close()', async () => {
    const own = createIsolation('process', { taskModule: TASKS, poolSize: 1, output: 'ignore' });
    await own.warm();
    let childPid = 0;
    const job = own.run(
      { op: 'pid-then-wait' },
      { timeoutMs: OK_TIMEOUT, onEvent: (e) => (childPid = (e as { pid: number }).pid) },
    );
    await eventually(() => childPid !== 0);
    const outcome = expectCaxtonError(job, 'not_ready'); // handle the rejection before close() triggers it
    await own.close();
    await outcome;
    expect(isAlive(childPid)).toBe(false);
  });
});

describe('process isolation: recycling', () => {
  beforeAll(() => ensureBuilt(), 120_000);

  it('replaces a process after maxRequestsPerProcess jobs', async () => {
    const iso = createIsolation('process', {
      taskModule: TASKS,
      poolSize: 1,
      maxRequestsPerProcess: 3,
      output: 'ignore',
    });
    try {
      await iso.warm();
      const pids: number[] = [];
      for (let i = 0; i < 7; i++)
        pids.push(((await iso.run({ op: 'pid' }, { timeoutMs: OK_TIMEOUT })) as { pid: number }).pid);
      expect(new Set(pids.slice(0, 3)).size).toBe(1);
      expect(new Set(pids.slice(3, 6)).size).toBe(1);
      expect(new Set([pids[0], pids[3], pids[6]]).size).toBe(3);
      expect(iso.stats()).toMatchObject({ recycled: 2, crashed: 0, completed: 7 });
      await eventually(() => !isAlive(pids[0]!) && !isAlive(pids[3]!));
    } finally {
      await iso.close();
    }
  });

  it('rejects a maxRequestsPerProcess that is not a positive integer', () => {
    expect(() => createIsolation('process', { taskModule: TASKS, maxRequestsPerProcess: 0 })).toThrow(
      /maxRequestsPerProcess must be a positive integer, got 0/,
    );
  });

  describe('a job that touches process state retires its process: the next job never sees it', () => {
    let iso: Isolation;
    beforeAll(async () => {
      iso = createIsolation('process', {
        taskModule: TASKS,
        poolSize: 1,
        maxOldGenerationSizeMb: 64,
        output: 'ignore',
      });
      await iso.warm();
    }, 120_000);
    afterAll(() => iso.close());

    interface Seen {
      pid: number;
      global: unknown;
      env: unknown;
      polluted: unknown;
      cwd: string;
    }
    const state = async (touch?: string): Promise<Seen> =>
      (await iso.run({ op: 'state', touch }, { timeoutMs: OK_TIMEOUT })) as Seen;

    it('keeps the process after a job that touched nothing', async () => {
      const first = await state();
      const second = await state();
      expect(second.pid).toBe(first.pid);
    });

    for (const touch of ['global', 'replace-global', 'env', 'cwd', 'listener', 'timer', 'prototype', 'heap']) {
      it(`retires the process after a job that touched ${touch}`, async () => {
        const recycled = iso.stats().recycled;
        const leaking = await state(touch);
        const next = await state();
        expect(next.pid).not.toBe(leaking.pid);
        expect(next).toMatchObject({ global: undefined, env: undefined, polluted: undefined, cwd: process.cwd() });
        expect(iso.stats().recycled).toBe(recycled + 1);
        await eventually(() => !isAlive(leaking.pid));
      });
    }

    it('retires the process after a failed job that leaked a global, and reports the failure', async () => {
      const before = await state();
      await expectCaxtonError(
        iso.run({ op: 'throw-after-leak' }, { timeoutMs: OK_TIMEOUT }),
        'internal',
        /^leaked, then threw$/,
      );
      const next = await state();
      expect(next.pid).not.toBe(before.pid);
      expect(next.global).toBeUndefined();
    });
  });
});
