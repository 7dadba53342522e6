/**
 * Isolation modes through the real invoke API: the same agent gives the same answer in
 * `context`, `worker` and `process` mode (chosen per agent or server-wide), `process` jobs run on
 * a warm process reused while they leave no process state behind, and a process killed with SIGKILL mid-request fails only that
 * request (500 isolation_failure) while the next one succeeds.
 *
 * Worker threads and child processes load the compiled task module from dist/: `npm test` builds
 * first (pretest); when running vitest directly, run `npm run build` before.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  childPids,
  expectEnvelope,
  isAlive,
  openaiProvider,
  removeTempDirs,
  setTestKeys,
  startCaxton,
  type Caxton,
} from './helpers/caxton.js';
import { hang, startLlmStub, type LlmStub, type Reply, type StubHit } from './helpers/llm-stub.js';
import { assistantTurns, toolResultsOf } from './helpers/wire.js';

type Mode = 'context' | 'worker' | 'process';
type ProcessStats = {
  mode: string;
  started: number;
  completed: number;
  failed: number;
  crashed: number;
  killed: number;
  recycled: number;
  ready: number;
  busy: number;
  starting: number;
};

/** A two-turn tool loop whose answer quotes the calculator result it received. */
const toolLoop = (hit: StubHit): Reply => {
  if (assistantTurns(hit) === 0)
    return {
      content: 'Working. ',
      tool_calls: [{ id: 'iso_calc', name: 'calculator', arguments: { expression: '6*7' } }],
      usage: { input: 7, output: 3 },
    };
  return {
    content: `Result: ${toolResultsOf(hit)[0]?.content ?? '?'} (from the tool).`,
    usage: { input: 12, output: 6 },
  };
};

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function comparable(r: any) {
  return {
    content: r.content,
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    tool_calls: r.tool_calls.map(({ duration_ms: _d, ...rest }: any) => rest),
    usage: r.usage,
    finish_reason: r.finish_reason,
    provider: r.provider,
    model: r.model,
    turns: r.turns,
  };
}

function poolStats(cx: Caxton, mode: Mode): ProcessStats | undefined {
  return (cx.server.executor.stats() as ProcessStats[]).find((s) => s.mode === mode);
}

const stubs: LlmStub[] = [];
async function stub(script: Parameters<typeof startLlmStub>[0]): Promise<LlmStub> {
  const s = await startLlmStub(script);
  stubs.push(s);
  return s;
}

beforeAll(() => setTestKeys());
afterAll(async () => {
  for (const s of stubs) await s.close();
  removeTempDirs();
});

