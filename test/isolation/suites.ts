import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIsolation, type Isolation, type IsolationMode, type IsolationOptions } from '../../src/execution/isolation/index.js';
import { ensureBuilt, eventually, expectCaxtonError, fixture, OK_TIMEOUT, TASKS } from './helpers.js';

/** Behaviour every mode shares: results, events, task errors, cancellation. */
export function commonSuite(mode: IsolationMode, options: Partial<IsolationOptions> = {}): void {
  describe(`${mode} isolation: common behaviour`, () => {
    let iso: Isolation;
    beforeAll(async () => {
      await ensureBuilt();
      iso = createIsolation(mode, { taskModule: TASKS, poolSize: 2, ...options });
      await iso.warm();
    }, 120_000);
    afterAll(() => iso?.close());

    it('returns the payload of an echo job', async () => {
      const payload = { op: 'echo', text: 'héllo', n: 42, nested: { list: [1, 2, 3], flag: true } };
      await expect(iso.run(payload, { timeoutMs: OK_TIMEOUT })).resolves.toEqual(payload);
    });

    it('streams events in order before the result', async () => {
      const seen: unknown[] = [];
      const result = await iso.run({ op: 'events', count: 200 }, { timeoutMs: OK_TIMEOUT, onEvent: (e) => seen.push(e) });
      expect(result).toEqual({ done: 200 });
      expect(seen).toEqual(Array.from({ length: 200 }, (_, i) => ({ seq: i })));
    });

    it('reports a throwing task as a CaxtonError with its message, then runs the next job', async () => {
      const e = await expectCaxtonError(iso.run({ op: 'throw', message: 'kaboom' }, { timeoutMs: OK_TIMEOUT }), 'internal', /^kaboom$/);
      expect((e.cause as Error).stack).toContain('kaboom');
      await expect(iso.run({ op: 'echo', v: 1 }, { timeoutMs: OK_TIMEOUT })).resolves.toEqual({ op: 'echo', v: 1 });
    });

    it('keeps a Caxton error code and details thrown by the task', async () => {
      const e = await expectCaxtonError(iso.run({ op: 'throw-coded' }, { timeoutMs: OK_TIMEOUT }), 'llm_error', /upstream model failed/);
      expect(e.details).toEqual({ provider: 'test' });
    });

    it('cancels a running job through its AbortSignal, then runs the next job', async () => {
      const ac = new AbortController();
      const job = iso.run({ op: 'wait-signal' }, { timeoutMs: OK_TIMEOUT, signal: ac.signal, onEvent: () => ac.abort() });
      await expectCaxtonError(job, 'cancelled', /cancelled/);
      await expect(iso.run({ op: 'echo', v: 2 }, { timeoutMs: OK_TIMEOUT })).resolves.toEqual({ op: 'echo', v: 2 });
    });

    it('fails at once when the signal is already aborted', async () => {
      await expectCaxtonError(iso.run({ op: 'echo' }, { timeoutMs: OK_TIMEOUT, signal: AbortSignal.abort() }), 'cancelled');
    });

    it('rejects a missing or invalid timeoutMs', async () => {
      await expectCaxtonError(iso.run({ op: 'echo' }, { timeoutMs: 0 }), 'invalid_request', /timeoutMs/);
    });

    it('fails a job whose onEvent callback throws', async () => {
      const job = iso.run({ op: 'events', count: 5 }, {
        timeoutMs: OK_TIMEOUT,
        onEvent: () => {
          throw new Error('listener bug');
        },
      });
      await expectCaxtonError(job, 'internal', /onEvent callback threw: listener bug/);
      await expect(iso.run({ op: 'echo', v: 3 }, { timeoutMs: OK_TIMEOUT })).resolves.toEqual({ op: 'echo', v: 3 });
    });

    it('counts completed and failed jobs', () => {
      const s = iso.stats();
      expect(s.mode).toBe(mode);
      expect(s.completed).toBeGreaterThanOrEqual(5);
      expect(s.failed).toBeGreaterThanOrEqual(4);
    });
  });
}

