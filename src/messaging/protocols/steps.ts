/**
 * The interaction protocols (FIPA-Request, FIPA-Query, Contract Net, Subscribe, and conversations
 * without one) as functions of the stored conversation. Every decision is made inside the
 * conversation's step from what its rows say, never from state kept in a process: on one node and
 * in a cluster alike, whichever step stores the last expected answer makes the award, and the one
 * after it sees the award stored and does nothing. Deadlines (a call for proposals closing) are
 * the conversation's `expires_at`, handled by the engine's deadline sweep.
 */
import type { MessagingConfig } from '../messaging-config.js';
import { isTerminal, type Conversation, type ConversationState } from '../conversation.js';
import { newMessageId, type AclMessage, type Content } from '../message.js';
import { expectsReply, type Performative, type Protocol } from '../performatives.js';
import type { StoredMessage } from '../rows.js';
import { afterDeadline, answered, rejectLate } from './late.js';
import { failedNames, failedParticipantOf } from './participants.js';
import {
  afterRoundReply,
  isRoundProtocol,
  rejectAfterAward,
  roundAtDeadline,
  roundParticipantFailed,
} from './rounds.js';
import { chooseWinner, selectionOf } from './selection.js';

const iso = (t = Date.now()) => new Date(t).toISOString();

/** What a protocol step may do to its conversation (all of it written in the same transaction). */
export interface StepEffects {
  /** Moves the conversation (terminal states end it). */
  setState(to: ConversationState, reason: string | null): void;
  /** Sends a platform-made message in this conversation (a Contract Net decision): stored and delivered with the step. */
  send(m: AclMessage): void;
}

/** The acts that answer `original` when its receiver answered `performative` (a request gets `agree` first). */
export function replyActs(original: AclMessage, performative: Performative): Performative[] {
  const plain: Performative =
    performative === 'agree' && original.performative !== 'subscribe' ? 'inform' : performative;
  if (
    original.protocol === 'fipa-request' &&
    original.performative === 'request' &&
    (plain === 'inform' || plain === 'failure')
  )
    return ['agree', plain];
  return [plain];
}

const negative = (p: Performative) => p === 'failure' || p === 'refuse' || p === 'not-understood';

/** Whether a cfp of `protocol` opens a call that closes at its deadline (Contract Net, auctions, iterated Contract Net). */
export const callsForProposals = (protocol: Protocol | null | undefined): boolean =>
  protocol === 'fipa-contract-net' || isRoundProtocol(protocol);

/** Whether conversations of `protocol` never expire and take the server's turn budget (subscriptions). */
export const endless = (protocol: string | null | undefined): boolean => protocol === 'fipa-subscribe';

/** The open call for proposals of a Contract Net conversation: the cfp, its bidders and the answers so far. */
export interface OpenCall {
  cfp: StoredMessage;
  /** Bidders that have not answered yet (lower case). */
  waiting: Set<string>;
  /** Proposals made by the deadline: the ones the award chooses from. */
  proposals: AclMessage[];
  /** Proposals made after the deadline: each is rejected as late. */
  late: AclMessage[];
  refusals: AclMessage[];
  /** Bidders that could not be reached (lower case). */
  failed: Set<string>;
  /** When the call closes (epoch ms). */
  deadline: number;
}

/** The call still open in these messages (none once an accept-proposal is stored: decided). */
export function openCall(messages: readonly StoredMessage[], cfg: MessagingConfig): OpenCall | undefined {
  const cfp = messages.find((s) => s.message.performative === 'cfp');
  if (!cfp || messages.some((s) => s.message.performative === 'accept-proposal')) return undefined;
  const key = cfp.message.reply_with ?? cfp.message.id;
  const answers = messages
    .map((s) => s.message)
    .filter((m) => m.in_reply_to === key && m.sender !== cfp.message.sender);
  const failed = failedNames(messages);
  const waiting = new Set(cfp.routed_to.map((r) => r.toLowerCase()).filter((r) => !failed.has(r)));
  for (const a of answers) waiting.delete(a.sender.toLowerCase());
  const deadline = cfp.message.reply_by
    ? Date.parse(cfp.message.reply_by)
    : Date.parse(cfp.message.timestamp) + cfg.cfp_deadline;
  const proposals = answers.filter((a) => a.performative === 'propose');
  return {
    cfp,
    waiting,
    proposals: proposals.filter((a) => !afterDeadline(a, deadline)),
    late: proposals.filter((a) => afterDeadline(a, deadline)),
    refusals: answers.filter((a) => a.performative !== 'propose' && failedParticipantOf(a) === undefined),
    failed,
    deadline,
  };
}

