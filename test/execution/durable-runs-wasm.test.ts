/**
 * A WebAssembly agent's run across kill -9 (docs/runs.md): a real `caxton serve` child whose agent
 * is a C module (test/fixtures/wasm-c/appender.c, built with Debian's clang for wasm32) calling a
 * real stdio MCP server's side-effecting `append` tool five times, one call per module turn. The
 * server is killed with SIGKILL while the module computes a turn (between two calls), while a call
 * runs after its effect, and as a call reaches the tool before its effect; then restarted. The run
 * finishes with the right answer, every completed call's line is in the file exactly once, and the
 * module is called again only for the turns whose output was not recorded (it counts its calls).
 * Without that toolchain the file skips, with the helper's one line naming it.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deniedResult } from '../../src/execution/runs/index.js';
import { assertBuilt, cleanup, type ServeProcess } from '../cli/helpers/cli.js';
import { hasSystem } from '../helpers/system.js';
import { waitUntil } from '../helpers/wait.js';
import {
  api,
  appendDir,
  appendedLines,
  onlyRun,
  startAppendServer,
  writeAgent,
  writeAppendConfig,
  type AppendFaults,
} from './helpers/runs.js';
import { buildCFixture } from '../helpers/wasm-c.js';

const haveC = hasSystem('wasm-c');
const STEPS = 5;
const REQUEST = 'append the five steps';

type Point = 'module' | 'during' | 'arrival';
type Mode = 'message' | 'invoke' | 'background';

/**
 * The agent: the module's turns run on a worker thread (fuel above in_thread_fuel), so a turn that
 * spins (`hang_turn`) leaves the server answering while it waits to be killed.
 */
const agent = (hangTurn?: number, extra = ''): string => `name = "appender"
capabilities = ["journaling"]
tools = ["journal.append"]

[wasm]
module = "appender.wasm"
fuel = 2_147_483_647
timeout = "60s"

[parameters]
steps = ${STEPS}
${hangTurn === undefined ? '' : `hang_turn = ${hangTurn}\n`}${extra}`;

/** The operator lets the agent's module have that much fuel and time. */
const LIMITS = { tools: { limits: { fuel: 2_147_483_647, timeout: '60s' } } };

let moduleFile: string;

beforeAll(() => {
  if (!haveC) return;
  assertBuilt();
  moduleFile = join(appendDir({}), 'appender.wasm');
  buildCFixture('appender', moduleFile);
}, 180_000);

afterAll(async () => {
  await cleanup();
});

interface Step {
  kind: string;
  turn: number;
  id?: string;
  interrupted?: boolean;
  reply?: { tool_calls: { id: string; name: string; arguments: Record<string, unknown> }[] };
}

async function stepsOf(url: string, id: string): Promise<Step[]> {
  return (await api<{ steps: Step[] }>(url, `/api/v1/runs/${id}`)).body.steps;
}

async function startRun(server: ServeProcess, mode: Mode): Promise<{ pending?: Promise<unknown> }> {
  if (mode === 'message') {
    const r = await api(server.url, '/api/v1/messages', {
      method: 'POST',
      body: JSON.stringify({ performative: 'request', receiver: 'appender', content: REQUEST }),
    });
    expect(r.status).toBe(202);
    return {};
  }
  if (mode === 'invoke') {
    // Killed mid-request: the client sees its connection fail, and asks again with the same key.
    const pending = api(server.url, '/api/v1/agents/appender/invoke', {
      method: 'POST',
      headers: { 'idempotency-key': 'the-five-steps' },
      body: JSON.stringify({ request: REQUEST }),
    }).catch((e: unknown) => e);
    return { pending };
  }
  const r = await api<{ run_id: string }>(server.url, '/api/v1/agents/appender/runs', {
    method: 'POST',
    body: JSON.stringify({ request: REQUEST }),
  });
  expect(r.status).toBe(202);
  return {};
}

