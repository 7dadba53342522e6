import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { usageError } from '../errors.js';
import { nonNegativeInt, positiveInt } from '../number-flags.js';
import type { Output } from '../output.js';
import { DEFAULT_BATCH_SIZE, sendMessageFile } from './message-batch-command.js';

/** A stored message as the API serves it. */
/** Who signed a message, as GET /api/v1/messages/{id} says (with [messaging] signing). */
interface Signer {
  key: string;
  owner: string;
  node: string;
  valid: boolean;
  problem?: string;
}

export interface MessageJson {
  id: string;
  performative: string;
  sender: string;
  receivers: string[];
  capability?: string;
  content: unknown;
  conversation_id: string;
  protocol?: string;
  ontology?: string;
  language?: string;
  in_reply_to?: string;
  reply_by?: string;
  params: Record<string, string>;
  timestamp: string;
  chain: string[];
  routed_to: string[];
}

export interface ConversationJson {
  id: string;
  protocol: string | null;
  state: 'initiated' | 'in_progress' | 'completed' | 'failed' | 'expired';
  initiator: string;
  participants: string[];
  capability: string | null;
  turns: number;
  max_turns: number;
  created_at: string;
  updated_at: string;
  expires_at: string | null;
  reason: string | null;
  failed_participants?: { agent: string; reason: string; dead_letter: number | null; at: string }[];
}

interface SubmitJson {
  id: string;
  conversation_id: string;
  performative: string;
  routed_to: string[];
  routing: 'named' | 'one' | 'all' | 'none';
  duplicate: boolean;
  failure?: { reason: string; message: string; reply_id: string };
  conversation?: ConversationJson;
  messages?: MessageJson[];
}

interface DeliveryJson {
  id: number;
  receiver: string;
  state: string;
  attempts: number;
  last_error: string | null;
  updated_at: string;
}

/** Longest --wait the server accepts, seconds. */
const MAX_WAIT_S = 300;
const DEFAULT_WAIT_S = 60;
const TERMINAL = new Set(['completed', 'failed', 'expired']);

export const collect = (v: string, acc: string[] | undefined): string[] => [...(acc ?? []), v];

export function isTerminalState(state: string): boolean {
  return TERMINAL.has(state);
}

export function contentText(c: unknown): string {
  return typeof c === 'string' ? c : JSON.stringify(c);
}

/** Indents every line but the first (blank lines stay empty). */
function indentRest(text: string): string {
  return text
    .split('\n')
    .map((l, i) => (i === 0 || l.trim() === '' ? l.trimEnd() : `    ${l}`))
    .join('\n');
}

/** One message as a line (or a few): time, act, sender → receivers, content. */
export function messageLine(m: MessageJson): string {
  const to =
    m.receivers.length > 0
      ? m.receivers.join(', ')
      : m.capability !== undefined
        ? `capability "${m.capability}"${m.routed_to.length > 0 ? ` (${m.routed_to.join(', ')})` : ''}`
        : '?';
  const time = m.timestamp.slice(11, 23);
  const text = contentText(m.content);
  const head = `${time}  [${m.performative}] ${m.sender} → ${to}`;
  return text === '' ? head : `${head}: ${indentRest(text)}`;
}

export function conversationLine(c: ConversationJson): string {
  const failed = (c.failed_participants ?? []).map((f) => f.agent);
  const without = failed.length > 0 ? `; went on without ${failed.join(', ')} (failed)` : '';
  return `conversation ${c.id} is ${c.state}${c.reason ? ` (${c.reason})` : ''}${without}`;
}

/** Process exit code for a conversation outcome: 0 completed, 1 otherwise. */
export function outcomeExit(c: ConversationJson): number {
  return c.state === 'completed' ? 0 : 1;
}

function routingText(r: SubmitJson): string {
  switch (r.routing) {
    case 'named':
      return `to ${r.routed_to.join(', ')}`;
    case 'one':
      return `to ${r.routed_to[0]} (one provider of the capability)`;
    case 'all':
      return `to ${r.routed_to.join(', ')} (every provider of the capability)`;
    case 'none':
      return 'nowhere';
  }
}