describe('per-agent isolation on a context server', () => {
  let cx: Caxton;
  let llm: LlmStub;
  let silent: LlmStub;
  let never: LlmStub;

  beforeAll(async () => {
    llm = await stub(toolLoop);
    silent = await stub([hang]);
    never = await stub([hang]);
    cx = await startCaxton({
      config: {
        llm: {
          default_provider: 'oai',
          providers: {
            oai: openaiProvider(llm.url),
            silent: openaiProvider(silent.url, { timeout: '300ms', max_retries: 0 }),
            never: openaiProvider(never.url),
          },
        },
        execution: { pool_size: 1 },
      },
    });
    for (const mode of ['context', 'worker', 'process'] as const) {
      await cx.deploy({
        name: `iso-${mode}`,
        tools: ['calculator'],
        system_prompt: 'Same agent, any isolation.',
        ...(mode !== 'context' && { execution: { isolation: mode } }),
      });
    }
    await cx.deploy({ name: 'proc-silent', llm: { provider: 'silent' }, execution: { isolation: 'process' } });
    await cx.deploy({
      name: 'worker-impatient',
      llm: { provider: 'never' },
      limits: { timeout: '1500ms' },
      execution: { isolation: 'worker' },
    });
  });
  afterAll(async () => {
    await cx?.close();
  });

  it('gives the same result in context, worker and process mode, and says which ran', async () => {
    const results: Record<string, unknown> = {};
    const bodies: Record<string, string[]> = {};
    for (const mode of ['context', 'worker', 'process'] as const) {
      llm.reset();
      const res = await cx.invoke(`iso-${mode}`, { request: 'what is 6*7?' });
      expect(res.status, `${mode}: ${res.text}`).toBe(200);
      expect(res.json.isolation).toBe(mode);
      expect(res.json.content).toBe('Result: 42 (from the tool).');
      results[mode] = comparable(res.json);
      bodies[mode] = llm.hits.map((h) => h.raw);
    }
    expect(results.worker).toEqual(results.context);
    expect(results.process).toEqual(results.context);
    expect(results.context).toMatchObject({
      turns: 2,
      finish_reason: 'stop',
      usage: { input_tokens: 19, output_tokens: 9, total_tokens: 28 },
    });
    // The provider saw the very same requests whatever the isolation.
    expect(bodies.worker).toEqual(bodies.context);
    expect(bodies.process).toEqual(bodies.context);
    expect(bodies.context).toHaveLength(2);
    expect(poolStats(cx, 'worker')).toMatchObject({ completed: 1 });
    expect(poolStats(cx, 'process')).toMatchObject({ completed: 1 });
  });

  it('streams events across the thread and process boundary', async () => {
    for (const mode of ['worker', 'process'] as const) {
      const { events } = await cx.invokeStream(`iso-${mode}`, { request: 'stream 6*7' });
      const kinds = events.map((e) => e.event);
      expect(kinds.at(-1), mode).toBe('response');
      expect(kinds).toContain('token');
      expect(kinds.indexOf('tool_result')).toBeGreaterThan(kinds.indexOf('tool_call'));
      expect(
        events
          .filter((e) => e.event === 'token')
          .map((e) => e.json.text as string)
          .join(''),
      ).toBe('Working. Result: 42 (from the tool).');
      expect(events.at(-1)!.json).toMatchObject({ isolation: mode, content: 'Result: 42 (from the tool).' });
    }
  });

  it('a provider timeout inside a process is reported as the provider\'s timeout (504, details.kind "timeout"), not the agent\'s', async () => {
    const res = await cx.invoke('proc-silent', { request: 'hi' });
    const err = expectEnvelope(res, 504, 'timeout');
    expect(err.details).toMatchObject({ provider: 'silent', kind: 'timeout' });
    expect(err.message).toContain('"silent"');
    expect(err.message).not.toContain('limits.timeout');
  });

  it("the agent's [limits] timeout in worker mode → 504 naming limits.timeout", async () => {
    const res = await cx.invoke('worker-impatient', { request: 'hi' });
    const err = expectEnvelope(res, 504, 'timeout');
    expect(err.message).toContain('limits.timeout');
    expect(err.details).toEqual({ timeout_ms: 1500 });
    // The thread was terminated and replaced; the pool still works.
    const ok = await cx.invoke('iso-worker', { request: 'again 6*7' });
    expect(ok.status, ok.text).toBe(200);
  });
});

describe('server-wide worker isolation', () => {
  let cx: Caxton;
  beforeAll(async () => {
    const llm = await stub(toolLoop);
    cx = await startCaxton({
      config: {
        llm: { providers: { oai: openaiProvider(llm.url) } },
        execution: { isolation: 'worker', pool_size: 1 },
      },
    });
    await cx.deploy({ name: 'plain', tools: ['calculator'] });
    await cx.deploy({ name: 'pinned', tools: ['calculator'], execution: { isolation: 'context' } });
  });
  afterAll(async () => {
    await cx?.close();
  });

  it('runs agents without their own setting on worker threads; a per-agent setting wins', async () => {
    const a = await cx.invoke('plain', { request: '6*7' });
    expect(a.status, a.text).toBe(200);
    expect(a.json).toMatchObject({ isolation: 'worker', content: 'Result: 42 (from the tool).' });
    const b = await cx.invoke('pinned', { request: '6*7' });
    expect(b.status, b.text).toBe(200);
    expect(b.json).toMatchObject({ isolation: 'context', content: 'Result: 42 (from the tool).' });
    expect(comparable(a.json)).toEqual(comparable(b.json));
    expect(poolStats(cx, 'worker')).toMatchObject({ size: 1, completed: 1 });
  });
});