async function scenario(mode: Mode, point: Point, step: number): Promise<void> {
  const dir = appendDir({});
  execFileSync('cp', [moduleFile, join(dir, 'agents', 'appender.wasm')]);
  // Killed while the module computes turn `step + 1`: call `step` has ended, the next not begun.
  writeAgent(dir, 'appender', agent(point === 'module' ? step + 1 : undefined));
  const faults: AppendFaults =
    point === 'during' ? { hangOn: `step-${step}` } : point === 'arrival' ? { dieOn: `step-${step}` } : {};
  writeAppendConfig(dir, faults, LIMITS);
  let server = await start(dir);
  const started = await startRun(server, mode);

  if (point === 'module') {
    // The end of call `step` is committed before the module is called for the next turn, which spins.
    const run = await waitUntil(
      async () => (await api<{ runs: { id: string }[] }>(server.url, '/api/v1/runs')).body.runs[0],
      {
        timeoutMs: 20_000,
      },
    );
    await waitUntil(
      async () =>
        (await stepsOf(server.url, run.value.id)).some((s) => s.kind === 'tool_end' && s.id === `call_${step}_0`),
      { timeoutMs: 20_000, what: `the end of call ${step}` },
    );
    server.child.kill('SIGKILL');
  } else if (point === 'during') {
    await waitUntil(() => appendedLines(dir).includes(`step-${step}`), { timeoutMs: 20_000 });
    server.child.kill('SIGKILL');
  }
  // 'arrival': the tool server kills it.
  await server.exited;
  await started.pending;

  writeAgent(dir, 'appender', agent());
  writeAppendConfig(dir, {}, LIMITS);
  server = await start(dir);
  let answer: string | undefined;
  if (mode === 'invoke') {
    const r = await api<{ content: string }>(server.url, '/api/v1/agents/appender/invoke', {
      method: 'POST',
      headers: { 'idempotency-key': 'the-five-steps' },
      body: JSON.stringify({ request: REQUEST }),
    });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    answer = r.body.content;
  } else {
    await waitUntil(async () => (await onlyRun(server.url)).status === 'completed', { timeoutMs: 30_000 });
  }
  const run = await onlyRun(server.url);
  const full = await api<{ response: { content: string }; steps: Step[] }>(server.url, `/api/v1/runs/${run.id}`);
  answer ??= full.body.response.content;
  const audit = await api<{ records: { tool: string; outcome: string; error?: string; args_digest: string }[] }>(
    server.url,
    '/api/v1/tools/audit?agent=appender',
  );
  server.child.kill('SIGTERM');
  await server.exited;

  // The turns up to `step` were recorded (the kill came after the output asking for call `step`):
  // the module was called again for the others only, the last of them answering.
  expect(answer).toBe(`done: appended step-${STEPS}; module calls: ${STEPS + 1 - step}`);
  expect(run.status).toBe('completed');
  expect(run.origin).toBe(mode);
  expect(run.resumes).toBe(1);
  const steps = full.body.steps;
  // Each output asking for tools is one model step, its call named by turn and place.
  expect(steps.filter((s) => s.kind === 'model').map((s) => s.reply!.tool_calls)).toEqual(
    Array.from({ length: STEPS }, (_, i) => [
      { id: `call_${i + 1}_0`, name: 'journal.append', arguments: { line: `step-${i + 1}` } },
    ]),
  );
  const ends = steps.filter((s) => s.kind === 'tool_end');
  expect(ends.map((s) => s.id)).toEqual(Array.from({ length: STEPS }, (_, i) => `call_${i + 1}_0`));
  const interrupted = ends.filter((s) => s.interrupted === true).map((s) => s.id);
  const lines = appendedLines(dir);
  if (point === 'module') {
    expect(interrupted).toEqual([]);
    expect(lines).toEqual(Array.from({ length: STEPS }, (_, i) => `step-${i + 1}`));
  } else {
    // The call the kill caught is not run again: its outcome is unknown, and the audit says so.
    expect(interrupted).toEqual([`call_${step}_0`]);
    const expected = Array.from({ length: STEPS }, (_, i) => `step-${i + 1}`);
    expect(lines).toEqual(point === 'during' ? expected : expected.filter((l) => l !== `step-${step}`));
    // Its arguments come from the recorded module output.
    const args = createHash('sha256')
      .update(JSON.stringify({ line: `step-${step}` }))
      .digest('hex');
    expect(audit.body.records.filter((r) => /interrupted/.test(r.error ?? ''))).toMatchObject([
      { tool: 'journal.append', outcome: 'error', args_digest: args },
    ]);
  }
}

const start = (dir: string): Promise<ServeProcess> => startAppendServer(dir);

describe.skipIf(!haveC)("a WebAssembly agent's durable run killed with SIGKILL", () => {
  it(
    'between two calls, while the module computes its next turn (background): each line once',
    { timeout: 90_000 },
    () => scenario('background', 'module', 2),
  );
  it('while a call runs, after its effect (message): that call is not repeated', { timeout: 90_000 }, () =>
    scenario('message', 'during', 3),
  );
  it('as a call reaches the tool, before its effect (invoke with a key): not run again', { timeout: 90_000 }, () =>
    scenario('invoke', 'arrival', 4),
  );
});

describe.skipIf(!haveC)("a WebAssembly agent's call that needs approval", () => {
  it('pauses its run; approved, the call runs once; denied, the module is told why', { timeout: 90_000 }, async () => {
    const dir = appendDir({});
    execFileSync('cp', [moduleFile, join(dir, 'agents', 'appender.wasm')]);
    writeAgent(
      dir,
      'appender',
      agent(undefined, '\n[execution]\nrequire_approval = ["journal.append"]\n').replace(
        `steps = ${STEPS}`,
        'steps = 2',
      ),
    );
    writeAppendConfig(dir, {}, LIMITS);
    const server = await start(dir);
    try {
      const r = await api<{ run_id: string }>(server.url, '/api/v1/agents/appender/runs', {
        method: 'POST',
        body: JSON.stringify({ request: REQUEST }),
      });
      expect(r.status).toBe(202);
      const id = r.body.run_id;
      type View = {
        status: string;
        approvals: { call_id: string; decision: string | null }[];
        response: { content: string } | null;
      };
      const view = async (): Promise<View> => (await api<View>(server.url, `/api/v1/runs/${id}`)).body;
      const waiting = (callId: string) =>
        waitUntil(
          async () => {
            const v = await view();
            return (
              v.status === 'awaiting_approval' && v.approvals.some((a) => a.call_id === callId && a.decision === null)
            );
          },
          { timeoutMs: 20_000, what: `${callId} waiting` },
        );

      await waiting('call_1_0');
      expect(appendedLines(dir)).toEqual([]);
      const approved = await api(server.url, `/api/v1/runs/${id}/approve`, { method: 'POST', body: '{}' });
      expect(approved.status, JSON.stringify(approved.body)).toBe(200);
      await waiting('call_2_0');
      expect(appendedLines(dir)).toEqual(['step-1']);
      const denied = await api(server.url, `/api/v1/runs/${id}/deny`, {
        method: 'POST',
        body: JSON.stringify({ reason: 'not today' }),
      });
      expect(denied.status, JSON.stringify(denied.body)).toBe(200);
      await waitUntil(async () => (await view()).status === 'completed', { timeoutMs: 20_000 });
      const done = await view();
      // One module call per turn: the resumes reused the recorded outputs.
      expect(done.response?.content).toBe(`done: ${deniedResult('journal.append', 'not today')}; module calls: 3`);
      expect(appendedLines(dir)).toEqual(['step-1']);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });
});
