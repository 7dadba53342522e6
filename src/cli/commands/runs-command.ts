/**
 * `caxton run`: durable runs (GET/POST /api/v1/runs...). A run started here goes on in the
 * server's background and survives its restarts; `--wait` only follows it (its event stream, or
 * polling), so the command can stop waiting (Ctrl-C) without stopping the run.
 */
import type { Command } from 'commander';
import { ApiError, type ApiClient } from '../api-client.js';
import type { CliContext } from '../context.js';
import { CliError, usageError } from '../errors.js';
import { positiveInt } from '../number-flags.js';
import { table, truncate, type Output } from '../output.js';
import { parseParams } from './run-command.js';

// The CLI stays free of the server's modules: the shapes are repeated here as they arrive.
interface RunJson {
  id: string;
  agent: string;
  origin: string;
  status: string;
  principal: string | null;
  conversation_id: string | null;
  message_id: string | null;
  created_at: string;
  updated_at: string;
  resumes: number;
  running_here: boolean;
  error: { code: string; message: string } | null;
}

interface ToolCallJson {
  id: string;
  name: string;
  arguments: unknown;
}

interface ModelReplyJson {
  content: string;
  tool_calls: ToolCallJson[];
  usage: { input_tokens: number; output_tokens: number; total_tokens: number };
  finish_reason: string;
  provider: string;
  model: string;
  latency_ms: number;
}

/** One step as GET /runs/{id} gives it; kinds this CLI does not know are shown by name. */
type StepJson = { kind: string; turn?: number; id?: string; name?: string } & Record<string, unknown>;

interface AgentResponseJson {
  content: string;
  usage: { total_tokens: number };
  execution_time_ms: number;
  finish_reason: string;
  provider: string;
  model: string;
}

interface ApprovalJson {
  turn: number;
  call_id: string;
  tool: string;
  arguments: Record<string, unknown>;
  requested_at: string;
  decision: 'approved' | 'denied' | null;
  decided_by: string | null;
  decided_at: string | null;
  reason: string | null;
}

interface RunViewJson extends RunJson {
  request: string;
  steps: StepJson[];
  /** Every call that waited for a person (a server without approvals has none to give). */
  approvals?: ApprovalJson[];
  response: AgentResponseJson | null;
}

interface StartedJson {
  run_id: string;
  status: string;
  links: { self: string };
}

const STATUSES = ['running', 'awaiting_approval', 'completed', 'failed', 'cancelled'];
const ORIGINS = ['invoke', 'background', 'message', 'openai', 'mcp', 'a2a'];
const ENDED = new Set(['completed', 'failed', 'cancelled']);
/** `run show` cuts a step's text (arguments, results, what a model said) to this many characters. */
const CUT = 300;

function runId(v: string): string {
  const id = v.trim();
  if (id.length === 0 || id.length > 200)
    throw usageError(`a run id is 1 to 200 characters (see \`caxton run list\`), got "${v}"`);
  return id;
}

const runPath = (id: string) => `/api/v1/runs/${encodeURIComponent(id)}`;

/**
 * A route this server does not have (an older Caxton, or approvals not there yet) is said in those
 * words: the server's own 404 would read as if the run did not exist.
 */
async function runsApi<T>(what: 'runs' | 'approvals', call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    if (e instanceof ApiError && e.body.error.code === 'route_not_found')
      throw olderServer(what, e, e.body.error.message.replace(/;.*$/, ''));
    throw e;
  }
}

function olderServer(what: 'runs' | 'approvals', e: ApiError, detail: string): CliError {
  return new CliError(`this server does not support ${what} (${detail})`, {
    lines: [
      `it runs an older Caxton: upgrade it to ${what === 'runs' ? 'use `caxton run`' : 'approve or deny tool calls'}`,
    ],
    json: e.body,
  });
}

function idempotencyKey(v: string): string {
  if (!/^[\x21-\x7e]{1,200}$/.test(v))
    throw usageError(`--idempotency-key expects 1 to 200 printable ASCII characters without spaces, got "${v}"`);
  return v;
}

function when(at: unknown): string {
  return typeof at === 'number' ? new Date(at).toISOString() : String(at ?? '-');
}

function valueText(v: unknown): string {
  return typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v));
}