/**
 * Awards the call: the winner by the selection rule gets `accept-proposal`, the others
 * `reject-proposal`; with no proposal the conversation fails.
 */
export function decide(conv: Conversation, call: OpenCall, cfg: MessagingConfig, fx: StepEffects): void {
  const cfp = call.cfp.message;
  const sel = selectionOf(cfp, { rule: cfg.cfp_select, field: cfg.cfp_field });
  const winner = chooseWinner(call.proposals, sel);
  for (const p of call.late)
    rejectLate(conv, cfp, p, `Your proposal arrived after the call closed at ${iso(call.deadline)}.`, fx);
  if (!winner) {
    const failed = call.failed.size > 0 ? `, ${call.failed.size} could not be reached` : '';
    fx.setState(
      'failed',
      `no proposals (${call.refusals.length} refused${failed}, ${call.waiting.size} did not answer by the deadline)`,
    );
    return;
  }
  const mk = (p: AclMessage, performative: Performative, content: Content, reason?: string): AclMessage => ({
    id: newMessageId(),
    performative,
    sender: cfp.sender,
    receivers: [p.sender],
    content,
    conversation_id: conv.id,
    protocol: 'fipa-contract-net',
    in_reply_to: p.reply_with ?? p.id,
    ...(cfp.ontology !== undefined && { ontology: cfp.ontology }),
    ...(cfp.trace_context !== undefined && { trace_context: cfp.trace_context }),
    params: {
      'X-select': sel.rule,
      'X-select-field': sel.field,
      ...(reason !== undefined && { 'X-reject-reason': reason }),
    },
    timestamp: iso(),
    chain: cfp.chain,
    ...(cfp.on_behalf_of !== undefined && { on_behalf_of: cfp.on_behalf_of }),
  });
  const text = (c: Content) => (typeof c === 'string' ? c : JSON.stringify(c));
  const rejects = call.proposals
    .filter((p) => p !== winner)
    .map((p) =>
      mk(p, 'reject-proposal', `Another proposal was selected (rule: ${sel.rule} ${sel.field}).`, 'not selected'),
    );
  // Room for the decisions and the winner's answer even when the turn budget is tight.
  conv.max_turns = Math.max(conv.max_turns, conv.turns + rejects.length + 3);
  fx.send(
    mk(
      winner,
      'accept-proposal',
      `Your proposal was selected (rule: ${sel.rule} ${sel.field}). Task: ${text(cfp.content)}\nYour proposal: ${text(winner.content)}`,
    ),
  );
  for (const r of rejects) fx.send(r);
}

/**
 * A receiver's replies to `original` were stored in `conv` and its delivery acknowledged:
 * what the protocol does next. `left` is the conversation's deliveries still pending;
 * `messages` reads the conversation (replies included) when the protocol needs it. Returns a
 * promise only when the protocol reads or writes more (a call for proposals, a subscription, a
 * round), so an acknowledgement that only moves the state is not suspended for it.
 */
export function afterReply(
  conv: Conversation,
  original: AclMessage,
  replies: readonly AclMessage[],
  left: number,
  messages: () => Promise<StoredMessage[]>,
  cfg: MessagingConfig,
  fx: StepEffects & { subscribe(original: AclMessage, provider: string): Promise<void> },
): Promise<void> | undefined {
  const last = replies.at(-1);
  if (isTerminal(conv.state)) {
    // A proposal after the end is still answered (FIPA answers every proposal).
    if (original.performative === 'cfp' && last?.performative === 'propose' && callsForProposals(conv.protocol))
      return proposalAfterEnd(conv, original, last, messages, fx);
    return;
  }
  switch (conv.protocol) {
    case 'fipa-request':
    case 'fipa-query':
      if (!last) return;
      if (last.performative === 'inform') fx.setState('completed', null);
      else if (negative(last.performative)) fx.setState('failed', `${last.sender} answered ${last.performative}`);
      return;
    case 'fipa-contract-net': {
      if (!last) return;
      if (original.performative === 'cfp') return proposalIn(conv, original, last, messages, cfg, fx);
      if (original.performative === 'accept-proposal') {
        if (last.performative === 'inform') fx.setState('completed', `awarded to ${last.sender}`);
        else fx.setState('failed', `${last.sender} won the contract but answered ${last.performative}`);
      }
      return;
    }
    case 'fipa-english-auction':
    case 'fipa-dutch-auction':
    case 'fipa-iterated-contract-net':
      return afterRoundReply(conv, original, last, messages, cfg, fx);
    case 'fipa-subscribe':
      if (original.performative !== 'subscribe' || !last) return;
      if (last.performative === 'agree') return fx.subscribe(original, last.sender);
      fx.setState('failed', `${last.sender} answered ${last.performative}`);
      return;
    default:
      // No protocol: one that asked for replies ends with the last of them; one-way messages complete once delivered.
      if (expectsReply(original.performative)) {
        if (last && left === 0) fx.setState(negative(last.performative) ? 'failed' : 'completed', null);
      } else if (left === 0) fx.setState('completed', 'delivered');
  }
}

