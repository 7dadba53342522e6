import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { CliError, usageError } from '../errors.js';
import type { Output } from '../output.js';
import { positiveInt } from '../number-flags.js';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];
const EVENT_FILTERS = [
  'agent.deployed',
  'agent.updated',
  'agent.removed',
  'agent.invalid_file',
  'rollout.started',
  'rollout.stage_advanced',
  'rollout.promoted',
  'rollout.rolled_back',
  'run.awaiting_approval',
  'run.approval_decided',
  'message.sent',
  'message.received',
  'execution.finished',
  'lifecycle',
  'communication',
  'performance',
];

interface LogLine {
  seq: number;
  level: string;
  time: string;
  msg?: string;
  [k: string]: unknown;
}

interface AgentEventJson {
  id: number;
  time: string;
  type: string;
  category: string;
  agent: string;
  trace_id: string | null;
  data: Record<string, unknown>;
}

const HIDDEN = new Set(['seq', 'level', 'time', 'msg', 'service', 'pid', 'hostname']);

/** One log line as text: time, level, message, then the other fields as key=value. */
export function logLineText(l: LogLine): string {
  const fields = Object.entries(l)
    .filter(([k]) => !HIDDEN.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? (/[\s"]/.test(v) ? JSON.stringify(v) : v) : JSON.stringify(v)}`);
  return `${l.time} ${l.level.toUpperCase().padEnd(5)} ${l.msg ?? ''}${fields.length > 0 ? `  ${fields.join(' ')}` : ''}`;
}

/** One agent event as text. */
export function eventText(e: AgentEventJson): string {
  const d = e.data;
  let what: string;
  switch (e.category) {
    case 'lifecycle':
      what = `${String(d.old_state ?? '-')} → ${String(d.new_state)}${d.reason ? ` (${String(d.reason)})` : ''}`;
      break;
    case 'communication':
      what = `${String(d.performative)} ${String(d.sender)} → ${(d.receivers as string[]).join(',') || '-'}  conversation=${String(d.conversation_id)} message=${String(d.message_id)}`;
      break;
    default:
      what = `${String(d.status)} in ${Number(d.duration_ms).toFixed(1)} ms, tokens ${String(d.input_tokens)} in / ${String(d.output_tokens)} out, ${String(d.tool_calls)} tool calls${d.conversation_id ? `  conversation=${String(d.conversation_id)}` : ''}`;
  }
  return `${e.time} ${e.type.padEnd(18)} ${e.agent.padEnd(16)} ${what}${e.trace_id ? `  trace=${e.trace_id}` : ''}`;
}

/** Follows an SSE path until Ctrl-C (or the server ends the stream). */
async function follow(
  ctx: CliContext,
  out: Output,
  path: string,
  on: (event: string, data: unknown) => void,
): Promise<void> {
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await ctx.client().events(
      path,
      (event, data) => {
        const d = JSON.parse(data) as unknown;
        // --json: one JSON object per line (a log line, or an agent event).
        if (out.json) {
          if (event !== 'ready') process.stdout.write(`${JSON.stringify(d)}\n`);
        } else on(event, d);
      },
      { signal: stop.signal },
    );
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (!stop.signal.aborted) throw new CliError('the server closed the stream');
}

export function registerObservabilityCommands(program: Command, ctx: CliContext): void {
  program
    .command('logs')
    .description("show the server's recent log lines (secrets redacted); --follow prints new ones as they are logged")
    .option('--agent <name>', 'only lines about this agent')
    .option('--level <level>', `this level and above: ${LEVELS.join(', ')}`)
    .option('--since <when>', 'only lines since then: an ISO 8601 time or a duration ago ("5m", "1h")')
    .option('--limit <n>', 'the last this many lines (default 100, at most 10000)', positiveInt('--limit', 10_000))
    .option('-f, --follow', 'keep printing new lines until Ctrl-C')
    .addHelpText(
      'after',
      '\nExamples:\n  caxton logs --level warn\n  caxton logs --agent assistant --follow\n  caxton logs --since 10m --json',
    )
    .action(async (opts: { agent?: string; level?: string; since?: string; limit?: number; follow?: boolean }) => {
      const out = ctx.output();
      if (opts.level !== undefined && !LEVELS.includes(opts.level.toLowerCase()))
        throw usageError(`--level expects one of ${LEVELS.join(', ')}, got "${opts.level}"`);
      const q = new URLSearchParams();
      if (opts.agent !== undefined) q.set('agent', opts.agent);
      if (opts.level !== undefined) q.set('level', opts.level.toLowerCase());
      if (opts.since !== undefined) q.set('since', opts.since);
      if (opts.limit !== undefined) q.set('limit', String(opts.limit));
      if (opts.follow) {
        return follow(ctx, out, `/api/v1/logs/stream${q.size > 0 ? `?${q}` : ''}`, (event, d) => {
          if (event === 'log') out.out(logLineText(d as LogLine));
        });
      }
      const res = await ctx
        .client()
        .get<{ logs: LogLine[]; count: number; buffered: number; capacity: number }>(
          `/api/v1/logs${q.size > 0 ? `?${q}` : ''}`,
        );
      if (out.json) return out.data(res);
      if (res.logs.length === 0)
        return out.err(`no log lines match (${res.buffered} buffered of at most ${res.capacity})`);
      for (const l of res.logs) out.out(logLineText(l));
    });

  program
    .command('events')
    .description(
      'show agent events (lifecycle, messages, executions), newest last; --follow prints new ones as they happen',
    )
    .option('--agent <name>', 'only events about this agent')
    .option('--type <types>', `event types or categories, comma-separated: ${EVENT_FILTERS.join(', ')}`)
    .option('--since <when>', 'only events since then: an ISO 8601 time or a duration ago ("5m", "1h")')
    .option('--limit <n>', 'at most this many (default 100, at most 10000)', positiveInt('--limit', 10_000))
    .option('-f, --follow', 'keep printing new events until Ctrl-C (with --since: the stored ones first)')
    .addHelpText(
      'after',
      '\nExamples:\n  caxton events --type lifecycle\n  caxton events --agent assistant --type execution.finished --since 1h\n  caxton events --follow --json',
    )
    .action(async (opts: { agent?: string; type?: string; since?: string; limit?: number; follow?: boolean }) => {
      const out = ctx.output();
      for (const t of (opts.type ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '')) {
        if (!EVENT_FILTERS.includes(t))
          throw usageError(`--type: unknown event type "${t}"; expected one of ${EVENT_FILTERS.join(', ')}`);
      }
      const q = new URLSearchParams();
      if (opts.agent !== undefined) q.set('agent', opts.agent);
      if (opts.type !== undefined) q.set('type', opts.type);
      if (opts.since !== undefined) q.set('since', opts.since);
      if (opts.limit !== undefined) q.set('limit', String(opts.limit));
      if (opts.follow) {
        return follow(ctx, out, `/api/v1/events/stream${q.size > 0 ? `?${q}` : ''}`, (event, d) => {
          if (event !== 'ready') out.out(eventText(d as AgentEventJson));
        });
      }
      const res = await ctx
        .client()
        .get<{ events: AgentEventJson[]; count: number }>(`/api/v1/events${q.size > 0 ? `?${q}` : ''}`);
      if (out.json) return out.data(res);
      if (res.events.length === 0) return out.err('no events match');
      for (const e of [...res.events].reverse()) out.out(eventText(e));
    });
}