/** A call's arguments, one labelled line each (`NAME: VALUE`, long values cut). */
function argumentLines(args: unknown, indent: string): string[] {
  if (args === null || typeof args !== 'object' || Array.isArray(args))
    return args === undefined ? [] : [`${indent}arguments: ${truncate(valueText(args), CUT)}`];
  const entries = Object.entries(args as Record<string, unknown>);
  if (entries.length === 0) return [`${indent}(no arguments)`];
  return entries.map(([k, v]) => `${indent}${k}: ${truncate(valueText(v), CUT)}`);
}

/** Calls waiting for a person, as `TOOL (CALL)`, in the order asked. */
function waitingCalls(r: RunViewJson): { tool: string; call_id: string }[] {
  if (r.approvals) return r.approvals.filter((a) => a.decision === null);
  // From the steps, for a view without `approvals`: a request with no decision after it.
  const waiting: { tool: string; call_id: string; turn: unknown }[] = [];
  for (const s of r.steps) {
    if (s.kind === 'approval_requested') waiting.push({ tool: String(s.name), call_id: String(s.id), turn: s.turn });
    else if (s.kind === 'approval') {
      const i = waiting.findIndex((w) => w.turn === s.turn && w.call_id === s.id);
      if (i >= 0) waiting.splice(i, 1);
    }
  }
  return waiting;
}

function statusText(r: RunJson): string {
  return r.error && r.status !== 'completed' ? `${r.status} (${r.error.code})` : r.status;
}

function usageLine(res: AgentResponseJson): string {
  return `(${res.provider}/${res.model}, ${res.usage.total_tokens} tokens, ${Math.round(res.execution_time_ms)} ms, ${res.finish_reason})`;
}

/** A resume, with the gap since the step before it when both have a time. */
function resumedLine(s: StepJson, before: number | undefined): string {
  if (typeof s.at !== 'number') return 'resumed';
  const gap = before === undefined || Number.isNaN(before) ? '' : ` after ${((s.at - before) / 1000).toFixed(1)} s`;
  return `resumed${gap} at ${when(s.at)}`;
}