interface SendOptions {
  capability?: string;
  to?: string[];
  performative: string;
  content?: string;
  contentJson?: string;
  conversation?: string;
  protocol?: string;
  ontology?: string;
  language?: string;
  replyBy?: string;
  replyWith?: string;
  inReplyTo?: string;
  sender?: string;
  id?: string;
  param?: string[];
  wait?: string | true;
  file?: string;
  batchSize?: number;
}

/** Builds the message body from the options; usage errors exit 2. */
function messageBody(opts: SendOptions): Record<string, unknown> {
  const o = { ...opts, to: opts.to ?? [], param: opts.param ?? [] };
  if (o.capability !== undefined && o.to.length > 0) throw usageError('give either --capability or --to, not both');
  if (o.capability === undefined && o.to.length === 0)
    throw usageError('say where the message goes: --capability NAME (the platform picks a provider) or --to AGENT');
  if (o.content !== undefined && o.contentJson !== undefined)
    throw usageError('give either --content or --content-json, not both');
  let content: unknown = o.content;
  if (o.contentJson !== undefined) {
    try {
      content = JSON.parse(o.contentJson);
    } catch (e) {
      throw usageError(`--content-json is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  if (content === undefined && o.performative.toLowerCase() !== 'cancel')
    throw usageError('the message needs content: --content TEXT or --content-json JSON');
  const params: Record<string, string> = {};
  for (const p of o.param) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw usageError(`--param expects X-NAME=VALUE, got "${p}"`);
    params[p.slice(0, eq)] = p.slice(eq + 1);
  }
  return {
    performative: o.performative,
    ...(o.capability !== undefined && { capability: o.capability }),
    ...(o.to.length === 1 && { receiver: o.to[0] }),
    ...(o.to.length > 1 && { receivers: o.to }),
    ...(content !== undefined && { content }),
    ...(o.id !== undefined && { id: o.id }),
    ...(o.sender !== undefined && { sender: o.sender }),
    ...(o.conversation !== undefined && { conversation_id: o.conversation }),
    ...(o.protocol !== undefined && { protocol: o.protocol }),
    ...(o.ontology !== undefined && { ontology: o.ontology }),
    ...(o.language !== undefined && { language: o.language }),
    ...(o.replyBy !== undefined && { reply_by: o.replyBy }),
    ...(o.replyWith !== undefined && { reply_with: o.replyWith }),
    ...(o.inReplyTo !== undefined && { in_reply_to: o.inReplyTo }),
    ...(o.param.length > 0 && { params }),
  };
}

function waitSeconds(w: string | true | undefined): number | undefined {
  if (w === undefined) return undefined;
  if (w === true) return DEFAULT_WAIT_S;
  const n = Number(w);
  if (!/^\d+(\.\d+)?$/.test(w.trim()) || !(n >= 0 && n <= MAX_WAIT_S))
    throw usageError(`--wait expects seconds between 0 and ${MAX_WAIT_S}, got "${w}"`);
  return n;
}

function printSent(out: Output, r: SubmitJson): void {
  out.out(`${r.duplicate ? 'already accepted (same message id): ' : 'sent '}${r.performative} ${r.id}`);
  out.out(`conversation ${r.conversation_id}`);
  if (r.failure) out.err(`not delivered: ${r.failure.message}`);
  else out.out(`routed ${routingText(r)}`);
}

export function registerMessageCommands(program: Command, ctx: CliContext): void {
  const message = program
    .command('message')
    .description('send FIPA-ACL messages to agents (by capability or by name) and look them up');

  registerMessageSend(message, ctx);
  registerMessageList(message, ctx);
  registerMessageShow(message, ctx);
}

/** `caxton message send`: one message, or a batch from a file. */
function registerMessageSend(message: Command, ctx: CliContext): void {
  message
    .command('send')
    .description(
      'send a message; the platform routes a capability to its provider(s) and runs the protocol (request: agree, then inform or failure)',
    )
    .option('-c, --capability <capability>', 'address a capability (the platform picks the provider)')
    .option('--to <agent>', 'address an agent by name; repeatable', collect)
    .option(
      '--performative <act>',
      'the FIPA act: request, query-ref, query-if, inform, cfp, subscribe, ...',
      'request',
    )
    .option('--content <text>', 'the content, as text')
    .option('--content-json <json>', 'the content, as a JSON value')
    .option('--conversation <id>', 'continue this conversation (default: start a new one)')
    .option(
      '--protocol <protocol>',
      'fipa-request, fipa-query, fipa-contract-net, fipa-subscribe, fipa-english-auction, fipa-dutch-auction or fipa-iterated-contract-net (default: from the act)',
    )
    .option('--ontology <ontology>', 'the ontology of the content')
    .option('--language <language>', 'the content language')
    .option('--reply-by <time>', 'when a reply is wanted: an ISO 8601 time or a duration such as 30s')
    .option('--reply-with <id>', 'the id replies should carry in in_reply_to')
    .option('--in-reply-to <id>', 'the message this one answers')
    .option('--sender <name>', 'who the message is from (default "user")')
    .option('--id <id>', 'the message id: sending the same id again is safe (it is stored and delivered once)')
    .option('--param <X-name=value>', 'a user-defined parameter; repeatable', collect)
    .option(
      '--wait [seconds]',
      `wait for the conversation to end (default ${DEFAULT_WAIT_S} s, at most ${MAX_WAIT_S}) and print the replies`,
    )
    .option(
      '--file <path>',
      'send the messages of a JSON Lines file ("-" for stdin), one API message body per line, in batches',
    )
    .option(
      '--batch-size <n>',
      `messages per request with --file (default ${DEFAULT_BATCH_SIZE}, at most the server's [messaging] max_batch_messages)`,
      positiveInt('--batch-size', 100_000),
    )
    .addHelpText(
      'after',
      '\nExit codes: 0 sent (with --wait: the conversation completed), 1 an API error, an unroutable message or (with --wait) a failed, expired or still open conversation, 2 usage error.\n' +
        'With --file: exit 1 when any message was refused (each named by its line); the others are still sent.\n' +
        'Examples:\n  caxton message send --file msgs.jsonl --json\n  caxton message send --capability question-answering --performative query-ref --content "What is Caxton?" --wait\n  caxton message send --to assistant --performative inform --content-json \'{"rates": "up"}\'',
    )
    .action(async (opts: SendOptions) => {
      if (opts.file !== undefined) {
        const others = Object.keys(opts).filter(
          (k) =>
            !['file', 'batchSize', 'performative', 'to', 'param'].includes(k) &&
            opts[k as keyof SendOptions] !== undefined,
        );
        if (
          others.length > 0 ||
          (opts.to?.length ?? 0) > 0 ||
          (opts.param?.length ?? 0) > 0 ||
          opts.performative !== 'request'
        )
          throw usageError('--file sends the messages as written in the file: give no other message option with it');
        return sendMessageFile(ctx, opts.file, opts.batchSize ?? DEFAULT_BATCH_SIZE);
      }
      if (opts.batchSize !== undefined) throw usageError('--batch-size goes with --file');
      const out = ctx.output();
      const body = messageBody(opts);
      const wait = waitSeconds(opts.wait);
      const path = `/api/v1/messages${wait !== undefined ? `?wait=${wait}` : ''}`;
      const { data } = await ctx.client().post<SubmitJson>(path, body, { timeoutMs: ((wait ?? 0) + 30) * 1000 });
      let exit = data.failure ? 1 : 0;
      if (data.conversation) exit = Math.max(exit, outcomeExit(data.conversation));
      process.exitCode = exit;
      if (out.json) return out.data(data);
      printSent(out, data);
      if (!data.conversation) return;
      const c = data.conversation;
      const replies = (data.messages ?? []).filter((m) => m.id !== data.id);
      if (replies.length > 0) out.out(['', ...replies.map(messageLine), ''].join('\n'));
      if (isTerminalState(c.state)) out.out(conversationLine(c));
      else out.err(`${conversationLine(c)} after ${wait} s; follow it with: caxton conversation show ${c.id} --follow`);
    });
}

/** `caxton message list`: messages, newest first. */
function registerMessageList(message: Command, ctx: CliContext): void {
  message
    .command('list')
    .alias('ls')
    .description('list messages, newest first')
    .option('--performative <act>', 'only this act, e.g. inform or cfp')
    .option('--sender <name>', 'only from this sender')
    .option('--receiver <agent>', 'only delivered (or being delivered) to this agent')
    .option('--conversation <id>', 'only in this conversation')
    .option('--limit <n>', 'at most this many (default 50, at most 1000)', positiveInt('--limit', 1000))
    .option('--offset <n>', 'skip this many', nonNegativeInt('--offset'))
    .addHelpText(
      'after',
      '\nExamples:\n  caxton message list --performative propose --conversation conv_...\n  caxton message list --receiver helper --json',
    )
    .action(
      async (opts: {
        performative?: string;
        sender?: string;
        receiver?: string;
        conversation?: string;
        limit?: number;
        offset?: number;
      }) => {
        const out = ctx.output();
        const q = new URLSearchParams();
        if (opts.performative) q.set('performative', opts.performative);
        if (opts.sender) q.set('sender', opts.sender);
        if (opts.receiver) q.set('receiver', opts.receiver);
        if (opts.conversation) q.set('conversation_id', opts.conversation);
        if (opts.limit !== undefined) q.set('limit', String(opts.limit));
        if (opts.offset !== undefined) q.set('offset', String(opts.offset));
        const res = await ctx
          .client()
          .get<{ messages: MessageJson[]; total: number; limit: number; offset: number }>(
            `/api/v1/messages${q.size > 0 ? `?${q}` : ''}`,
          );
        if (out.json) return out.data(res);
        if (res.messages.length === 0)
          return out.out(
            res.total > 0 ? `no messages past offset ${res.offset} (${res.total} match)` : 'no messages match',
          );
        out.out(
          [...res.messages.map(messageLine), `(${res.messages.length} of ${res.total}, newest first)`].join('\n'),
        );
      },
    );
}

/** `caxton message show <id>`: one message, its routing and deliveries. */
function registerMessageShow(message: Command, ctx: CliContext): void {
  message
    .command('show')
    .description('show one message, where it was routed and its deliveries')
    .argument('<id>', 'message id')
    .action(async (id: string) => {
      const out = ctx.output();
      const m = await ctx
        .client()
        .get<MessageJson & { deliveries: DeliveryJson[]; signer?: Signer }>(
          `/api/v1/messages/${encodeURIComponent(id)}`,
        );
      if (out.json) return out.data(m);
      out.out(
        [
          `id:           ${m.id}`,
          `performative: ${m.performative}`,
          `from:         ${m.sender}`,
          `to:           ${m.receivers.length > 0 ? m.receivers.join(', ') : `capability "${m.capability}"`}`,
          `routed to:    ${m.routed_to.join(', ') || '(nobody)'}`,
          `conversation: ${m.conversation_id}${m.protocol ? ` (${m.protocol})` : ''}`,
          ...(m.in_reply_to ? [`in reply to:  ${m.in_reply_to}`] : []),
          ...(m.reply_by ? [`reply by:     ${m.reply_by}`] : []),
          ...(Object.keys(m.params).length > 0
            ? [
                `params:       ${Object.entries(m.params)
                  .map(([k, v]) => `${k}=${v}`)
                  .join(' ')}`,
              ]
            : []),
          `sent at:      ${m.timestamp}`,
          ...(m.signer
            ? [
                `signed by:    ${m.signer.owner} on node ${m.signer.node} (key ${m.signer.key}): ${m.signer.valid ? 'valid' : `INVALID, ${m.signer.problem ?? 'does not verify'}`}`,
              ]
            : []),
          'content:',
          contentText(m.content).replace(/^/gm, '  '),
          ...(m.deliveries.length > 0
            ? [
                'deliveries:',
                ...m.deliveries.map(
                  (d) =>
                    `  #${d.id} ${d.receiver}: ${d.state}, ${d.attempts} attempt(s)${d.last_error ? `; last error: ${d.last_error}` : ''}`,
                ),
              ]
            : []),
        ].join('\n'),
      );
    });
}
