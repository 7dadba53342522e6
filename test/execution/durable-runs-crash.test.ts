/**
 * Durable runs across kill -9 (docs/runs.md): a real `caxton serve` child whose agent calls a real
 * stdio MCP server's `append` tool five times, one call per model turn, each call appending its line
 * to a file. The server is killed with SIGKILL at a step boundary (right after a model reply, while
 * a call runs, right after a call ended, during the model's turn), then restarted. The run must
 * finish with the right answer, and each line must be in the file exactly once: a finished call is
 * never run again, and a call interrupted while it ran (the tool is not idempotent) is not
 * repeated: the model is told its outcome is unknown. Runs are started by a message, by invoke
 * with an Idempotency-Key, and in the background.
 */
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, cleanup, type ServeProcess } from '../cli/helpers/cli.js';
import { api, appendDir, appendedLines, onlyRun, startAppendServer, writeAppendConfig } from './helpers/runs.js';
import { startLlmStub, type LlmStub, type StubHit, stubLlmSection } from './helpers/llm-stub.js';
import { waitUntil } from '../helpers/wait.js';

const STEPS = 5;
const FINAL = `all ${STEPS} lines appended`;

type Point = 'before' | 'during' | 'after' | 'model';
type Mode = 'message' | 'invoke' | 'background';

interface Scenario {
  mode: Mode;
  point: Point;
  /** The step at whose boundary the server is killed (1-based). */
  step: number;
}

/** What the current scenario asks the stub to do when it sees the turn after `n` tool results. */
let onTurn: ((n: number, hit: StubHit) => { delayMs?: number } | void) | undefined;
let stub: LlmStub;

function toolResults(hit: StubHit): number {
  return (hit.body.messages as { role: string }[]).filter((m) => m.role === 'tool').length;
}

beforeAll(async () => {
  assertBuilt();
  stub = await startLlmStub((hit) => {
    const n = toolResults(hit);
    const extra = onTurn?.(n, hit) ?? {};
    if (n >= STEPS) return { content: FINAL, ...extra };
    const wire = (hit.body.tools as { function: { name: string } }[])[0]!.function.name;
    return {
      tool_calls: [{ id: `c${n + 1}`, name: wire, arguments: { line: `step-${n + 1}` } }],
      ...extra,
    };
  });
});

afterAll(async () => {
  await cleanup();
  await stub?.close();
});

const writeConfig = (dir: string, hangOn?: string): void =>
  writeAppendConfig(dir, hangOn === undefined ? {} : { hangOn }, {
    llm: stubLlmSection(stub.url),
  });

const setUp = (): string =>
  appendDir({
    writer: {
      name: 'writer',
      capabilities: ['writing'],
      system_prompt: 'Append each step to the journal, one call per turn.',
      tools: ['journal.append'],
    },
  });

const start = (dir: string): Promise<ServeProcess> => startAppendServer(dir, { STUB_KEY: 'k' });

/** Starts the run; resolves with what identifies it once it was started (the request may never answer). */
async function startRun(server: ServeProcess, mode: Mode): Promise<{ id?: string; pending?: Promise<unknown> }> {
  if (mode === 'message') {
    const r = await api<{ id: string }>(server.url, '/api/v1/messages', {
      method: 'POST',
      body: JSON.stringify({ performative: 'request', receiver: 'writer', content: 'append the five steps' }),
    });
    expect(r.status).toBe(202);
    return {};
  }
  if (mode === 'invoke') {
    // Killed mid-request: the client sees its connection fail, and asks again with the same key.
    const pending = api(server.url, '/api/v1/agents/writer/invoke', {
      method: 'POST',
      headers: { 'idempotency-key': 'the-five-steps' },
      body: JSON.stringify({ request: 'append the five steps' }),
    }).catch((e: unknown) => e);
    return { pending };
  }
  const r = await api<{ run_id: string }>(server.url, '/api/v1/agents/writer/runs', {
    method: 'POST',
    body: JSON.stringify({ request: 'append the five steps' }),
  });
  expect(r.status).toBe(202);
  return { id: r.body.run_id };
}