/** Behaviour of the pooled modes: hangs, crashes and runaway memory fail only their job. */
export function pooledSuite(mode: 'worker' | 'process'): void {
  const executor = mode === 'worker' ? 'worker thread' : 'isolated process';

  describe(`${mode} isolation: failures stay contained`, () => {
    let iso: Isolation;
    beforeAll(async () => {
      await ensureBuilt();
      iso = createIsolation(mode, { taskModule: TASKS, poolSize: 2, output: 'ignore' });
      await iso.warm();
    }, 120_000);
    afterAll(() => iso?.close());

    const echoWorks = async (v: number): Promise<void> => {
      await expect(iso.run({ op: 'echo', v }, { timeoutMs: OK_TIMEOUT })).resolves.toEqual({ op: 'echo', v });
    };

    it('times out an infinite loop, kills its executor and runs the next job', async () => {
      const killedBefore = iso.stats().killed;
      await expectCaxtonError(iso.run({ op: 'loop' }, { timeoutMs: 300 }), 'timeout', /timed out after 300 ms/);
      expect(iso.stats().killed).toBe(killedBefore + 1);
      await echoWorks(1);
    });

    it('fails a job whose task calls process.exit(1), then runs the next job', async () => {
      await expectCaxtonError(iso.run({ op: 'exit', code: 1 }, { timeoutMs: OK_TIMEOUT }), 'isolation_failure', new RegExp(`${executor} exited with code 1 during the request`));
      await echoWorks(2);
    });

    it('fails a job whose task throws an uncaught exception, then runs the next job', async () => {
      await expectCaxtonError(iso.run({ op: 'uncaught' }, { timeoutMs: OK_TIMEOUT }), 'isolation_failure', new RegExp(`${executor} crashed during the request: .*uncaught in a timer`));
      await echoWorks(3);
    });

    it('rejects a payload that cannot be cloned, then runs the next job', async () => {
      await expectCaxtonError(iso.run({ op: 'echo', fn: () => 1 }, { timeoutMs: OK_TIMEOUT }), 'invalid_request', /payload cannot be sent/);
      await echoWorks(4);
    });

    it('queues jobs when every executor is busy', async () => {
      const jobs = Array.from({ length: 5 }, (_, i) => iso.run({ op: 'sleep', ms: 100 + i }, { timeoutMs: OK_TIMEOUT }));
      await expect(Promise.all(jobs)).resolves.toEqual(Array.from({ length: 5 }, (_, i) => ({ slept: 100 + i })));
    });

    it('times out a job that waits too long for a free executor', async () => {
      const small = createIsolation(mode, { taskModule: TASKS, poolSize: 1, output: 'ignore' });
      try {
        await small.warm();
        const long = small.run({ op: 'sleep', ms: 1_500 }, { timeoutMs: OK_TIMEOUT });
        if (mode === 'process') await eventually(() => small.stats().busy === 1 && small.stats().ready === 0, 5_000).catch(() => {});
        const queued = small.run({ op: 'echo' }, { timeoutMs: 300 });
        if (mode === 'worker') {
          await expectCaxtonError(queued, 'timeout', /waiting for a free worker thread/);
        } else {
          // A one-shot pool refills in the background, so the queued job may get a fresh process.
          await queued.catch((e: unknown) => expect((e as { code?: string }).code).toBe('timeout'));
        }
        await expect(long).resolves.toEqual({ slept: 1_500 });
      } finally {
        await small.close();
      }
    });
  });

  describe(`${mode} isolation: runaway memory`, () => {
    let iso: Isolation;
    beforeAll(async () => {
      await ensureBuilt();
      iso = createIsolation(mode, { taskModule: TASKS, poolSize: 1, maxOldGenerationSizeMb: 64, output: 'ignore' });
      await iso.warm();
    }, 120_000);
    afterAll(() => iso?.close());

    it('fails a memory bomb with a clear out-of-memory error, then runs the next job', async () => {
      const e = await expectCaxtonError(iso.run({ op: 'oom' }, { timeoutMs: 25_000 }), 'isolation_failure', new RegExp(`${executor} ran out of memory \\(heap limit 64 MB\\)`));
      expect(e.details).toMatchObject({ reason: 'out_of_memory', limitMb: 64 });
      expect(iso.stats().crashed).toBe(1);
      await expect(iso.run({ op: 'echo', v: 5 }, { timeoutMs: OK_TIMEOUT })).resolves.toEqual({ op: 'echo', v: 5 });
    }, 60_000);
  });

  describe(`${mode} isolation: lifecycle`, () => {
    beforeAll(() => ensureBuilt(), 120_000);

    it('reports a task module that fails to load, fails jobs fast and backs off', async () => {
      const iso = createIsolation(mode, { taskModule: fixture('broken-module.mjs'), poolSize: 2, output: 'ignore' });
      try {
        await expectCaxtonError(iso.warm(), 'isolation_failure', /could not load the task module: .*broken on purpose/);
        const t0 = Date.now();
        await expectCaxtonError(iso.run({ op: 'echo' }, { timeoutMs: OK_TIMEOUT }), 'isolation_failure', /broken on purpose/);
        expect(Date.now() - t0).toBeLessThan(OK_TIMEOUT / 2);
        await new Promise((r) => setTimeout(r, 1_500));
        // Without backoff this would be dozens of attempts; with it, a handful (100, 200, 400, 800 ms...).
        expect(iso.stats().started).toBeLessThanOrEqual(12);
      } finally {
        await iso.close();
      }
    }, 60_000);

    it('reports a task module without a run function', async () => {
      const iso = createIsolation(mode, { taskModule: fixture('no-run.mjs'), poolSize: 1, output: 'ignore' });
      try {
        await expectCaxtonError(iso.warm(), 'isolation_failure', /does not export a run\(payload, ctx\) function/);
      } finally {
        await iso.close();
      }
    });

    it('gives up on a task module that does not load within startTimeoutMs', async () => {
      const iso = createIsolation(mode, { taskModule: fixture('slow-module.mjs'), poolSize: 1, startTimeoutMs: 500, output: 'ignore' });
      try {
        await expectCaxtonError(iso.warm(), 'isolation_failure', /did not load the task module within 500 ms/);
      } finally {
        await iso.close();
      }
    });

    it('is whole again after an executor crashed', async () => {
      const iso = createIsolation(mode, { taskModule: TASKS, poolSize: 1, output: 'ignore' });
      try {
        await iso.warm();
        // Crash the only executor through a job, then check the pool is whole again.
        await expectCaxtonError(iso.run({ op: 'exit', code: 3 }, { timeoutMs: OK_TIMEOUT }), 'isolation_failure', /code 3/);
        await iso.warm();
        expect(iso.stats()).toMatchObject({ ready: 1, crashed: 1 });
        await expect(iso.run({ op: 'echo' }, { timeoutMs: OK_TIMEOUT })).resolves.toEqual({ op: 'echo' });
      } finally {
        await iso.close();
      }
    });

    it('fails running and later jobs with not_ready after close()', async () => {
      const iso = createIsolation(mode, { taskModule: TASKS, poolSize: 1, output: 'ignore' });
      await iso.warm();
      const running = iso.run({ op: 'sleep', ms: 10_000 }, { timeoutMs: OK_TIMEOUT });
      await eventually(() => iso.stats().busy === 1);
      const outcome = expectCaxtonError(running, 'not_ready', /closed while the job was running/); // handled before close() rejects it
      await iso.close();
      await outcome;
      await expectCaxtonError(iso.run({ op: 'echo' }, { timeoutMs: OK_TIMEOUT }), 'not_ready', /closed/);
      expect(iso.stats()).toMatchObject({ ready: 0, busy: 0 });
    });
  });
}
