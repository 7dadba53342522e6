import { describeError } from '../../shared/errors.js';
import type { Conversation } from '../conversation.js';
import { newMessageId, type AclMessage, type Content, type ConversationId } from '../message.js';
import type { Performative } from '../performatives.js';
import type { ConversationProtocol, ProtocolContext } from './protocol.js';
import { chooseWinner, selectionOf } from './selection.js';

/** A call for proposals awaiting its answers. */
interface CfpTracker {
  cfp: AclMessage;
  expected: Set<string>;
  proposals: AclMessage[];
  refusals: AclMessage[];
  timer: NodeJS.Timeout | undefined;
  decided: boolean;
}

const iso = (t = Date.now()) => new Date(t).toISOString();

/**
 * Contract Net, run for the initiator: the cfp goes to every provider; proposals are collected
 * until its `reply_by` (or `[messaging] cfp_deadline`) or until every provider answered; then the
 * winner by the selection rule (selection.ts) gets `accept-proposal`, the others
 * `reject-proposal`, and the winner's `inform` completes the conversation. After a restart the
 * open calls are rebuilt from the stored messages.
 */
export class ContractNetProtocol implements ConversationProtocol {
  readonly name = 'fipa-contract-net';
  readonly #cfps = new Map<ConversationId, CfpTracker>();

  constructor(private readonly ctx: ProtocolContext) {}

  onAccepted(m: AclMessage, conv: Conversation, receivers: readonly string[]): void {
    if (m.performative === 'cfp' && conv.protocol === 'fipa-contract-net' && receivers.length > 0 && !this.#cfps.has(conv.id)) {
      this.#track(m, receivers);
    }
  }

  onReply(reply: AclMessage, original: AclMessage, conv: Conversation): void {
    const t = this.#cfps.get(conv.id);
    if (original.performative === 'cfp' && t && !t.decided) {
      if (reply.performative === 'propose') t.proposals.push(reply);
      else t.refusals.push(reply);
      t.expected.delete(reply.sender.toLowerCase());
      if (t.expected.size === 0) this.#decide(conv, t);
    } else if (original.performative === 'accept-proposal') {
      if (reply.performative === 'inform') this.ctx.finish(conv, 'completed', `awarded to ${reply.sender}`);
      else this.ctx.finish(conv, 'failed', `${reply.sender} won the contract but answered ${reply.performative}`);
    }
  }

  onEnded(conv: Conversation): void {
    const t = this.#cfps.get(conv.id);
    if (t) {
      clearTimeout(t.timer);
      this.#cfps.delete(conv.id);
    }
  }

  /** A call still open (no accept-proposal yet): tracked again with the answers already stored. */
  recover(conv: Conversation, skipped: (reason: string) => void): void {
    try {
      const msgs = this.ctx.store.messagesOf(conv.id, 100_000);
      const cfp = msgs.find((s) => s.message.performative === 'cfp');
      if (!cfp || msgs.some((s) => s.message.performative === 'accept-proposal')) return;
      const cfpKey = cfp.message.reply_with ?? cfp.message.id;
      const answers = msgs.map((s) => s.message).filter((x) => x.in_reply_to === cfpKey);
      this.#track(
        cfp.message,
        cfp.routed_to,
        answers.filter((a) => a.performative === 'propose'),
        answers.filter((a) => a.performative !== 'propose'),
      );
    } catch (e) {
      skipped(`a message of this Contract Net conversation is damaged (${describeError(e)}); it ends at its deadline`);
    }
  }

  close(): void {
    for (const t of this.#cfps.values()) clearTimeout(t.timer);
  }

  #track(cfp: AclMessage, receivers: readonly string[], proposals: AclMessage[] = [], refusals: AclMessage[] = []): void {
    const t: CfpTracker = { cfp, expected: new Set(receivers.map((r) => r.toLowerCase())), proposals, refusals, timer: undefined, decided: false };
    for (const p of [...proposals, ...refusals]) t.expected.delete(p.sender.toLowerCase());
    this.#cfps.set(cfp.conversation_id, t);
    const wait = cfp.reply_by ? Date.parse(cfp.reply_by) - Date.now() : this.ctx.config.cfp_deadline;
    const decide = () => {
      const conv = this.ctx.open(cfp.conversation_id);
      if (conv) this.#decide(conv, t);
    };
    if (t.expected.size === 0 || wait <= 0) setImmediate(decide);
    else {
      t.timer = setTimeout(decide, wait);
      t.timer.unref();
    }
  }

  /** The deadline passed or every provider answered: award the contract (or fail the conversation). */
  #decide(conv: Conversation, t: CfpTracker): void {
    if (t.decided) return;
    t.decided = true;
    clearTimeout(t.timer);
    const sel = selectionOf(t.cfp, { rule: this.ctx.config.cfp_select, field: this.ctx.config.cfp_field });
    const winner = chooseWinner(t.proposals, sel);
    if (!winner) {
      const reason = `no proposals (${t.refusals.length} refused, ${t.expected.size} did not answer by the deadline)`;
      this.#cfps.delete(conv.id);
      this.ctx.finish(conv, 'failed', reason);
      return;
    }
    const from = t.cfp.sender;
    const mk = (p: AclMessage, performative: Performative, content: Content): AclMessage => ({
      id: newMessageId(),
      performative,
      sender: from,
      receivers: [p.sender],
      content,
      conversation_id: conv.id,
      protocol: 'fipa-contract-net',
      in_reply_to: p.reply_with ?? p.id,
      ...(t.cfp.ontology !== undefined && { ontology: t.cfp.ontology }),
      ...(t.cfp.trace_context !== undefined && { trace_context: t.cfp.trace_context }),
      params: { 'X-select': sel.rule, 'X-select-field': sel.field },
      timestamp: iso(),
      chain: t.cfp.chain,
      ...(t.cfp.on_behalf_of !== undefined && { on_behalf_of: t.cfp.on_behalf_of }),
    });
    const task = typeof t.cfp.content === 'string' ? t.cfp.content : JSON.stringify(t.cfp.content);
    const accept = mk(
      winner,
      'accept-proposal',
      `Your proposal was selected (rule: ${sel.rule} ${sel.field}). Task: ${task}\nYour proposal: ${typeof winner.content === 'string' ? winner.content : JSON.stringify(winner.content)}`,
    );
    const rejects = t.proposals.filter((p) => p !== winner).map((p) => mk(p, 'reject-proposal', `Another proposal was selected (rule: ${sel.rule} ${sel.field}).`));
    this.#cfps.delete(conv.id);
    // Sent with room for them even when the conversation's turn budget is tight.
    conv.max_turns = Math.max(conv.max_turns, conv.turns + rejects.length + 3);
    for (const msg of [accept, ...rejects]) {
      this.ctx.send(msg, { newId: true }).catch((e: unknown) => this.ctx.log.error({ conversation_id: conv.id, err: describeError(e) }, 'could not send a Contract Net decision'));
    }
  }
}
