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
    expect(iso.stats()).toMatchObject({ mode: 'process', size: 2, ready: 2, busy: 0, starting: 0, started: 2, completed: 0 });
  });

  it('runs every job in a fresh process and refills the pool in the background', async () => {
    const pids = new Set<number>();
    for (let i = 0; i < 4; i++) {
      const { pid } = (await iso.run({ op: 'pid' }, { timeoutMs: OK_TIMEOUT })) as { pid: number };
      expect(pid).not.toBe(process.pid);
      pids.add(pid);
    }
    expect(pids.size).toBe(4);
    await eventually(() => iso.stats().ready === 2);
    expect(iso.stats()).toMatchObject({ started: 6, crashed: 0, completed: 4 });
    // Spent processes exit by themselves.
    await eventually(() => [...pids].every((pid) => !isAlive(pid)));
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
    const e = await expectCaxtonError(job, 'isolation_failure', /^the isolated process exited with signal SIGKILL during the request$/);
    expect(e.details).toMatchObject({ signal: 'SIGKILL', pid: childPid });
    const crashed = iso.stats().crashed;
    expect(crashed).toBeGreaterThanOrEqual(1);
    await expect(iso.run({ op: 'echo', after: 'kill' }, { timeoutMs: OK_TIMEOUT })).resolves.toEqual({ op: 'echo', after: 'kill' });
  });

  it('kills the process of a cancelled job', async () => {
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

  it('kills the process of a running job on close()', async () => {
    const own = createIsolation('process', { taskModule: TASKS, poolSize: 1, output: 'ignore' });
    await own.warm();
    let childPid = 0;
    const job = own.run({ op: 'pid-then-wait' }, { timeoutMs: OK_TIMEOUT, onEvent: (e) => (childPid = (e as { pid: number }).pid) });
    await eventually(() => childPid !== 0);
    const outcome = expectCaxtonError(job, 'not_ready'); // handle the rejection before close() triggers it
    await own.close();
    await outcome;
    expect(isAlive(childPid)).toBe(false);
  });
});
