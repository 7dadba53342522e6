/**
 * Durable runs in one server (docs/runs.md): each isolation mode records the same steps (from a
 * worker or a child process through the host call `run_steps`); an Idempotency-Key makes
 * concurrent and repeated requests one run; the resumption rule (`replayOf`) and the journal
 * over a real SQLite file.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { approvalsOf, replayOf, RUNS_MIGRATIONS, SqliteRunJournal, type RunStep } from '../../src/execution/index.js';
import { RefusalTally, RunRecorder } from '../../src/execution/runs/run-recorder.js';
import type { ExecutionJob } from '../../src/execution/types.js';
import { ToolRegistry } from '../../src/tools/index.js';
import { migrate, openDatabase } from '../../src/storage/index.js';
import { openaiProvider, removeTempDirs, setTestKeys, startCaxton, tempDir, type Caxton } from './helpers/caxton.js';
import { startLlmStub, type LlmStub } from './helpers/llm-stub.js';

let stub: LlmStub;
let cx: Caxton;

beforeAll(async () => {
  setTestKeys();
  // One calculator call, then the answer with its result.
  stub = await startLlmStub((hit) => {
    const tool = (hit.body.messages as { role: string; content: string }[]).find((m) => m.role === 'tool');
    if (tool) return { content: `result ${tool.content}`, delayMs: 150 };
    return { tool_calls: [{ id: 'c1', name: 'calculator', arguments: { expression: '6*7' } }] };
  });
  cx = await startCaxton({
    config: { llm: { default_provider: 'stub', providers: { stub: openaiProvider(stub.url) } } },
  });
  for (const isolation of ['context', 'worker', 'process'])
    await cx.deploy({
      name: `calc-${isolation}`,
      system_prompt: 'Use the calculator.',
      tools: ['calculator'],
      execution: { isolation },
    });
});

afterAll(async () => {
  await cx?.close();
  await stub?.close();
  removeTempDirs();
});

interface RunView {
  id: string;
  status: string;
  origin: string;
  steps: RunStep[];
  response: { content: string } | null;
}

async function runOf(id: string): Promise<RunView> {
  const r = await fetch(`${cx.url}/api/v1/runs/${id}`);
  expect(r.status).toBe(200);
  return (await r.json()) as RunView;
}

describe('every isolation mode records the same steps', () => {
  for (const isolation of ['context', 'worker', 'process'])
    it(`${isolation}: a model reply, the call's end, the answer`, async () => {
      const r = await cx.invoke(`calc-${isolation}`, { request: 'six times seven' });
      expect(r.status, r.text).toBe(200);
      expect(r.json.content).toBe('result 42');
      const run = await runOf(r.json.execution_id);
      expect(run.status).toBe('completed');
      expect(run.origin).toBe('invoke');
      // The calculator is idempotent: found unfinished it would run again, so its start is not written.
      expect(run.steps.map((s) => s.kind)).toEqual(['model', 'tool_end', 'model']);
      expect(run.steps[1]).toMatchObject({ kind: 'tool_end', name: 'calculator', result: '42', is_error: false });
      expect(run.response?.content).toBe('result 42');
      // Each step carries when it was committed, whichever thread or process ran the agent, in order.
      const at = run.steps.map((s) => s.at);
      for (const t of at) expect(t).toBeTypeOf('number');
      expect([...(at as number[])].sort((a, b) => a - b)).toEqual(at);
    });
});

describe('Idempotency-Key', () => {
  it('concurrent requests with one key are one run; a repeat answers from the record without the model', async () => {
    const before = stub.hits.length;
    const headers = { 'idempotency-key': 'same-work' };
    const [a, b] = await Promise.all([
      cx.invoke('calc-context', { request: 'six times seven' }, headers),
      cx.invoke('calc-context', { request: 'six times seven' }, headers),
    ]);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(a.json.execution_id).toBe(b.json.execution_id);
    expect(stub.hits.length - before).toBe(2);
    const c = await cx.invoke('calc-context', { request: 'six times seven' }, headers);
    expect(c.json.execution_id).toBe(a.json.execution_id);
    expect(c.json.content).toBe('result 42');
    expect(stub.hits.length - before).toBe(2);
    // Another key is another run.
    const d = await cx.invoke('calc-context', { request: 'six times seven' }, { 'idempotency-key': 'other' });
    expect(d.json.execution_id).not.toBe(a.json.execution_id);
  });

  it('a background start repeated while its run goes on is answered at once with the same run', async () => {
    const start = () =>
      fetch(`${cx.url}/api/v1/agents/calc-context/runs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': 'bg-same' },
        body: JSON.stringify({ request: 'six times seven' }),
      }).then(async (r) => ({ status: r.status, body: (await r.json()) as { run_id: string } }));
    const first = await start();
    const second = await start();
    expect([first.status, second.status]).toEqual([202, 202]);
    expect(second.body.run_id).toBe(first.body.run_id);
    // Answered before the run ended (its model's last turn takes 150 ms).
    expect((await runOf(first.body.run_id)).status).toBe('running');
  });

  it('a cancelled run says it was cancelled', async () => {
    const r = await fetch(`${cx.url}/api/v1/agents/calc-context/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ request: 'six times seven' }),
    });
    const id = ((await r.json()) as { run_id: string }).run_id;
    const cancelled = (await (await fetch(`${cx.url}/api/v1/runs/${id}/cancel`, { method: 'POST' })).json()) as {
      status: string;
      error: { message: string };
    };
    expect(cancelled.status).toBe('cancelled');
    expect(cancelled.error.message).toBe('the run was cancelled');
  });

  it('a malformed key is refused naming the header', async () => {
    const r = await cx.invoke('calc-context', { request: 'x' }, { 'idempotency-key': 'has space' });
    expect(r.status).toBe(400);
    expect(r.json.error.details.field).toBe('Idempotency-Key');
  });

  it('an unknown run is 404 on every run route', async () => {
    expect((await fetch(`${cx.url}/api/v1/runs/exec_nope`)).status).toBe(404);
    expect((await fetch(`${cx.url}/api/v1/runs/exec_nope/cancel`, { method: 'POST' })).status).toBe(404);
    const approve = await fetch(`${cx.url}/api/v1/runs/exec_nope/approve`, { method: 'POST' });
    expect(approve.status, await approve.text()).toBe(404);
  });
});

describe('the resumption rule', () => {
  const model = (turn: number, ids: string[]): RunStep => ({
    kind: 'model',
    turn,
    reply: {
      content: '',
      tool_calls: ids.map((id) => ({ id, name: id.startsWith('r') ? 'reader' : 'writer', arguments: {} })),
      usage: { input_tokens: 1, output_tokens: 1, total_tokens: 2 },
      finish_reason: 'tool_calls',
      provider: 'p',
      model: 'm',
      latency_ms: 1,
    },
  });
  it('reuses finished calls, reruns an idempotent unfinished one, and does not rerun any other', () => {
    const steps: RunStep[] = [
      model(1, ['w1', 'r1', 'w2']),
      { kind: 'tool_start', turn: 1, id: 'w1', name: 'writer' },
      { kind: 'tool_end', turn: 1, id: 'w1', name: 'writer', result: 'wrote', is_error: false, duration_ms: 1 },
      { kind: 'tool_start', turn: 1, id: 'r1', name: 'reader' },
      { kind: 'tool_start', turn: 1, id: 'w2', name: 'writer' },
    ];
    const replay = replayOf(steps, (tool) => tool === 'reader');
    expect(replay.models[1]?.tool_calls).toHaveLength(3);
    expect(replay.tools['1:w1']).toEqual({ state: 'done', result: 'wrote', is_error: false, duration_ms: 1 });
    expect(replay.tools['1:r1']).toEqual({ state: 'rerun' });
    expect(replay.tools['1:w2']).toEqual({ state: 'interrupted' });
    // The same call id in a later turn is another call.
    expect(replay.tools['2:w1']).toBeUndefined();
  });

  it('a refused call stays refused when its run resumes: all_tool_calls_refused is decided the same', () => {
    const steps: RunStep[] = [
      model(1, ['w1']),
      {
        kind: 'tool_end',
        turn: 1,
        id: 'w1',
        name: 'writer',
        result: 'tool "writer" is not allowed',
        is_error: true,
        duration_ms: 0,
        refused: true,
      },
    ];
    const replay = replayOf(steps, () => false);
    expect(replay.tools['1:w1']).toMatchObject({ state: 'done', refused: true });
    const job = { replay, execution_id: 'exec_x' } as unknown as ExecutionJob;
    const recorder = new RunRecorder(job, new ToolRegistry(), undefined);
    const reused = recorder.reused(1, { id: 'w1', name: 'writer', arguments: {} })!;
    expect(reused).toEqual({ content: 'tool "writer" is not allowed', is_error: true, duration_ms: 0, refused: true });
    const tally = new RefusalTally();
    tally.count(reused);
    expect(tally.allRefused).toBe(true);
    // One call that ran (or a person denied) among them: not all refused.
    tally.count({ refused: undefined });
    expect(tally.allRefused).toBe(false);
    expect(new RefusalTally().allRefused).toBe(false);
  });

  it('approvals: asked, then decided', () => {
    const steps: RunStep[] = [
      { kind: 'approval_requested', turn: 1, id: 'w1', name: 'writer', arguments: { a: 1 }, at: 5 },
      { kind: 'approval', turn: 1, id: 'w1', decision: 'denied', by: 'key:ops', at: 9, reason: 'no' },
      { kind: 'approval_requested', turn: 2, id: 'w2', name: 'writer', arguments: {}, at: 10 },
    ];
    expect(replayOf(steps, () => false).approvals).toEqual({
      '1:w1': { decision: 'denied', reason: 'no' },
      '2:w2': {},
    });
    expect(approvalsOf(steps).map((a) => [a.call_id, a.decision, a.decided_by])).toEqual([
      ['w1', 'denied', 'key:ops'],
      ['w2', null, null],
    ]);
  });
});

describe('SqliteRunJournal', () => {
  it('commits steps in order, finds a run by its key, survives reopening, lists what is unfinished', async () => {
    const dir = tempDir('caxton-journal-');
    const file = join(dir, 'caxton.db');
    let db = openDatabase(dir);
    migrate(db, RUNS_MIGRATIONS);
    let j = new SqliteRunJournal({ db, retentionMs: 60_000 });
    const start = {
      key: 'msg:m1:a',
      agent: 'a',
      origin: 'message' as const,
      principal: null,
      request: { request: 'r' },
    };
    const opened = await j.open({ id: 'exec_1', ...start });
    expect(opened.created).toBe(true);
    await j.append('exec_1', [{ kind: 'tool_start', turn: 1, id: 'c', name: 't' }]);
    await j.append('exec_1', [
      { kind: 'tool_end', turn: 1, id: 'c', name: 't', result: 'ok', is_error: false, duration_ms: 1 },
    ]);
    j.close();
    db.close();

    db = openDatabase(dir);
    j = new SqliteRunJournal({ db, retentionMs: 60_000 });
    const again = await j.open({ id: 'exec_2', ...start });
    expect(again.created).toBe(false);
    expect(again.run.id).toBe('exec_1');
    expect(again.steps.map((s) => s.kind)).toEqual(['tool_start', 'tool_end']);
    expect((await j.unfinished(10)).map((r) => r.id)).toEqual(['exec_1']);
    await j.append('exec_1', [{ kind: 'tool_start', turn: 2, id: 'd', name: 't' }]);
    await j.finish('exec_1', { status: 'failed', error: { code: 'timeout', message: 'slow' } });
    expect(await j.unfinished(10)).toEqual([]);
    const got = await j.get('exec_1');
    expect(got?.steps).toHaveLength(3);
    expect(got?.run.error).toEqual({ code: 'timeout', message: 'slow' });
    j.close();
    db.close();
    expect(file).toContain('caxton.db');
  });
});
