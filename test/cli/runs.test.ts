/**
 * `caxton run` (durable runs) as real child processes against a real `caxton serve` whose agents
 * answer through the scripted provider: a calculator call, an echo, a reply slow enough to cancel,
 * one slow enough to kill the server during it, and a request no rule matches (the script has no
 * fallback, so that run fails). The agent
 * `guarded` needs a person's approval for each calculator call.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeRun } from '../../src/cli/commands/runs-command.js';
import { waitUntil } from '../helpers/wait.js';
import {
  cleanup,
  expectExit,
  expectNoStackTrace,
  parseJson,
  runCli,
  startScriptedServe,
  startServe,
  stopServe,
  tomlAgent,
  type ScriptedServe,
} from './helpers/cli.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const REPLIES = `
[[rules]]
name = "calc"
match = "times"
  [[rules.turns]]
  content = "Let me compute that."
  tool_calls = [{ name = "calculator", arguments = { expression = "6*7" } }]
  [[rules.turns]]
  content = "The answer is {{tool_result.calculator}}."

[[rules]]
name = "slow"
match = "slowly"
latency_ms = 60000
content = "too late"

[[rules]]
name = "a while"
match = "in a while"
latency_ms = 10000
content = "took a while"

[[rules]]
name = "echo"
match = "echo"
content = "You said: {{request}}"
`;

const RUN_ID = /^exec_[0-9a-f-]{36}$/;

describe('caxton run', () => {
  let cli: ScriptedServe['cli'];
  let dir: string;
  let serve: ScriptedServe['serve'];
  /** The run as GET /api/v1/runs/{id} has it, read through the CLI, which finds the server's admin key. */
  const api = async (id: string): Promise<Json> => parseJson<Json>(await cli('--json', 'run', 'show', id));

  beforeAll(async () => {
    ({ cli, dir, serve } = await startScriptedServe({
      prefix: 'caxton-runs-cli-',
      replies: REPLIES,
      agents: {
        'assistant.toml': tomlAgent('assistant', { extra: 'tools = ["calculator"]\n' }),
        'guarded.toml': tomlAgent('guarded', {
          extra: 'tools = ["calculator"]\n\n[execution]\nrequire_approval = ["calculator"]\n',
        }),
      },
    }));
  });
  afterAll(cleanup);

  let calcRun: string;

  it('run start --wait follows the run and prints its answer (exit 0); the run id goes to stderr', async () => {
    const r = await cli('run', 'start', 'assistant', 'what is 6 times 7?', '--wait');
    expectExit(r, 0);
    expect(r.stdout).toBe('The answer is 42.\n');
    expect(r.stderr).toMatch(/^run exec_[0-9a-f-]{36}\n/);
    expect(r.stderr).toMatch(/\(demo\/scripted, \d+ tokens, \d+ ms, stop\)/);
    calcRun = /^run (\S+)/.exec(r.stderr)![1]!;
  });

  it('run start --wait --json prints the ended run with its steps and response', async () => {
    const r = await cli('--json', 'run', 'start', 'assistant', 'echo json please', '--wait');
    expectExit(r, 0);
    const run = parseJson<Json>(r);
    expect(run).toMatchObject({ agent: 'assistant', origin: 'background', status: 'completed', error: null });
    expect(run.id).toMatch(RUN_ID);
    expect(run.response.content).toBe('You said: echo json please');
    expect(run.steps.map((s: { kind: string }) => s.kind)).toContain('model');
  });

  it('run start prints only the run id on stdout; --json prints the API answer', async () => {
    const r = await cli('run', 'start', 'assistant', 'echo hello', '--context', 'ctx', '--param', 'n=3');
    expectExit(r, 0);
    expect(r.stdout.trim()).toMatch(RUN_ID);
    expect(r.stderr).toContain(`follow it with: caxton run show ${r.stdout.trim()}`);

    const j = await cli('run', 'start', 'assistant', 'echo hello', '--json');
    expectExit(j, 0);
    const started = parseJson<Json>(j);
    expect(started.run_id).toMatch(RUN_ID);
    expect(started.links.self).toBe(`/api/v1/runs/${started.run_id}`);
    expect(['running', 'completed']).toContain(started.status);
  });

  it('run start --idempotency-key: the same key is the same run; a malformed key is a usage error', async () => {
    const a = await cli('run', 'start', 'assistant', 'echo once', '--idempotency-key', 'order-7');
    const b = await cli('run', 'start', 'assistant', 'echo once', '--idempotency-key', 'order-7');
    expectExit(a, 0);
    expectExit(b, 0);
    expect(b.stdout).toBe(a.stdout);

    const bad = await cli('run', 'start', 'assistant', 'echo', '--idempotency-key', 'has space');
    expectExit(bad, 2);
    expect(bad.stderr).toContain('--idempotency-key expects 1 to 200 printable ASCII characters without spaces');
    const param = await cli('run', 'start', 'assistant', 'echo', '--param', 'novalue');
    expectExit(param, 2);
    expect(param.stderr).toContain('--param expects NAME=VALUE');
  });

  it('run start of an unknown agent exits 1 with the server message', async () => {
    const r = await cli('run', 'start', 'nobody', 'hello');
    expectExit(r, 1);
    expect(r.stderr).toMatch(/^error: .*nobody/);
    expectNoStackTrace(r);
  });

  it('run show: each step readable, the tool call with labelled arguments and result, the answer', async () => {
    const r = await cli('run', 'show', calcRun);
    expectExit(r, 0);
    expect(r.stdout).toContain(`run:          ${calcRun}`);
    expect(r.stdout).toContain('status:       completed');
    expect(r.stdout).toContain('request:      what is 6 times 7?');
    expect(r.stdout).toMatch(/turn 1 {2}model demo\/scripted: \d+ in \/ \d+ out tokens, finish tool_calls, \d+ ms/);
    expect(r.stdout).toContain('says: Let me compute that.');
    expect(r.stdout).toMatch(/turn 1 {2}tool calculator \(\S+\): ok, \d+ ms\n {10}expression: 6\*7\n {10}→ 42\n/);
    expect(r.stdout).toMatch(/turn 2 {2}model demo\/scripted: .*finish stop/);
    expect(r.stdout).toMatch(/answer:\nThe answer is 42\.\n\(demo\/scripted, \d+ tokens/);

    const j = await cli('run', 'show', calcRun, '--json');
    expectExit(j, 0);
    const run = parseJson<Json>(j);
    // The calculator is idempotent: its start is not recorded, only its end.
    expect(run.steps.map((s: { kind: string }) => s.kind)).toEqual(['model', 'tool_end', 'model']);
    expect(run.steps[1]).toMatchObject({ name: 'calculator', result: '42', is_error: false });
    expect(run.response.content).toBe('The answer is 42.');
  });

  it('run list: a table, filters, pages; --json prints the page', async () => {
    const r = await cli('run', 'list');
    expectExit(r, 0);
    const [header, ...rows] = r.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^ID\s+AGENT\s+STATUS\s+ORIGIN\s+RESUMES\s+CREATED$/);
    expect(rows.find((l) => l.startsWith(calcRun))).toMatch(
      /assistant\s+completed\s+background\s+0\s+\d{4}-\d\d-\d\dT/,
    );

    const j = await cli(
      'run',
      'list',
      '--agent',
      'assistant',
      '--status',
      'completed',
      '--origin',
      'background',
      '--json',
    );
    expectExit(j, 0);
    const page = parseJson<Json>(j);
    expect(page.runs.length).toBeGreaterThanOrEqual(4);
    for (const run of page.runs)
      expect(run).toMatchObject({ agent: 'assistant', status: 'completed', origin: 'background' });

    const first = await cli('run', 'list', '--limit', '1');
    expectExit(first, 0);
    const cursor = /\(more: --cursor (\S+)\)/.exec(first.stdout)?.[1];
    expect(cursor).toMatch(RUN_ID);
    const second = await cli('run', 'list', '--limit', '1', '--cursor', cursor!, '--json');
    expect(parseJson<Json>(second).runs[0].id).not.toBe(cursor);

    const none = await cli('run', 'list', '--agent', 'nobody');
    expectExit(none, 0);
    expect(none.stderr).toContain('no runs match');
  });

  it('run list refuses an unknown status or origin, and --waiting with another status (exit 2)', async () => {
    for (const [args, message] of [
      [['--status', 'done'], '--status expects one of running, awaiting_approval, completed, failed, cancelled'],
      [['--origin', 'cron'], '--origin expects one of invoke, background, message, openai, mcp'],
      [['--waiting', '--status', 'running'], '--waiting lists the runs awaiting approval'],
      [['--limit', '0'], '--limit expects a whole number between 1 and 500'],
    ] as const) {
      const r = await cli('run', 'list', ...args);
      expectExit(r, 2);
      expect(r.stderr).toContain(message);
    }
  });

  it('a failed run: --wait exits 1 with its error; --json prints the run and exits 1', async () => {
    const r = await cli('run', 'start', 'assistant', 'nothing matches this', '--wait');
    expectExit(r, 1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/error: run exec_\S+ failed: .*no rule matches/);
    expect(r.stderr).toMatch(/see its steps with: caxton run show exec_/);
    expectNoStackTrace(r);

    const j = await cli('--json', 'run', 'start', 'assistant', 'nothing matches this either', '--wait');
    expectExit(j, 1);
    expect(parseJson<Json>(j)).toMatchObject({ status: 'failed', response: null, error: { code: expect.any(String) } });

    const list = await cli('run', 'list', '--status', 'failed');
    expect(list.stdout).toMatch(/assistant\s+failed \(\S+\)\s+background/);
  });

  it('run cancel stops a running run; the --wait following it exits 1; cancelling again says it had ended', async () => {
    const waiting = cli('run', 'start', 'assistant', 'answer slowly', '--wait');
    const { value: id } = await waitUntil(
      async () => {
        const r = await cli('--json', 'run', 'list', '--status', 'running');
        return (parseJson<Json>(r).runs as { id: string }[])[0]?.id;
      },
      { timeoutMs: 20_000, intervalMs: 200, what: 'the slow run to be listed as running' },
    );
    const c = await cli('run', 'cancel', id);
    expectExit(c, 0);
    expect(c.stdout).toBe(`cancelled run ${id}\n`);

    const w = await waiting;
    expectExit(w, 1);
    expect(w.stderr).toContain(`error: run ${id} was cancelled`);

    const show = await cli('run', 'show', id);
    expect(show.stdout).toContain('status:       cancelled');
    expect(show.stdout).toMatch(/^error: {8}cancelled: /m);
    expect(show.stdout).toMatch(/^steps: {8}none recorded$/m);

    const twice = await cli('run', 'cancel', id);
    expectExit(twice, 0);
    expect(twice.stdout).toBe(`run ${id} had already ended (cancelled (cancelled)); nothing to cancel\n`);
    const j = await cli('run', 'cancel', id, '--json');
    expectExit(j, 0);
    expect(parseJson<Json>(j)).toMatchObject({ id, status: 'cancelled' });
  }, 90_000);

  it('an unknown run id: show and cancel exit 1 with "no run"; --json gives the error envelope', async () => {
    for (const cmd of ['show', 'cancel']) {
      const r = await cli('run', cmd, 'exec_nope');
      expectExit(r, 1);
      expect(r.stderr).toBe('error: no run "exec_nope"\n');
      expectNoStackTrace(r);
      const j = await cli('--json', 'run', cmd, 'exec_nope');
      expectExit(j, 1);
      expect(parseJson<Json>(j).error).toMatchObject({ code: 'not_found', message: 'no run "exec_nope"' });
    }
    const blank = await cli('run', 'show', ' ');
    expectExit(blank, 2);
    expect(blank.stderr).toContain('a run id is 1 to 200 characters');
  });

  it('a call that needs approval: list --waiting, show names it, approve runs it and the run ends', async () => {
    const started = await cli('run', 'start', 'guarded', 'what is 6 times 7?');
    expectExit(started, 0);
    const id = started.stdout.trim();
    await waitUntil(async () => (await api(id)).status === 'awaiting_approval', {
      timeoutMs: 20_000,
      what: 'the run to wait for approval',
    });

    const list = await cli('run', 'list', '--waiting');
    expectExit(list, 0);
    expect(list.stdout).toMatch(new RegExp(`^${id}\\s+guarded\\s+awaiting_approval\\s+background\\s+0\\s`, 'm'));
    const j = await cli('run', 'list', '--waiting', '--json');
    expect((parseJson<Json>(j).runs as { id: string }[]).map((r) => r.id)).toContain(id);

    const show = await cli('run', 'show', id);
    expectExit(show, 0);
    expect(show.stdout).toContain('status:       awaiting_approval');
    expect(show.stdout).toMatch(
      /turn 1 {2}approval asked for calculator \((\S+)\) at \d{4}-.*\n {10}expression: 6\*7\n/,
    );
    const call = /approval asked for calculator \((\S+)\)/.exec(show.stdout)![1]!;
    expect(show.stdout).toContain(`waiting for approval: calculator (${call})`);
    expect(show.stdout).toContain(`decide with: caxton run approve ${id}  or  caxton run deny ${id} --reason TEXT`);
    const shown = parseJson<Json>(await cli('run', 'show', id, '--json'));
    expect(shown.approvals).toMatchObject([{ call_id: call, tool: 'calculator', decision: null }]);

    const ok = await cli('run', 'approve', id, '--reason', 'checked the numbers');
    expectExit(ok, 0);
    expect(ok.stdout).toMatch(new RegExp(`^approved the waiting call of run ${id}; the run is (running|completed)\n$`));
    await waitUntil(async () => (await api(id)).status === 'completed', { timeoutMs: 20_000, what: 'the run to end' });
    const after = await cli('run', 'show', id);
    expect(after.stdout).toMatch(new RegExp(`turn 1 {2}approved \\(${call}\\) by \\S+ at \\S+: checked the numbers`));
    expect(after.stdout).toMatch(/tool calculator \(\S+\): ok, \d+ ms\n {10}expression: 6\*7\n {10}→ 42/);
    expect(after.stdout).toContain('answer:\nThe answer is 42.');

    const again = await cli('run', 'approve', id);
    expectExit(again, 1);
    expect(again.stderr).toContain(`error: run ${id} is completed: nothing in it waits for approval`);
    expectNoStackTrace(again);
  }, 90_000);

  it('run deny CALL --reason: the call does not run and the model is told why; --json prints the run', async () => {
    const id = (await cli('run', 'start', 'guarded', 'and 6 times 7 again?')).stdout.trim();
    await waitUntil(async () => (await api(id)).status === 'awaiting_approval', {
      timeoutMs: 20_000,
      what: 'the run to wait for approval',
    });
    const call = (await api(id)).approvals[0].call_id as string;

    const wrong = await cli('run', 'deny', id, 'call_nope');
    expectExit(wrong, 1);
    expect(wrong.stderr).toContain(`no call "call_nope" waiting for approval; waiting: ${call}`);

    const j = await cli('--json', 'run', 'deny', id, call, '--reason', 'not today');
    expectExit(j, 0);
    expect(parseJson<Json>(j)).toMatchObject({ id, agent: 'guarded' });
    await waitUntil(async () => (await api(id)).status === 'completed', { timeoutMs: 20_000, what: 'the run to end' });
    const show = await cli('run', 'show', id);
    expect(show.stdout).toMatch(new RegExp(`denied \\(${call}\\) by \\S+ at \\S+: not today`));
    expect(show.stdout).toMatch(
      /tool calculator \(\S+\): denied, not run\n {10}expression: 6\*7\n {10}→ the call of "calculator" was not run: approval was denied: not today\./,
    );
    expect(show.stdout).toMatch(/answer:\nThe answer is .*approval was denied: not today/);
  }, 90_000);

  it('run start --wait on a run that waits for approval says so, and ends once someone approves', async () => {
    const waiting = cli('run', 'start', 'guarded', 'finally, 6 times 7?', '--wait');
    const { value: id } = await waitUntil(
      async () => (parseJson<Json>(await cli('--json', 'run', 'list', '--waiting')).runs as { id: string }[])[0]?.id,
      { timeoutMs: 20_000, intervalMs: 200, what: 'the run to wait for approval' },
    );
    expectExit(await cli('run', 'approve', id), 0);
    const w = await waiting;
    expectExit(w, 0);
    expect(w.stdout).toBe('The answer is 42.\n');
    expect(w.stderr).toContain(`run ${id} is waiting for approval of calculator: caxton run approve ${id}`);
  }, 90_000);

  it('agent run of a call that needs approval exits 1 naming the run to decide on (the envelope with --json)', async () => {
    const r = await cli('agent', 'run', 'guarded', 'what is 6 times 7 now?');
    expectExit(r, 1);
    const id = /^error: run (exec_\S+) waits for approval of a call of "calculator"/.exec(r.stderr)?.[1];
    expect(id, r.stderr).toBeDefined();
    expect(r.stderr).toContain(`decide with: caxton run approve ${id}  or  caxton run deny ${id} --reason TEXT`);
    expectNoStackTrace(r);

    const j = await cli('--json', 'agent', 'run', 'guarded', 'what is 6 times 7 then?');
    expectExit(j, 1);
    expect(parseJson<Json>(j).error).toMatchObject({ code: 'awaiting_approval', details: { tool: 'calculator' } });
    for (const run of [id!, parseJson<Json>(j).error.details.run_id as string])
      expectExit(await cli('run', 'cancel', run), 0);
  }, 60_000);

  it('approve and deny of an unknown run exit 1 with "no run"', async () => {
    for (const verb of ['approve', 'deny']) {
      const r = await cli('run', verb, 'exec_nope', '--reason', 'x');
      expectExit(r, 1);
      expect(r.stderr).toBe('error: no run "exec_nope"\n');
      const j = await cli('--json', 'run', verb, 'exec_nope');
      expectExit(j, 1);
      expect(parseJson<Json>(j).error.code).toBe('not_found');
    }
  });

  it('a server without approvals is named as such, not as a missing run (exit 1)', async () => {
    const old = createServer((req, res) => {
      const status = req.url?.startsWith('/api/v1/runs?') ? 400 : 404;
      // Every Caxton answers with x-request-id; without it the CLI says it is not a Caxton server.
      res.writeHead(status, { 'content-type': 'application/json', 'x-request-id': 'r' });
      res.end(
        JSON.stringify({
          error: {
            code: status === 400 ? 'invalid_request' : 'route_not_found',
            message:
              status === 400
                ? 'invalid querystring: status: status must be one of "running", "completed", "failed", "cancelled"'
                : `no route ${req.method} ${req.url}; see /api/v1/openapi.json`,
            details: null,
            request_id: 'r',
          },
        }),
      );
    });
    await new Promise<void>((r) => old.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(old.address() as AddressInfo).port}`;
    try {
      const approve = await runCli(['--server', url, 'run', 'approve', 'exec_1'], { cwd: tmpdir() });
      expectExit(approve, 1);
      expect(approve.stderr).toBe(
        'error: this server does not support approvals (no route POST /api/v1/runs/exec_1/approve)\n  it runs an older Caxton: upgrade it to approve or deny tool calls\n',
      );
      const waiting = await runCli(['--server', url, 'run', 'list', '--waiting'], { cwd: tmpdir() });
      expectExit(waiting, 1);
      expect(waiting.stderr).toContain('this server does not support approvals (it knows no awaiting_approval status)');
      const show = await runCli(['--server', url, '--json', 'run', 'show', 'exec_1'], { cwd: tmpdir() });
      expectExit(show, 1);
      expect(parseJson<Json>(show).error.code).toBe('route_not_found');
    } finally {
      await new Promise((r) => old.close(r));
    }
  });

  it('run start --wait outlasts a server killed and restarted: the run resumes and the answer is printed', async () => {
    const waiting = runCli(['--server', serve.url, 'run', 'start', 'assistant', 'answer in a while', '--wait'], {
      cwd: dir,
      timeoutMs: 120_000,
    });
    await waitUntil(
      async () =>
        (parseJson<Json>(await cli('--json', 'run', 'list', '--status', 'running')).runs as unknown[]).length > 0,
      { timeoutMs: 20_000, intervalMs: 200, what: 'the run to be listed as running' },
    );
    await stopServe(serve, 'SIGKILL');
    serve = await startServe({
      cwd: dir,
      args: ['--config', join(dir, 'caxton.toml')],
      port: serve.port,
      metricsPort: serve.metricsPort,
      readyTimeoutMs: 60_000,
    });
    const w = await waiting;
    expectExit(w, 0);
    expect(w.stdout).toBe('took a while\n');
    expect(w.stderr).toContain('the server is unreachable; trying again for 60 s (the run resumes when it is back)');
    const id = /^run (\S+)/.exec(w.stderr)![1]!;
    expect(parseJson<Json>(await cli('--json', 'run', 'show', id)).resumes).toBe(1);
  }, 150_000);

  it('--help of each subcommand names its arguments and options', async () => {
    const r = await cli('run', '--help');
    expectExit(r, 0);
    for (const sub of ['start', 'list', 'show', 'cancel', 'approve', 'deny']) expect(r.stdout).toContain(sub);
    const start = await cli('run', 'start', '--help');
    expect(start.stdout).toContain('--idempotency-key <key>');
    expect(start.stdout).toContain('--wait');
    const missing = await cli('run', 'show');
    expectExit(missing, 2);
    expect(missing.stderr).toContain("missing required argument 'run'");
  });
});

describe('run show text', () => {
  const base = {
    id: 'exec_x',
    agent: 'ops',
    origin: 'message',
    status: 'failed',
    principal: 'key:ci',
    conversation_id: 'conv_1',
    message_id: 'msg_1',
    created_at: '2026-11-28T00:00:00.000Z',
    updated_at: '2026-11-28T00:00:01.000Z',
    resumes: 1,
    running_here: false,
    error: { code: 'llm_error', message: 'the model went away' },
    request: 'clean up',
    response: null,
  };
  const reply = (tool_calls: { id: string; name: string; arguments: unknown }[]) => ({
    content: '',
    tool_calls,
    usage: { input_tokens: 10, output_tokens: 2, total_tokens: 12 },
    finish_reason: 'tool_calls',
    provider: 'p',
    model: 'm',
    latency_ms: 5,
  });

  it('marks an interrupted call, cuts long results, shows a call with no result and the approvals', () => {
    const text = describeRun({
      ...base,
      steps: [
        { kind: 'context', memory_context: 'abc' },
        {
          kind: 'model',
          turn: 1,
          reply: reply([{ id: 'a', name: 'fs.write', arguments: { path: '/tmp/x', data: 'y'.repeat(1000) } }]),
        },
        { kind: 'tool_start', turn: 1, id: 'a', name: 'fs.write' },
        {
          kind: 'tool_end',
          turn: 1,
          id: 'a',
          name: 'fs.write',
          result: 'unknown outcome',
          is_error: true,
          duration_ms: 0,
          interrupted: true,
        },
        {
          kind: 'model',
          turn: 2,
          reply: reply([{ id: 'b', name: 'web.fetch', arguments: { url: 'https://example.com' } }]),
        },
        { kind: 'tool_start', turn: 2, id: 'b', name: 'web.fetch' },
        {
          kind: 'tool_end',
          turn: 2,
          id: 'b',
          name: 'web.fetch',
          result: 'z'.repeat(5000),
          is_error: false,
          duration_ms: 12,
        },
        { kind: 'approval_requested', turn: 3, id: 'c', name: 'shell.run', arguments: { cmd: 'rm -rf /tmp/x' }, at: 0 },
        { kind: 'approval', turn: 3, id: 'c', decision: 'denied', by: 'key:admin', at: 1000, reason: 'not today' },
        { kind: 'model', turn: 4, reply: reply([{ id: 'd', name: 'fs.read', arguments: {} }]) },
        { kind: 'tool_start', turn: 4, id: 'd', name: 'fs.read' },
      ],
    });
    expect(text).toContain('error:        llm_error: the model went away');
    expect(text).toContain('memory context for the first prompt: 3 characters');
    expect(text).toMatch(
      /turn 1 {2}tool fs\.write \(a\): INTERRUPTED, outcome unknown, not run again\n {10}path: \/tmp\/x\n {10}data: y{299}…\n/,
    );
    expect(text).toMatch(
      /turn 2 {2}tool web\.fetch \(b\): ok, 12 ms\n {10}url: https:\/\/example\.com\n {10}→ z{299}…\n/,
    );
    expect(text).toMatch(
      /turn 3 {2}approval asked for shell\.run \(c\) at 1970-01-01T00:00:00\.000Z\n {10}cmd: rm -rf \/tmp\/x\n/,
    );
    expect(text).toContain('turn 3  denied (c) by key:admin at 1970-01-01T00:00:01.000Z: not today');
    expect(text).toMatch(/turn 4 {2}tool fs\.read \(d\): started, no result recorded\n {10}\(no arguments\)/);
    expect(text).not.toContain('answer:');
  });

  it('a resume, with the gap since the step before it (or since the run started)', () => {
    const start = Date.parse(base.created_at);
    const text = describeRun({
      ...base,
      steps: [
        { kind: 'resumed', at: start + 4_000 },
        { kind: 'model', turn: 1, reply: reply([{ id: 'a', name: 'fs.read', arguments: {} }]), at: start + 5_000 },
        { kind: 'resumed', at: start + 17_500 },
      ],
    });
    expect(text).toContain('\n  resumed after 4.0 s at 2026-11-28T00:00:04.000Z\n');
    expect(text).toContain('\n  resumed after 12.5 s at 2026-11-28T00:00:17.500Z');
  });

  it('a run waiting for approval names the calls and the commands that decide', () => {
    const text = describeRun({
      ...base,
      status: 'awaiting_approval',
      error: null,
      steps: [
        { kind: 'model', turn: 1, reply: reply([{ id: 'c', name: 'shell.run', arguments: { cmd: 'ls' } }]) },
        { kind: 'approval_requested', turn: 1, id: 'c', name: 'shell.run', arguments: { cmd: 'ls' }, at: 0 },
      ],
    });
    expect(text).toContain('waiting for approval: shell.run (c)');
    expect(text).toContain('decide with: caxton run approve exec_x  or  caxton run deny exec_x --reason TEXT');
  });
});
