import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { CliError } from '../errors.js';
import { nonNegativeInt, positiveInt } from '../number-flags.js';
import { table, truncate } from '../output.js';
import type { ConversationBids } from '../../messaging/index.js';
import { bidsLines } from './bids-command.js';
import {
  conversationLine,
  isTerminalState,
  messageLine,
  type ConversationJson,
  type MessageJson,
} from './message-command.js';

function header(c: ConversationJson): string[] {
  return [
    `conversation: ${c.id}`,
    `state:        ${c.state}${c.reason ? ` (${c.reason})` : ''}`,
    `protocol:     ${c.protocol ?? '(none)'}`,
    `initiator:    ${c.initiator}${c.capability ? ` → capability "${c.capability}"` : ''}`,
    `participants: ${c.participants.join(', ')}`,
    ...(c.failed_participants ?? []).map((f) => `failed:       ${f.agent} (${f.reason})`),
    `turns:        ${c.turns} of at most ${c.max_turns}`,
    `started:      ${c.created_at}   updated: ${c.updated_at}${c.expires_at ? `   expires: ${c.expires_at}` : ''}`,
  ];
}

export function registerConversationCommands(program: Command, ctx: CliContext): void {
  const conversation = program
    .command('conversation')
    .alias('conv')
    .description('list and follow conversations between agents');

  conversation
    .command('list')
    .alias('ls')
    .description('list conversations, newest first')
    .option('--state <state>', 'initiated, in_progress, completed, failed or expired')
    .option('--participant <name>', 'only conversations this agent (or party, e.g. "user") took part in')
    .option('--limit <n>', 'at most this many (default 50, at most 1000)', positiveInt('--limit', 1000))
    .option('--offset <n>', 'skip this many', nonNegativeInt('--offset'))
    .action(async (opts: { state?: string; participant?: string; limit?: number; offset?: number }) => {
      const out = ctx.output();
      const q = new URLSearchParams();
      if (opts.state !== undefined) q.set('state', opts.state);
      if (opts.participant !== undefined) q.set('participant', opts.participant);
      if (opts.limit !== undefined) q.set('limit', String(opts.limit));
      if (opts.offset !== undefined) q.set('offset', String(opts.offset));
      const res = await ctx
        .client()
        .get<{ conversations: ConversationJson[]; total: number; limit: number; offset: number }>(
          `/api/v1/conversations${q.size > 0 ? `?${q}` : ''}`,
        );
      if (out.json) return out.data(res);
      if (res.conversations.length === 0)
        return out.out(
          res.total > 0 ? `no conversations past offset ${res.offset} (${res.total} in all)` : 'no conversations',
        );
      out.out(
        table(
          ['ID', 'STATE', 'PROTOCOL', 'INITIATOR', 'PARTICIPANTS', 'TURNS', 'UPDATED', 'REASON'],
          res.conversations.map((c) => [
            c.id,
            c.state,
            c.protocol ?? '-',
            c.initiator,
            truncate(c.participants.join(','), 40),
            String(c.turns),
            c.updated_at,
            truncate(c.reason ?? '', 60),
          ]),
        ),
      );
      if (res.total > res.offset + res.conversations.length || res.offset > 0)
        out.out(
          `(${res.offset + 1}-${res.offset + res.conversations.length} of ${res.total}; see --limit and --offset)`,
        );
    });

  conversation
    .command('show')
    .description(
      'show a conversation and its messages, and for a call for proposals its bids: values, ranking, rule and why the winner won; --follow prints new messages as they come until it ends',
    )
    .argument('<id>', 'conversation id')
    .option('-f, --follow', 'stream the conversation until it ends (completed, failed or expired)')
    .action(async (id: string, opts: { follow?: boolean }) => {
      const out = ctx.output();
      const client = ctx.client();
      const path = `/api/v1/conversations/${encodeURIComponent(id)}`;
      if (!opts.follow) {
        const res = await client.get<{
          conversation: ConversationJson;
          messages: MessageJson[];
          bids?: ConversationBids | null;
        }>(path);
        if (out.json) return out.data(res);
        out.out(
          [
            ...header(res.conversation),
            '',
            ...(res.messages.length > 0 ? res.messages.map(messageLine) : ['(no messages)']),
            ...(res.bids ? ['', ...bidsLines(res.bids)] : []),
          ].join('\n'),
        );
        return;
      }
      // Following: the stream replays the stored messages and the state, then goes live.
      // With --json every event is one JSON line: {"event": ..., "data": ...}.
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.once('SIGINT', onSignal);
      let final: ConversationJson | undefined;
      let last: ConversationJson | undefined;
      let printedHeader = false;
      try {
        await client.events(
          `${path}/events`,
          (event, data) => {
            const d = JSON.parse(data) as unknown;
            if (out.json) {
              process.stdout.write(`${JSON.stringify({ event, data: d })}\n`);
            } else if (event === 'message') {
              if (!printedHeader) {
                out.out(`conversation ${id}`);
                printedHeader = true;
              }
              out.out(messageLine(d as MessageJson));
            } else if (event === 'state') {
              const c = d as ConversationJson;
              if (!isTerminalState(c.state)) out.out(`-- ${c.state}`);
            }
            if (event === 'state') last = d as ConversationJson;
            if (event === 'end') {
              final = last;
              return true;
            }
            return false;
          },
          { signal: stop.signal },
        );
      } finally {
        process.off('SIGINT', onSignal);
      }
      if (stop.signal.aborted) return;
      if (!final)
        throw new CliError(
          `the server closed the stream before conversation ${id} ended${last ? ` (it is ${last.state})` : ''}`,
        );
      if (out.json) return;
      out.out(conversationLine(final));
      // The bids, ranked once the conversation has ended (the stream carries messages, not rankings).
      const { bids } = await client.get<{ bids?: ConversationBids | null }>(`${path}?limit=1`);
      if (bids) out.out(['', ...bidsLines(bids)].join('\n'));
    });
}