/** The run and its steps, readable: what `caxton run show` prints. */
export function describeRun(r: RunViewJson): string {
  const lines = [
    `run:          ${r.id}`,
    `agent:        ${r.agent}`,
    `status:       ${r.status}${r.running_here ? ' (on this node)' : ''}`,
    ...(r.error ? [`error:        ${r.error.code}: ${r.error.message}`] : []),
    `origin:       ${r.origin}`,
    `created:      ${r.created_at}`,
    `updated:      ${r.updated_at}`,
    `resumes:      ${r.resumes}`,
    `principal:    ${r.principal ?? '-'}`,
    `conversation: ${r.conversation_id ?? '-'}${r.message_id ? `  message ${r.message_id}` : ''}`,
    `request:      ${truncate(r.request, CUT)}`,
  ];

  const calls = new Map<string, ToolCallJson>();
  const ends = new Map<string, StepJson>();
  const denied = new Set<string>();
  const key = (s: { turn?: unknown; id?: unknown }) => `${String(s.turn)}:${String(s.id)}`;
  for (const s of r.steps) {
    if (s.kind === 'model')
      for (const c of (s.reply as ModelReplyJson | undefined)?.tool_calls ?? [])
        calls.set(`${String(s.turn)}:${c.id}`, c);
    else if (s.kind === 'tool_end') ends.set(key(s), s);
    else if (s.kind === 'approval' && s.decision === 'denied') denied.add(key(s));
  }

  const steps: string[] = [];
  const shownEnds = new Set<string>();
  const pad = '        ';
  const toolLines = (s: StepJson, end: StepJson | undefined): string[] => {
    const head = `turn ${String(s.turn)}  tool ${String(s.name)} (${String(s.id)})`;
    const args = argumentLines(calls.get(key(s))?.arguments, `${pad}`);
    if (!end) return [`${head}: ${ENDED.has(r.status) ? 'started, no result recorded' : 'running'}`, ...args];
    if (end.interrupted === true)
      return [
        `${head}: INTERRUPTED, outcome unknown, not run again`,
        ...args,
        `${pad}→ ${truncate(String(end.result), CUT)}`,
      ];
    const outcome = denied.has(key(s))
      ? 'denied, not run'
      : `${end.is_error === true ? 'error' : 'ok'}, ${Math.round(Number(end.duration_ms))} ms`;
    return [`${head}: ${outcome}`, ...args, `${pad}→ ${truncate(String(end.result), CUT) || '(empty)'}`];
  };
  /** When the step before the current one was committed (steps of an older server have no time); at first, the run's start. */
  let lastAt: number | undefined = Date.parse(r.created_at);
  for (const s of r.steps) {
    const before = lastAt;
    if (typeof s.at === 'number') lastAt = s.at;
    if (s.kind === 'resumed') steps.push(resumedLine(s, before));
    else if (s.kind === 'context')
      steps.push(`memory context for the first prompt: ${String(s.memory_context ?? '').length} characters`);
    else if (s.kind === 'model') {
      const m = s.reply as ModelReplyJson;
      steps.push(
        `turn ${String(s.turn)}  model ${m.provider}/${m.model}: ${m.usage.input_tokens} in / ${m.usage.output_tokens} out tokens, finish ${m.finish_reason}, ${Math.round(m.latency_ms)} ms`,
      );
      if (m.content.trim() !== '' && m.content !== r.response?.content)
        steps.push(`${pad}says: ${truncate(m.content, CUT)}`);
      if (m.tool_calls.length > 0) steps.push(`${pad}calls: ${m.tool_calls.map((c) => c.name).join(', ')}`);
    } else if (s.kind === 'tool_start') {
      const end = ends.get(key(s));
      if (end) shownEnds.add(key(s));
      steps.push(...toolLines(s, end));
    } else if (s.kind === 'tool_end') {
      if (!shownEnds.has(key(s))) steps.push(...toolLines(s, s));
    } else if (s.kind === 'approval_requested') {
      steps.push(
        `turn ${String(s.turn)}  approval asked for ${String(s.name)} (${String(s.id)}) at ${when(s.at)}`,
        ...argumentLines(s.arguments, pad),
      );
    } else if (s.kind === 'approval') {
      steps.push(
        `turn ${String(s.turn)}  ${String(s.decision)} (${String(s.id)}) by ${String(s.by)} at ${when(s.at)}${s.reason ? `: ${truncate(String(s.reason), CUT)}` : ''}`,
      );
    } else steps.push(`turn ${String(s.turn ?? '-')}  ${s.kind}`);
  }
  lines.push(
    '',
    steps.length > 0 ? 'steps:' : `steps:        none recorded${ENDED.has(r.status) ? '' : ' yet'}`,
    ...steps.map((l) => `  ${l}`),
  );

  const waiting = waitingCalls(r);
  if (r.status === 'awaiting_approval' && waiting.length > 0) {
    // Without a call id the server decides on the first waiting call; name it when there are more.
    const call = waiting.length > 1 ? ` ${waiting[0]!.call_id}` : '';
    lines.push(
      '',
      `waiting for approval: ${waiting.map((w) => `${w.tool} (${w.call_id})`).join(', ')}`,
      `decide with: caxton run approve ${r.id}${call}  or  caxton run deny ${r.id}${call} --reason TEXT`,
    );
  }
  if (r.response) lines.push('', 'answer:', r.response.content, usageLine(r.response));
  return lines.join('\n');
}

/** What a run is doing now, from its last step: the progress line of `--wait`. */
function phaseOf(r: RunViewJson): string {
  if (r.status === 'awaiting_approval') {
    const w = waitingCalls(r);
    return `waiting for approval of ${w.map((x) => x.tool).join(', ') || 'a tool call'}: caxton run approve ${r.id}`;
  }
  const last = r.steps[r.steps.length - 1];
  const turn = last?.turn !== undefined ? `turn ${String(last.turn)}, ` : '';
  if (last?.kind === 'tool_start') return `${turn}running ${String(last.name)}`;
  if (last?.kind === 'model' && (last.reply as ModelReplyJson).tool_calls.length > 0)
    return `${turn}calling ${(last.reply as ModelReplyJson).tool_calls.map((c) => c.name).join(', ')}`;
  return `${turn}waiting for the model`;
}

/** How long `--wait` keeps asking a server that does not answer (one restarting) before it gives up. */
const SERVER_GONE_MS = 60_000;

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/**
 * Follows the run by its event stream (GET /runs/{id}/events), calling `show` with the run as the
 * stream tells it. Answers the ended run as GET /runs/{id} shows it, or undefined when the stream
 * did not see it end (a server without the route, a connection broken by a restart): the caller
 * polls instead.
 */
