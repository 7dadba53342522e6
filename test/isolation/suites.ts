import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createIsolation,
  type Isolation,
  type IsolationMode,
  type IsolationOptions,
  type RunOptions,
} from '../../src/execution/isolation/index.js';
import { CaxtonError } from '../../src/shared/errors.js';
import { ensureBuilt, eventually, expectCaxtonError, fixture, OK_TIMEOUT, TASKS } from './helpers.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** How a task module saw an error (see `describe` in tasks.mjs). */
interface SeenError {
  isError: boolean;
  name: string;
  message: string;
  code?: string;
  details?: unknown;
}

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
      const result = await iso.run(
        { op: 'events', count: 200 },
        { timeoutMs: OK_TIMEOUT, onEvent: (e) => seen.push(e) },
      );
      expect(result).toEqual({ done: 200 });
      expect(seen).toEqual(Array.from({ length: 200 }, (_, i) => ({ seq: i })));
    });

    it('reports a throwing task as a CaxtonError with its message, then runs the next job', async () => {
      const e = await expectCaxtonError(
        iso.run({ op: 'throw', message: 'kaboom' }, { timeoutMs: OK_TIMEOUT }),
        'internal',
        /^kaboom$/,
      );
      expect((e.cause as Error).stack).toContain('kaboom');
      await expect(iso.run({ op: 'echo', v: 1 }, { timeoutMs: OK_TIMEOUT })).resolves.toEqual({ op: 'echo', v: 1 });
    });

    it('keeps a Caxton error code and details thrown by the task', async () => {
      const e = await expectCaxtonError(
        iso.run({ op: 'throw-coded' }, { timeoutMs: OK_TIMEOUT }),
        'llm_error',
        /upstream model failed/,
      );
      expect(e.details).toEqual({ provider: 'test' });
    });

    it('cancels a running job through its AbortSignal, then runs the next job', async () => {
      const ac = new AbortController();
      const job = iso.run(
        { op: 'wait-signal' },
        { timeoutMs: OK_TIMEOUT, signal: ac.signal, onEvent: () => ac.abort() },
      );
      await expectCaxtonError(job, 'cancelled', /cancelled/);
      await expect(iso.run({ op: 'echo', v: 2 }, { timeoutMs: OK_TIMEOUT })).resolves.toEqual({ op: 'echo', v: 2 });
    });

    it('fails at once when the signal is already aborted', async () => {
      await expectCaxtonError(
        iso.run({ op: 'echo' }, { timeoutMs: OK_TIMEOUT, signal: AbortSignal.abort() }),
        'cancelled',
      );
    });

    it('rejects a missing or invalid timeoutMs', async () => {
      await expectCaxtonError(iso.run({ op: 'echo' }, { timeoutMs: 0 }), 'invalid_request', /timeoutMs/);
    });

    it('fails a job whose onEvent callback throws', async () => {
      const job = iso.run(
        { op: 'events', count: 5 },
        {
          timeoutMs: OK_TIMEOUT,
          onEvent: () => {
            throw new Error('listener bug');
          },
        },
      );
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

  hostCallSuite(mode, options);
}

/** The task asks the parent (`ctx.call` → `RunOptions.onCall`); the same cases in every mode. */
function hostCallSuite(mode: IsolationMode, options: Partial<IsolationOptions>): void {
  describe(`${mode} isolation: host calls`, () => {
    let iso: Isolation;
    beforeAll(async () => {
      await ensureBuilt();
      iso = createIsolation(mode, { taskModule: TASKS, poolSize: 2, ...options });
      await iso.warm();
    }, 120_000);
    afterAll(() => iso?.close());

    const echoWorks = async (v: unknown): Promise<void> => {
      await expect(iso.run({ op: 'echo', v }, { timeoutMs: OK_TIMEOUT })).resolves.toEqual({ op: 'echo', v });
    };

    it('answers a call from the task with the value the host returned', async () => {
      const seen: [string, unknown][] = [];
      const onCall = async (method: string, args: unknown): Promise<unknown> => {
        seen.push([method, args]);
        return { answer: 42, echoed: args, when: new Date(0) };
      };
      const args = { key: 'k1', list: [1, 2, 3], nested: { ok: true } };
      await expect(iso.run({ op: 'call', method: 'lookup', args }, { timeoutMs: OK_TIMEOUT, onCall })).resolves.toEqual(
        { answer: 42, echoed: args, when: new Date(0) },
      );
      expect(seen).toEqual([['lookup', args]]);
    });

    it('gives the task the error the host threw, with its code and details', async () => {
      const onCall = async (): Promise<unknown> => {
        throw new CaxtonError('tool_not_allowed', 'no such luck', { tool: 'x' });
      };
      const { error } = (await iso.run(
        { op: 'call-catch', method: 'm', args: null },
        { timeoutMs: OK_TIMEOUT, onCall },
      )) as { error: SeenError };
      expect(error).toEqual({
        isError: true,
        name: 'CaxtonError',
        message: 'no such luck',
        code: 'tool_not_allowed',
        details: { tool: 'x' },
      });
      // Rethrown by the task, it fails the job with the same code and details.
      const e = await expectCaxtonError(
        iso.run({ op: 'call', method: 'm' }, { timeoutMs: OK_TIMEOUT, onCall }),
        'tool_not_allowed',
        /^no such luck$/,
      );
      expect(e.details).toEqual({ tool: 'x' });
      // A handler that throws synchronously instead of rejecting.
      const throwsSync = ((): never => {
        throw new Error('sync boom');
      }) as unknown as RunOptions['onCall'];
      await expectCaxtonError(
        iso.run({ op: 'call', method: 'm' }, { timeoutMs: OK_TIMEOUT, onCall: throwsSync }),
        'internal',
        /^sync boom$/,
      );
      await echoWorks('after errors');
    });

    it('runs concurrent calls of one task side by side and answers each on its own', async () => {
      const n = 10;
      const parked: (() => void)[] = [];
      // Answers only once all n calls are in flight at the same time, in reverse order: calls
      // handled one after the other would never get there (and the job would time out).
      const onCall = (method: string, args: unknown): Promise<unknown> =>
        new Promise((resolve, reject) => {
          const i = args as number;
          parked.push(() =>
            i % 3 === 2 ? reject(new CaxtonError('not_found', `no ${method} for ${i}`, { i })) : resolve(i * 2),
          );
          if (parked.length === n) for (const answer of parked.reverse()) answer();
        });
      const results = (await iso.run(
        { op: 'call-many', method: 'double', count: n },
        { timeoutMs: OK_TIMEOUT, onCall },
      )) as ({ value: number } | { error: SeenError })[];
      expect(results).toHaveLength(n);
      results.forEach((r, i) => {
        if (i % 3 === 2)
          expect(r).toEqual({
            error: expect.objectContaining({ code: 'not_found', message: `no double for ${i}`, details: { i } }),
          });
        else expect(r).toEqual({ value: i * 2 });
      });
    });

    it('rejects calls with not_supported when the job has no onCall', async () => {
      const { error } = (await iso.run(
        { op: 'call-catch', method: 'anything', args: 1 },
        { timeoutMs: OK_TIMEOUT },
      )) as { error: SeenError };
      expect(error).toMatchObject({ isError: true, code: 'not_supported', details: { method: 'anything' } });
      expect(error.message).toMatch(/host method "anything".*without a host call handler \(RunOptions\.onCall\)/);
      await expectCaxtonError(
        iso.run({ op: 'call', method: 'anything' }, { timeoutMs: OK_TIMEOUT }),
        'not_supported',
        /"anything"/,
      );
    });

    it('drops the answer of a call in flight when its job is cancelled or times out, then runs the next job', async () => {
      for (const outcome of ['value', 'error'] as const) {
        const ac = new AbortController();
        let answered!: () => void;
        const done = new Promise<void>((r) => (answered = r));
        const onCall = async (): Promise<unknown> => {
          ac.abort();
          await sleep(50);
          answered();
          if (outcome === 'error') throw new CaxtonError('tool_error', 'late failure');
          return 'late value';
        };
        await expectCaxtonError(
          iso.run({ op: 'call', method: 'slow' }, { timeoutMs: OK_TIMEOUT, signal: ac.signal, onCall }),
          'cancelled',
        );
        await done;
        await sleep(20); // the late answer goes nowhere
        await echoWorks(`after cancelled call (${outcome})`);
      }
      // Timeout: the handler is still running when the job's deadline passes.
      let finished = false;
      // The deadline leaves room for the job to reach its call on a loaded machine (with 200 ms a CI
      // run timed out before the call was made, so the handler never ran); the handler outlives it.
      const slow = async (): Promise<unknown> => {
        await sleep(1_800);
        finished = true;
        return 'too late';
      };
      await expectCaxtonError(iso.run({ op: 'call', method: 'slow' }, { timeoutMs: 1_200, onCall: slow }), 'timeout');
      await eventually(() => finished);
      await echoWorks('after timed-out call');
    });

    it('ignores the answer to a call the task left behind when it returned', async () => {
      let finished = false;
      const onCall = async (): Promise<unknown> => {
        await sleep(100);
        finished = true;
        return 'for nobody';
      };
      await expect(
        iso.run({ op: 'call-and-return', method: 'slow' }, { timeoutMs: OK_TIMEOUT, onCall }),
      ).resolves.toEqual({ returned: true });
      await eventually(() => finished);
      await sleep(20);
      // The next jobs (on the same worker, in worker mode) get their own answers only.
      for (let i = 0; i < 3; i++) {
        await expect(
          iso.run(
            { op: 'call', method: 'next', args: i },
            { timeoutMs: OK_TIMEOUT, onCall: async (_m, a) => ({ got: a }) },
          ),
        ).resolves.toEqual({ got: i });
      }
    });

    it('never reaches the host with a call made after the job was cancelled', async () => {
      const late = globalThis as { __caxtonLateCall?: unknown };
      delete late.__caxtonLateCall;
      const ac = new AbortController();
      let calls = 0;
      const job = iso.run(
        { op: 'wait-then-call', waitMs: 100 },
        {
          timeoutMs: OK_TIMEOUT,
          signal: ac.signal,
          onEvent: () => ac.abort(),
          onCall: async () => {
            calls++;
            return 'must not happen';
          },
        },
      );
      await expectCaxtonError(job, 'cancelled');
      if (mode === 'context') {
        // The task keeps running in this process: its call is refused with the job's abort reason.
        await eventually(() => late.__caxtonLateCall !== undefined);
        expect(late.__caxtonLateCall).toMatchObject({ error: { code: 'cancelled' } });
      } else {
        // The task's call is refused in its thread/process, with the job's abort reason.
        await sleep(300);
      }
      expect(calls).toBe(0);
      await echoWorks('after a late call');
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
      // A loop never reads its cancellation: the member is killed once the grace has passed.
      await eventually(() => iso.stats().killed === killedBefore + 1);
      await echoWorks(1);
    });

    it('fails a job whose task calls process.exit(1), then runs the next job', async () => {
      await expectCaxtonError(
        iso.run({ op: 'exit', code: 1 }, { timeoutMs: OK_TIMEOUT }),
        'isolation_failure',
        new RegExp(`${executor} exited with code 1 during the request`),
      );
      await echoWorks(2);
    });

    it('fails a job whose task throws an uncaught exception, then runs the next job', async () => {
      await expectCaxtonError(
        iso.run({ op: 'uncaught' }, { timeoutMs: OK_TIMEOUT }),
        'isolation_failure',
        new RegExp(`${executor} crashed during the request: .*uncaught in a timer`),
      );
      await echoWorks(3);
    });

    it('rejects a host call whose arguments cannot be cloned, in the task', async () => {
      let calls = 0;
      const result = await iso.run({ op: 'call-uncloneable' }, { timeoutMs: OK_TIMEOUT, onCall: async () => ++calls });
      expect(result).toMatchObject({
        error: {
          isError: true,
          code: 'invalid_request',
          message: expect.stringMatching(/arguments of host call "m" cannot be sent/),
        },
      });
      expect(calls).toBe(0);
    });

    it('turns a host answer that cannot be cloned into an error for the task', async () => {
      const result = await iso.run(
        { op: 'call-catch', method: 'fn' },
        { timeoutMs: OK_TIMEOUT, onCall: async () => () => 1 },
      );
      expect(result).toMatchObject({
        error: {
          isError: true,
          code: 'internal',
          message: expect.stringMatching(new RegExp(`answer to host call "fn" cannot be sent to the ${executor}`)),
        },
      });
      await echoWorks(6);
    });

    it('rejects a payload that cannot be cloned, then runs the next job', async () => {
      await expectCaxtonError(
        iso.run({ op: 'echo', fn: () => 1 }, { timeoutMs: OK_TIMEOUT }),
        'invalid_request',
        /payload cannot be sent/,
      );
      await echoWorks(4);
    });

    it('runs more jobs than it has executors', async () => {
      const jobs = Array.from({ length: 5 }, (_, i) =>
        iso.run({ op: 'sleep', ms: 100 + i }, { timeoutMs: OK_TIMEOUT }),
      );
      await expect(Promise.all(jobs)).resolves.toEqual(Array.from({ length: 5 }, (_, i) => ({ slept: 100 + i })));
    });

    it('times out a job that waits too long for an executor with room', async () => {
      const small = createIsolation(mode, { taskModule: TASKS, poolSize: 1, memberConcurrency: 1, output: 'ignore' });
      try {
        await small.warm();
        const long = small.run({ op: 'sleep', ms: 1_500 }, { timeoutMs: OK_TIMEOUT });
        const queued = small.run({ op: 'echo' }, { timeoutMs: 300 });
        await expectCaxtonError(
          queued,
          'timeout',
          new RegExp(`waiting for a free ${mode === 'worker' ? 'worker thread' : 'process'}`),
        );
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
      const e = await expectCaxtonError(
        iso.run({ op: 'oom' }, { timeoutMs: 25_000 }),
        'isolation_failure',
        new RegExp(`${executor} ran out of memory \\(heap limit 64 MB\\)`),
      );
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
        await expectCaxtonError(
          iso.run({ op: 'echo' }, { timeoutMs: OK_TIMEOUT }),
          'isolation_failure',
          /broken on purpose/,
        );
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
      const iso = createIsolation(mode, {
        taskModule: fixture('slow-module.mjs'),
        poolSize: 1,
        startTimeoutMs: 500,
        output: 'ignore',
      });
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
        await expectCaxtonError(
          iso.run({ op: 'exit', code: 3 }, { timeoutMs: OK_TIMEOUT }),
          'isolation_failure',
          /code 3/,
        );
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