describe('server-wide process isolation', () => {
  let cx: Caxton;
  let llm: LlmStub;
  let stuck: LlmStub;

  beforeAll(async () => {
    llm = await stub(toolLoop);
    stuck = await stub([hang]);
    cx = await startCaxton({
      config: {
        llm: { default_provider: 'oai', providers: { oai: openaiProvider(llm.url), stuck: openaiProvider(stuck.url) } },
        execution: { isolation: 'process', pool_size: 1 },
      },
    });
    await cx.deploy({ name: 'plain', tools: ['calculator'] });
    await cx.deploy({ name: 'victim', llm: { provider: 'stuck' } });
  });
  afterAll(async () => {
    await cx?.close();
  });

  /** Waits for the pool to be idle: its one process ready, nothing starting or busy. */
  async function settled(): Promise<ProcessStats> {
    await expect
      .poll(() => poolStats(cx, 'process'), { timeout: 15_000 })
      .toMatchObject({ ready: 1, starting: 0, busy: 0 });
    return poolStats(cx, 'process')!;
  }

  it('runs requests on a warm process it reuses: a real execution leaves no process state behind', async () => {
    const s0 = await settled();
    const warm = childPids('process-runner');
    expect(warm).toHaveLength(1);

    for (let i = 0; i < 3; i++) {
      const r = await cx.invoke('plain', { request: '6*7' });
      expect(r.status, r.text).toBe(200);
      expect(r.json).toMatchObject({ isolation: 'process', content: 'Result: 42 (from the tool).' });
    }
    const s1 = await settled();
    expect(childPids('process-runner')).toEqual(warm);
    expect(s1).toMatchObject({
      started: s0.started,
      recycled: s0.recycled,
      crashed: s0.crashed,
      completed: s0.completed + 3,
      failed: s0.failed,
    });
  });

  it('kill -9 of the process running a request fails that request with 500 isolation_failure; the next request succeeds', async () => {
    const s0 = await settled();
    const before = childPids('process-runner');
    expect(before.length).toBeGreaterThanOrEqual(1);

    const inFlight = cx.invoke('victim', { request: 'you will not finish' });
    await stuck.waitForHits(1);
    // The busy process is the pool's one process, which existed before the request.
    const busy = before.filter(isAlive);
    expect(busy.length).toBeGreaterThanOrEqual(1);
    expect(poolStats(cx, 'process')!.busy).toBe(1);
    for (const pid of busy) process.kill(pid, 'SIGKILL');

    const res = await inFlight;
    const err = expectEnvelope(res, 500, 'isolation_failure');
    expect(err.message).toMatch(/isolated process .*SIGKILL.* during the request/);
    expect(err.details).toMatchObject({ signal: 'SIGKILL', reason: 'exit' });
    expect(busy).toContain(err.details.pid);
    // The killed process's connection to the provider went with it.
    await expect.poll(() => stuck.hits[0]!.clientClosed, { timeout: 5_000 }).toBe(true);

    const next = await cx.invoke('plain', { request: '6*7' });
    expect(next.status, next.text).toBe(200);
    expect(next.json).toMatchObject({ isolation: 'process', content: 'Result: 42 (from the tool).' });

    const s1 = await settled();
    expect(s1.failed).toBe(s0.failed + 1);
    expect(s1.completed).toBe(s0.completed + 1);
    expect(s1.crashed).toBeGreaterThanOrEqual(s0.crashed + 1);
    expect(cx.logs.some((l) => l.level === 'fatal')).toBe(false);
  });

  it('a client that goes away mid-request has its run cancelled inside the process, which carries on', async () => {
    const s0 = await settled();
    stuck.reset();
    const ac = new AbortController();
    const res = await fetch(`${cx.url}/api/v1/agents/victim/invoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ request: 'hang on' }),
      signal: AbortSignal.any([ac.signal, AbortSignal.timeout(10_000)]),
    });
    expect(res.status).toBe(200);
    const reading = res.text().catch((e: unknown) => e);
    await stuck.waitForHits(1);
    ac.abort();
    expect(await reading).toBeInstanceOf(Error);
    // The run's signal aborted its model call inside the process: the provider sees the request go.
    await expect.poll(() => stuck.hits[0]!.clientClosed, { timeout: 5_000 }).toBe(true);
    await expect.poll(() => poolStats(cx, 'process')!.busy, { timeout: 5_000 }).toBe(0);
    expect(poolStats(cx, 'process')).toMatchObject({ killed: s0.killed, crashed: s0.crashed });

    const next = await cx.invoke('plain', { request: '6*7' });
    expect(next.status, next.text).toBe(200);
    expect(cx.logs.some((l) => l.level === 'fatal')).toBe(false);
  });
});