async function scenario(s: Scenario): Promise<void> {
  const dir = setUp();
  const out = join(dir, 'out.txt');
  writeConfig(dir, s.point === 'during' ? `step-${s.step}` : undefined);
  stub.reset();
  let server = await start(dir);
  let killed = false;
  const kill = (): void => {
    if (killed) return;
    killed = true;
    server.child.kill('SIGKILL');
  };
  onTurn = (n) => {
    if (killed) return;
    if (s.point === 'before' && n === s.step - 1) {
      // The reply asking for call `step` leaves; the server dies as it receives it. Killed in the
      // tick that writes the reply, not a timer later: on a loaded machine a timer can fire after
      // the server has started the call, which is the 'during' case with its line never written.
      return { afterSend: kill };
    }
    if (s.point === 'after' && n === s.step) return void kill();
    if (s.point === 'model' && n === s.step) {
      setTimeout(kill, 200);
      return { delayMs: 5_000 };
    }
  };
  const started = await startRun(server, s.mode);
  if (s.point === 'during')
    await waitUntil(() => existsSync(out) && readFileSync(out, 'utf8').includes(`step-${s.step}\n`), {
      timeoutMs: 20_000,
    });
  if (s.point === 'during') kill();
  await waitUntil(() => killed, { timeoutMs: 20_000 });
  await server.exited;
  await started.pending;
  onTurn = undefined;

  writeConfig(dir);
  server = await start(dir);
  let answer: string | undefined;
  if (s.mode === 'invoke') {
    const r = await api<{ content: string }>(server.url, '/api/v1/agents/writer/invoke', {
      method: 'POST',
      headers: { 'idempotency-key': 'the-five-steps' },
      body: JSON.stringify({ request: 'append the five steps' }),
    });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    answer = r.body.content;
  } else {
    await waitUntil(async () => (await onlyRun(server.url)).status === 'completed', { timeoutMs: 30_000 });
    const run = await onlyRun(server.url);
    if (s.mode === 'background') expect(run.id).toBe(started.id);
    const full = await api<{ response: { content: string } }>(server.url, `/api/v1/runs/${run.id}`);
    answer = full.body.response.content;
  }
  const run = await onlyRun(server.url);
  // The resume is a step of its own, after every step recorded before the kill, each with its time.
  const { steps } = (await api<{ steps: { kind: string; at?: number }[] }>(server.url, `/api/v1/runs/${run.id}`)).body;
  server.child.kill('SIGTERM');
  await server.exited;

  expect(answer).toBe(FINAL);
  expect(run.status).toBe('completed');
  expect(run.origin).toBe(s.mode);
  expect(run.resumes).toBe(1);
  expect(steps.filter((x) => x.kind === 'resumed')).toHaveLength(1);
  const times = steps.map((x) => x.at);
  for (const t of times) expect(t).toBeTypeOf('number');
  expect([...(times as number[])].sort((a, b) => a - b)).toEqual(times);
  const lines = appendedLines(dir);
  // Every call that ran did so once: step-1 … step-5, each exactly once, in order.
  expect(lines).toEqual(Array.from({ length: STEPS }, (_, i) => `step-${i + 1}`));
  // The model was asked once per turn, plus at most the one turn the kill interrupted.
  expect(stub.hits.length).toBeLessThanOrEqual(STEPS + 2);
}

const points: Point[] = ['before', 'during', 'after', 'model'];
const modes: Mode[] = ['message', 'invoke', 'background'];

describe('a durable run killed with SIGKILL at each step boundary', () => {
  for (const mode of modes)
    points.forEach((point, i) => {
      const step = ((i + modes.indexOf(mode)) % (STEPS - 1)) + 2;
      it(
        `started by ${mode}, killed ${point} step ${step}: finishes with each side effect once`,
        { timeout: 90_000 },
        () => scenario({ mode, point, step }),
      );
    });
});
