import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { usageError } from '../errors.js';
import { table, truncate } from '../output.js';
import { nonNegativeInt, positiveInt } from '../number-flags.js';
import { contentText, type MessageJson } from './message-command.js';

interface DeadLetterJson {
  id: number;
  message_id: string;
  receiver: string;
  state: string;
  attempts: number;
  last_error: string | null;
  updated_at: string;
  attempt_errors?: { at: string; error: string }[];
  message: Omit<MessageJson, 'routed_to'>;
}

function deadLetterId(v: string): string {
  if (!/^[1-9]\d{0,14}$/.test(v.trim()))
    throw usageError(`a dead-letter id is a positive whole number (see \`caxton dlq list\`), got "${v}"`);
  return v.trim();
}

export function registerDlqCommands(program: Command, ctx: CliContext): void {
  const dlq = program
    .command('dlq')
    .description('the dead-letter queue: deliveries that failed for good; inspect, replay, discard or purge them');

  registerDlqList(dlq, ctx);
  registerDlqShow(dlq, ctx);
  registerDlqReplay(dlq, ctx);
  registerDlqDelete(dlq, ctx);
}

/** `caxton dlq list`: dead letters, oldest first. */
function registerDlqList(dlq: Command, ctx: CliContext): void {
  dlq
    .command('list')
    .alias('ls')
    .description('list dead letters, oldest first')
    .option('--limit <n>', 'at most this many (default 50, at most 1000)', positiveInt('--limit', 1000))
    .option('--offset <n>', 'skip this many', nonNegativeInt('--offset'))
    .option('--receiver <text>', "only those whose receiver's name contains this (any case)")
    .option('--error <text>', 'only those whose last error contains this (any case)')
    .action(async (opts: { limit?: number; offset?: number; receiver?: string; error?: string }) => {
      const out = ctx.output();
      const q = new URLSearchParams();
      if (opts.receiver) q.set('receiver', opts.receiver);
      if (opts.error) q.set('error', opts.error);
      if (opts.limit !== undefined) q.set('limit', String(opts.limit));
      if (opts.offset !== undefined) q.set('offset', String(opts.offset));
      const res = await ctx
        .client()
        .get<{ dead_letters: DeadLetterJson[]; total: number; limit: number; offset: number }>(
          `/api/v1/dead-letters${q.size > 0 ? `?${q}` : ''}`,
        );
      if (out.json) return out.data(res);
      if (res.dead_letters.length === 0)
        return out.out(
          res.total > 0
            ? `no dead letters past offset ${res.offset} (${res.total} in all)`
            : 'the dead-letter queue is empty',
        );
      out.out(
        table(
          ['ID', 'RECEIVER', 'ACT', 'ATTEMPTS', 'CONVERSATION', 'AT', 'LAST ERROR'],
          res.dead_letters.map((d) => [
            String(d.id),
            d.receiver,
            d.message.performative,
            String(d.attempts),
            d.message.conversation_id,
            d.updated_at,
            truncate(d.last_error ?? '', 80),
          ]),
        ),
      );
      if (res.total > res.offset + res.dead_letters.length || res.offset > 0)
        out.out(
          `(${res.offset + 1}-${res.offset + res.dead_letters.length} of ${res.total}; see --limit and --offset)`,
        );
    });
}