/** A bidder answered a call for proposals: the call is decided once every bidder answered or its deadline passed. */
async function proposalIn(
  conv: Conversation,
  cfp: AclMessage,
  last: AclMessage,
  messages: () => Promise<StoredMessage[]>,
  cfg: MessagingConfig,
  fx: StepEffects,
): Promise<void> {
  const all = await messages();
  const call = openCall(all, cfg);
  if (!call) {
    if (last.performative === 'propose' && !answered(all, last))
      rejectLate(conv, cfp, last, 'Your proposal arrived after the call was decided.', fx);
    return;
  }
  if (call.waiting.size === 0 || call.deadline <= Date.now()) decide(conv, call, cfg, fx);
  else conv.expires_at = iso(call.deadline);
}

async function proposalAfterEnd(
  conv: Conversation,
  cfp: AclMessage,
  proposal: AclMessage,
  messages: () => Promise<StoredMessage[]>,
  fx: StepEffects,
): Promise<void> {
  const all = await messages();
  if (answered(all, proposal)) return;
  if (isRoundProtocol(conv.protocol) && all.some((s) => s.message.performative === 'accept-proposal'))
    return rejectAfterAward(conv, all, cfp, proposal, fx);
  rejectLate(conv, cfp, proposal, `Your proposal arrived after the ${conv.protocol} had ended (${conv.state}).`, fx);
}

/**
 * A delivery to `participant` was dead-lettered and recorded as its failure (participants.ts):
 * the protocol goes on without it, and decides now when it was the last one awaited.
 */
export async function afterParticipantFailed(
  conv: Conversation,
  messages: () => Promise<StoredMessage[]>,
  cfg: MessagingConfig,
  fx: StepEffects,
): Promise<void> {
  if (isTerminal(conv.state)) return;
  if (conv.protocol === 'fipa-contract-net') {
    const call = openCall(await messages(), cfg);
    if (call && (call.waiting.size === 0 || call.deadline <= Date.now())) decide(conv, call, cfg, fx);
    return;
  }
  if (isRoundProtocol(conv.protocol)) return roundParticipantFailed(conv, messages, cfg, fx);
}

/** A conversation's deadline passed (found by the sweep): a call still collecting is decided or its round closed, anything else expires. */
export async function atDeadline(
  conv: Conversation,
  left: number,
  messages: () => Promise<StoredMessage[]>,
  cfg: MessagingConfig,
  fx: StepEffects,
): Promise<void> {
  if (endless(conv.protocol)) return;
  if (conv.protocol === 'fipa-contract-net') {
    const call = openCall(await messages(), cfg);
    if (call) return decide(conv, call, cfg, fx);
  }
  if (await roundAtDeadline(conv, messages, cfg, fx)) return;
  const missed = unansweredPastReplyBy(await messages());
  fx.setState(
    'expired',
    missed
      ? `no reply to the ${missed.performative} by its reply_by deadline ${missed.reply_by!}`
      : conv.turns > 0 && left === 0
        ? 'no reply by the reply_by deadline or within the conversation ttl'
        : 'no activity within the conversation ttl',
  );
}

/** The last message that asked for a reply by a `reply_by` now past and got none. */
function unansweredPastReplyBy(messages: readonly StoredMessage[]): AclMessage | undefined {
  const now = Date.now();
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i]!.message;
    if (!m.reply_by || !expectsReply(m.performative) || Date.parse(m.reply_by) > now) continue;
    const key = m.reply_with ?? m.id;
    if (!messages.some((s) => s.message.in_reply_to === key && s.message.sender !== m.sender)) return m;
  }
  return undefined;
}
