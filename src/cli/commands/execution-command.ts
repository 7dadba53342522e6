import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { usageError } from '../errors.js';
import { table, truncate } from '../output.js';
import { positiveInt } from '../number-flags.js';

// The CLI stays free of the server's modules: the record's shape is repeated here as it arrives.
interface ExecutionJson {
  id: string;
  agent: string;
  version: string;
  principal: string | null;
  conversation_id: string | null;
  status: 'ok' | 'error';
  error: { code: string; message: string } | null;
  started_at: string;
  duration_ms: number;
  model: string | null;
  usage: { input_tokens: number; output_tokens: number };
  turns: number;
  trace_id: string | null;
  node: string | null;
}
interface ExecutionDetailJson extends Omit<ExecutionJson, 'tool_calls'> {
  request: string;
  answer: string | null;
  finish_reason: string | null;
  model_turns: {
    turn: number;
    provider: string;
    model: string;
    input_tokens: number;
    output_tokens: number;
    latency_ms: number;
  }[];
  tool_calls: { name: string; arguments: string; result: string; outcome: string; duration_ms: number }[];
  links: { trace: string | null };
}

const STATUSES = ['ok', 'error'];
const ms = (n: number) => `${Math.round(n)} ms`;

export function registerExecutionCommands(program: Command, ctx: CliContext): void {
  const cmd = program
    .command('execution')
    .alias('exec')
    .description('finished executions: what each agent run did (model turns, tool calls, tokens, errors)');

  cmd
    .command('list')
    .description('list executions, newest first')
    .option('--agent <name>', 'only this agent')
    .option('--conversation <id>', 'only this conversation')
    .option('--principal <id>', 'only runs for this caller (key:ci, oidc:SUBJECT...)')
    .option('--status <status>', `only this status: ${STATUSES.join(', ')}`)
    .option('--since <when>', 'only runs since then: an ISO 8601 time or a duration ago ("1h")')
    .option('--limit <n>', 'at most this many (default 50, at most 1000)', positiveInt('--limit', 1000))
    .option('--cursor <cursor>', 'the next page (the cursor printed under the previous one)')
    .addHelpText(
      'after',
      '\nExamples:\n  caxton execution list --since 1h\n  caxton execution list --agent assistant --status error --json',
    )
    .action(
      async (opts: {
        agent?: string;
        conversation?: string;
        principal?: string;
        status?: string;
        since?: string;
        limit?: number;
        cursor?: string;
      }) => {
        const out = ctx.output();
        if (opts.status !== undefined && !STATUSES.includes(opts.status))
          throw usageError(`--status expects one of ${STATUSES.join(', ')}, got "${opts.status}"`);
        const q = new URLSearchParams();
        for (const k of ['agent', 'conversation', 'principal', 'status', 'since', 'cursor'] as const)
          if (opts[k] !== undefined) q.set(k, opts[k]);
        if (opts.limit !== undefined) q.set('limit', String(opts.limit));
        const res = await ctx
          .client()
          .get<{ executions: ExecutionJson[]; next_cursor?: string }>(`/api/v1/executions${q.size > 0 ? `?${q}` : ''}`);
        if (out.json) return out.data(res);
        if (res.executions.length === 0) return out.err('no executions match');
        out.out(
          table(
            ['ID', 'STARTED', 'AGENT', 'STATUS', 'DURATION', 'TURNS', 'TOKENS', 'PRINCIPAL', 'NODE'],
            res.executions.map((e) => [
              e.id,
              e.started_at,
              truncate(e.agent, 30),
              e.status === 'ok' ? 'ok' : `error (${e.error?.code ?? '?'})`,
              ms(e.duration_ms),
              String(e.turns),
              `${e.usage.input_tokens}/${e.usage.output_tokens}`,
              truncate(e.principal ?? '-', 30),
              e.node ?? '-',
            ]),
          ),
        );
        if (res.next_cursor !== undefined) out.out(`(more: --cursor ${res.next_cursor})`);
      },
    );

  cmd
    .command('show <id>')
    .description('show one execution: its model turns, tool calls, tokens and error')
    .action(async (id: string) => {
      const out = ctx.output();
      const e = await ctx.client().get<ExecutionDetailJson>(`/api/v1/executions/${encodeURIComponent(id)}`);
      if (out.json) return out.data(e);
      const lines = [
        `${e.id}  ${e.agent} (version ${e.version})  ${e.status === 'ok' ? 'ok' : `error ${e.error?.code ?? ''}: ${e.error?.message ?? ''}`}`,
        `started ${e.started_at}, ${ms(e.duration_ms)}, ${e.turns} turns, tokens ${e.usage.input_tokens} in / ${e.usage.output_tokens} out`,
        `principal ${e.principal ?? '-'}  conversation ${e.conversation_id ?? '-'}  node ${e.node ?? '-'}  trace ${e.trace_id ?? '-'}`,
        '',
        `request: ${truncate(e.request, 200)}`,
      ];
      for (const t of e.model_turns)
        lines.push(
          `turn ${t.turn}: ${t.provider}/${t.model}, ${ms(t.latency_ms)}, tokens ${t.input_tokens}/${t.output_tokens}`,
        );
      for (const c of e.tool_calls)
        lines.push(
          `tool ${c.name} ${c.outcome} ${ms(c.duration_ms)}: ${truncate(c.arguments, 80)} → ${truncate(c.result, 80)}`,
        );
      if (e.answer !== null) lines.push(`answer: ${truncate(e.answer, 400)}`);
      out.out(lines.join('\n'));
    });
}