/** `caxton dlq show <id>`: one dead letter and why it failed. */
function registerDlqShow(dlq: Command, ctx: CliContext): void {
  dlq
    .command('show')
    .description('show one dead letter: the message, its receiver and why it failed')
    .argument('<id>', 'dead-letter id (from `caxton dlq list`)')
    .action(async (raw: string) => {
      const out = ctx.output();
      const d = await ctx.client().get<DeadLetterJson>(`/api/v1/dead-letters/${deadLetterId(raw)}`);
      if (out.json) return out.data(d);
      const m = d.message;
      out.out(
        [
          `dead letter:  ${d.id}`,
          `receiver:     ${d.receiver}`,
          `attempts:     ${d.attempts}`,
          `failed at:    ${d.updated_at}`,
          `last error:   ${d.last_error ?? '(none)'}`,
          ...(d.attempt_errors?.length
            ? ['each attempt:', ...d.attempt_errors.map((a, i) => `  ${i + 1}. ${a.at}  ${a.error}`)]
            : []),
          `message:      ${m.id} [${m.performative}] from ${m.sender}${m.capability ? ` to capability "${m.capability}"` : ''}`,
          `conversation: ${m.conversation_id}`,
          'content:',
          contentText(m.content).replace(/^/gm, '  '),
          '',
          `replay it with: caxton dlq replay ${d.id}`,
        ].join('\n'),
      );
    });
}

/** `caxton dlq replay <id>`: deliver it again. */
function registerDlqReplay(dlq: Command, ctx: CliContext): void {
  dlq
    .command('replay')
    .description('deliver a dead letter again (fresh attempts); a conversation it failed is reopened')
    .argument('<id>', 'dead-letter id (from `caxton dlq list`)')
    .action(async (raw: string) => {
      const out = ctx.output();
      const { data } = await ctx
        .client()
        .post<{ id: number; message_id: string; receiver: string; conversation_id: string }>(
          `/api/v1/dead-letters/${deadLetterId(raw)}/replay`,
        );
      if (out.json) return out.data(data);
      out.out(`replayed dead letter ${data.id}: message ${data.message_id} is on its way to ${data.receiver} again`);
      out.out(`follow it with: caxton conversation show ${data.conversation_id} --follow`);
    });
}

/** `caxton dlq discard` and `caxton dlq purge`: delete the dead letters a filter takes. */
function registerDlqDelete(dlq: Command, ctx: CliContext): void {
  for (const purge of [false, true]) {
    const action = purge ? 'purge' : 'discard';
    dlq
      .command(action)
      .description(
        purge
          ? 'delete the dead letters a filter takes, with each conversation once nothing else of it is pending'
          : 'delete the dead letters a filter takes (their conversations stay)',
      )
      .option('--receiver <name>', 'only those to this agent (exact, any case)')
      .option('--sender <name>', "only those of this sender's messages (exact, any case)")
      .option('--reason <text>', 'only those whose last error contains this')
      .option('--since <time>', 'only those that failed at or after this time (ISO 8601)')
      .option('--until <time>', 'only those that failed before this time (ISO 8601)')
      .option('--all', 'every dead letter you may read')
      .option('--yes', `${action} them; without it they are only counted`)
      .action(
        async (opts: {
          receiver?: string;
          sender?: string;
          reason?: string;
          since?: string;
          until?: string;
          all?: boolean;
          yes?: boolean;
        }) => {
          const out = ctx.output();
          const { yes, ...sel } = opts;
          if (Object.values(sel).every((v) => v === undefined))
            throw usageError(
              `choose which dead letters: give --receiver, --sender, --reason, --since or --until, or --all`,
            );
          const { data } = await ctx
            .client()
            .post<{ dry_run: boolean; matched: number; discarded: number[]; conversations: number }>(
              `/api/v1/dead-letters/${action}`,
              { ...sel, dry_run: yes !== true },
            );
          if (out.json) return out.data(data);
          const n = (k: number) => `${k} dead letter${k === 1 ? '' : 's'}`;
          if (data.dry_run)
            return out.out(
              data.matched === 0
                ? 'no dead letters match'
                : `${n(data.matched)} match; run again with --yes to ${action} ${data.matched === 1 ? 'it' : 'them'}`,
            );
          out.out(
            `deleted ${n(data.discarded.length)}${purge ? ` and ${data.conversations} conversation${data.conversations === 1 ? '' : 's'}` : ''}` +
              (data.matched > data.discarded.length
                ? ` (${data.matched - data.discarded.length} were replayed or deleted meanwhile)`
                : ''),
          );
        },
      );
  }
}