async function followStream(
  client: ApiClient,
  id: string,
  show: (r: RunViewJson) => void,
): Promise<RunViewJson | undefined> {
  let ended = false;
  try {
    // Its approvals are read from the steps as they come (waitingCalls), not from this first view.
    const { approvals: _known, ...first } = await client.get<RunViewJson>(runPath(id));
    const view: RunViewJson = { ...first, steps: [] };
    // The stream sends the steps recorded so far before its first status: shown from then on.
    let current = false;
    await client.events(`${runPath(id)}/events`, (event, data) => {
      if (event === 'end') return (ended = true);
      if (event === 'error') return true;
      const d = JSON.parse(data) as Record<string, unknown>;
      if (event === 'step') view.steps.push(d as unknown as StepJson);
      else if (event === 'status') {
        view.status = String(d.status);
        current = true;
      }
      if (current) show(view);
      return false;
    });
    return ended ? await client.get<RunViewJson>(runPath(id)) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Follows the run until it ends: by its event stream, else (an older server, a broken stream) by
 * polling. On a terminal, stderr shows a spinner with what the run is doing; elsewhere only the
 * moment it starts waiting for a person is said, once. A server that stops answering is asked
 * again for a while: the run is durable, and resumes when it is back.
 */
async function follow(client: ApiClient, id: string, out: Output): Promise<RunViewJson> {
  const tty = process.stderr.isTTY === true && !out.json;
  const t0 = Date.now();
  let frame = 0;
  let saidWaiting = false;
  /** Since when the server has not answered: a restart, which the run survives, is waited out. */
  let downSince: number | undefined;
  const clear = () => tty && process.stderr.write('\r\x1b[2K');
  const show = (r: RunViewJson): void => {
    if (tty) {
      const s = Math.round((Date.now() - t0) / 1000);
      process.stderr.write(`\r\x1b[2K${SPINNER[frame++ % SPINNER.length]} ${r.status} ${s}s: ${phaseOf(r)}`);
    } else if (r.status === 'awaiting_approval' && !saidWaiting && !out.json) {
      saidWaiting = true;
      out.err(`run ${id} is ${phaseOf(r)}`);
    }
    if (r.status !== 'awaiting_approval') saidWaiting = false;
  };
  const onSignal = () => {
    clear();
    out.err(
      `stopped waiting; run ${id} goes on. Follow it with: caxton run show ${id}; stop it with: caxton run cancel ${id}`,
    );
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  try {
    const streamed = await followStream(client, id, show);
    if (streamed !== undefined && ENDED.has(streamed.status)) {
      clear();
      return streamed;
    }
    for (;;) {
      let r: RunViewJson;
      try {
        r = await client.get<RunViewJson>(runPath(id));
        downSince = undefined;
      } catch (e) {
        if (!(e instanceof CliError) || (e.json as ApiError['body'] | undefined)?.error?.code !== 'server_unreachable')
          throw e;
        downSince ??= Date.now();
        const down = Math.round((Date.now() - downSince) / 1000);
        if (Date.now() - downSince > SERVER_GONE_MS) {
          clear();
          e.lines.push(`the run resumes when the server is back; follow it then with: caxton run show ${id}`);
          throw e;
        }
        if (tty)
          process.stderr.write(
            `\r\x1b[2K${SPINNER[frame++ % SPINNER.length]} server unreachable for ${down}s, trying again`,
          );
        else if (down === 0 && !out.json)
          out.err(
            `the server is unreachable; trying again for ${SERVER_GONE_MS / 1000} s (the run resumes when it is back)`,
          );
        await new Promise((res) => setTimeout(res, 1000));
        continue;
      }
      if (ENDED.has(r.status)) {
        clear();
        return r;
      }
      show(r);
      await new Promise((res) => setTimeout(res, Date.now() - t0 < 10_000 ? 250 : 1000));
    }
  } finally {
    process.off('SIGINT', onSignal);
  }
}

export function registerRunCommands(program: Command, ctx: CliContext): void {
  const run = program
    .command('run')
    .description(
      'durable runs: start an agent in the background, list and show runs step by step, cancel them, approve or deny tool calls',
    );

  registerRunStart(run, ctx);
  registerRunList(run, ctx);
  registerRunShow(run, ctx);
  registerRunCancel(run, ctx);
  registerRunDecide(run, ctx);
}

/** `caxton run start`: an agent run in the background. */
function registerRunStart(run: Command, ctx: CliContext): void {
  run
    .command('start')
    .description('start a run in the background and print its id (it survives server restarts)')
    .argument('<agent>', 'agent name (NAME or NAME@VERSION)')
    .argument('<request>', 'what to ask the agent')
    .option('--context <text>', 'extra context ({{context}} in the prompt)')
    .option(
      '--param <name=value>',
      'set a prompt parameter ({{parameters.NAME}}); repeatable',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option('--conversation <id>', 'conversation id to attach the request to')
    .option(
      '--idempotency-key <key>',
      'the same key from the same caller to the same agent is the same run (start it again safely)',
      idempotencyKey,
    )
    .option(
      '--wait',
      'follow the run until it ends and print its answer (Ctrl-C stops waiting, not the run; a server restart is waited out)',
    )
    .addHelpText(
      'after',
      '\nExit codes: 0 started (with --wait: completed), 1 an API error or (with --wait) a failed or cancelled run, 2 usage error; 130 when Ctrl-C stops --wait.\n' +
        'Examples:\n  caxton run start assistant "What is 6 times 7?" --wait\n  id=$(caxton run start assistant "Summarize the report" --idempotency-key report-42)\n  caxton run show "$id"',
    )
    .action(
      async (
        agent: string,
        request: string,
        opts: { context?: string; param: string[]; conversation?: string; idempotencyKey?: string; wait?: boolean },
      ) => {
        const out = ctx.output();
        const client = ctx.client();
        const body = {
          request,
          ...(opts.context !== undefined && { context: opts.context }),
          ...(opts.param.length > 0 && { parameters: parseParams(opts.param) }),
          ...(opts.conversation !== undefined && { conversation_id: opts.conversation }),
        };
        const { data } = await runsApi('runs', () =>
          client.post<StartedJson>(`/api/v1/agents/${encodeURIComponent(agent)}/runs`, body, {
            ...(opts.idempotencyKey !== undefined && { headers: { 'idempotency-key': opts.idempotencyKey } }),
          }),
        );
        if (!opts.wait) {
          if (out.json) return out.data(data);
          out.out(data.run_id);
          return out.err(`follow it with: caxton run show ${data.run_id}`);
        }
        if (!out.json) out.err(`run ${data.run_id}`);
        const r = await follow(client, data.run_id, out);
        if (r.status !== 'completed') process.exitCode = 1;
        if (out.json) return out.data(r);
        if (r.status === 'completed' && r.response) {
          out.out(r.response.content);
          return out.err(usageLine(r.response));
        }
        throw new CliError(
          r.status === 'cancelled' ? `run ${r.id} was cancelled` : `run ${r.id} ${r.status}: ${r.error?.message ?? ''}`,
          { lines: [`see its steps with: caxton run show ${r.id}`], json: r },
        );
      },
    );
}

/** `caxton run list`. */
function registerRunList(run: Command, ctx: CliContext): void {
  run
    .command('list')
    .alias('ls')
    .description('list runs, newest first')
    .option('--agent <name>', 'only this agent')
    .option('--status <status>', `only this status: ${STATUSES.join(', ')}`)
    .option('--origin <origin>', `only runs started this way: ${ORIGINS.join(', ')}`)
    .option('--waiting', 'only runs waiting for a person to approve a tool call (--status awaiting_approval)')
    .option('--limit <n>', 'at most this many (default 50, at most 500)', positiveInt('--limit', 500))
    .option('--cursor <cursor>', 'the next page (the cursor printed under the previous one)')
    .addHelpText(
      'after',
      '\nExamples:\n  caxton run list --status running\n  caxton run list --waiting\n  caxton run list --agent assistant --origin background --json',
    )
    .action(
      async (opts: {
        agent?: string;
        status?: string;
        origin?: string;
        waiting?: boolean;
        limit?: number;
        cursor?: string;
      }) => {
        const out = ctx.output();
        if (opts.waiting && opts.status !== undefined && opts.status !== 'awaiting_approval')
          throw usageError(`--waiting lists the runs awaiting approval: give it without --status ${opts.status}`);
        const status = opts.waiting ? 'awaiting_approval' : opts.status;
        if (status !== undefined && !STATUSES.includes(status))
          throw usageError(`--status expects one of ${STATUSES.join(', ')}, got "${status}"`);
        if (opts.origin !== undefined && !ORIGINS.includes(opts.origin))
          throw usageError(`--origin expects one of ${ORIGINS.join(', ')}, got "${opts.origin}"`);
        const q = new URLSearchParams();
        if (opts.agent !== undefined) q.set('agent', opts.agent);
        if (status !== undefined) q.set('status', status);
        if (opts.origin !== undefined) q.set('origin', opts.origin);
        if (opts.limit !== undefined) q.set('limit', String(opts.limit));
        if (opts.cursor !== undefined) q.set('cursor', opts.cursor);
        const res = await runsApi('runs', () =>
          ctx.client().get<{ runs: RunJson[]; next_cursor?: string }>(`/api/v1/runs${q.size > 0 ? `?${q}` : ''}`),
        ).catch((e: unknown) => {
          // A server without approvals refuses the status by name: say what it lacks instead.
          if (e instanceof ApiError && e.status === 400 && status === 'awaiting_approval')
            throw olderServer('approvals', e, 'it knows no awaiting_approval status');
          throw e;
        });
        if (out.json) return out.data(res);
        if (res.runs.length === 0) return out.err(opts.waiting ? 'no run is waiting for approval' : 'no runs match');
        out.out(
          table(
            ['ID', 'AGENT', 'STATUS', 'ORIGIN', 'RESUMES', 'CREATED'],
            res.runs.map((r) => [
              r.id,
              truncate(r.agent, 30),
              statusText(r),
              r.origin,
              String(r.resumes),
              r.created_at,
            ]),
          ),
        );
        if (res.next_cursor !== undefined) out.out(`(more: --cursor ${res.next_cursor})`);
      },
    );
}

/** `caxton run show <id>`: a run step by step. */
function registerRunShow(run: Command, ctx: CliContext): void {
  run
    .command('show')
    .description('show a run and each step: model turns, tool calls with their arguments and results, the answer')
    .argument('<run>', 'run id (from `caxton run list` or `caxton run start`)')
    .action(async (raw: string) => {
      const out = ctx.output();
      const r = await runsApi('runs', () => ctx.client().get<RunViewJson>(runPath(runId(raw))));
      if (out.json) return out.data(r);
      out.out(describeRun(r));
    });
}

/** `caxton run cancel <id>`. */
function registerRunCancel(run: Command, ctx: CliContext): void {
  run
    .command('cancel')
    .description('cancel a run: stop it, or keep an interrupted one from resuming (an ended run stays as it is)')
    .argument('<run>', 'run id')
    .action(async (raw: string) => {
      const out = ctx.output();
      const id = runId(raw);
      const client = ctx.client();
      // Read first: the answer of a cancel is the same for a run it stopped and one cancelled before.
      const before = await runsApi('runs', () => client.get<RunJson>(runPath(id)));
      const { data } = await client.post<RunJson>(`${runPath(id)}/cancel`);
      if (out.json) return out.data(data);
      out.out(
        ENDED.has(before.status)
          ? `run ${data.id} had already ended (${statusText(data)}); nothing to cancel`
          : data.status === 'cancelled'
            ? `cancelled run ${data.id}`
            : `run ${data.id} ended before it could be cancelled (${statusText(data)})`,
      );
    });
}

/** `caxton run approve` and `caxton run deny`: decide a tool call waiting for approval. */
function registerRunDecide(run: Command, ctx: CliContext): void {
  for (const approve of [true, false]) {
    const verb = approve ? 'approve' : 'deny';
    run
      .command(verb)
      .description(
        approve
          ? 'approve a tool call a run is waiting on: the call runs and the run goes on'
          : 'deny a tool call a run is waiting on: the call does not run, the model is told why',
      )
      .argument('<run>', 'run id (see `caxton run list --waiting`)')
      .argument('[call]', 'the call id (see `caxton run show RUN`); default: the first call the run waits on')
      .option('--reason <text>', approve ? 'why (kept with the decision)' : 'why (kept, and given to the model)')
      .addHelpText(
        'after',
        `\nExamples:\n  caxton run list --waiting\n  caxton run ${verb} RUN${approve ? '' : ' --reason "not on production"'}`,
      )
      .action(async (raw: string, call: string | undefined, opts: { reason?: string }) => {
        const out = ctx.output();
        const id = runId(raw);
        const { data } = await runsApi('approvals', () =>
          ctx.client().post<RunJson>(`${runPath(id)}/${verb}`, {
            ...(call !== undefined && { call_id: call }),
            ...(opts.reason !== undefined && { reason: opts.reason }),
          }),
        );
        if (out.json) return out.data(data);
        out.out(
          `${approve ? 'approved' : 'denied'} ${call !== undefined ? `call ${call}` : 'the waiting call'} of run ${data.id}; the run is ${statusText(data)}`,
        );
        if (data.status === 'awaiting_approval') out.err(`it waits on another call: caxton run show ${data.id}`);
      });
  }
}
