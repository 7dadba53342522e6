/**
 * Protocols that run in rounds of calls for proposals: the English auction (FIPA XC00031), the
 * Dutch auction (FIPA XC00032) and the iterated Contract Net (FIPA SC00030). The platform is the
 * auctioneer on the initiator's behalf: the initiator's cfp is round 1, and each later round is a
 * cfp the conversation's step sends (as the initiator, to the bidders still in). As for Contract
 * Net, every decision is made inside the conversation's step from its stored messages, so one node
 * and a cluster decide alike and a late or repeated step finds the decision stored and does nothing.
 *
 * Terms come from the first cfp's parameters, checked when it is accepted (`roundTermIssues`):
 *  - English: X-start-price (required), X-increment (default 1), X-reserve, X-max-rounds (50).
 *    Each round asks the price; bidders `propose` to bid it or `refuse` to drop out. Two or more
 *    bids: the price rises by the increment for those who bid. One bid: it wins. None: the first
 *    bidder of the round before wins at that round's price (none in round 1: the auction fails).
 *  - Dutch: X-start-price and X-decrement (required), X-reserve (default 0), X-max-rounds (100).
 *    The first `propose` of a round wins at its price; a round without one lowers the price, and
 *    below the reserve the auction fails.
 *  - Iterated Contract Net: X-max-rounds (default 3), X-target, and Contract Net's X-select and
 *    X-select-field. While the best proposal misses the target, the call goes out again to those
 *    who proposed, naming the best offer; then the best is awarded as in Contract Net.
 * A round closes when every bidder answered or at its deadline (the first cfp's reply window,
 * again for every round). Rounds never exceed the conversation's turn limit: a round that would
 * not fit closes the auction with what it has.
 */
import type { MessagingConfig } from '../messaging-config.js';
import type { Conversation } from '../conversation.js';
import { newMessageId, type AclMessage, type Content, type ConversationId } from '../message.js';
import type { Performative, Protocol } from '../performatives.js';
import type { StoredMessage } from '../rows.js';
import { afterDeadline, answered, rejectLate } from './late.js';
import { failedNames } from './participants.js';
import { chooseWinner, proposalValue, selectionOf } from './selection.js';
import type { StepEffects } from './steps.js';

export const ROUND_PROTOCOLS = ['fipa-english-auction', 'fipa-dutch-auction', 'fipa-iterated-contract-net'] as const;
export type RoundProtocol = (typeof ROUND_PROTOCOLS)[number];

export const isRoundProtocol = (p: Protocol | null | undefined): p is RoundProtocol =>
  p === 'fipa-english-auction' || p === 'fipa-dutch-auction' || p === 'fipa-iterated-contract-net';

interface Terms {
  start: number;
  /** The increment (English) or decrement (Dutch). */
  step: number;
  reserve?: number;
  maxRounds: number;
  target?: number;
}

const iso = (t = Date.now()) => new Date(t).toISOString();

type Issue = { field: string; message: string };

/** The terms a round protocol's first cfp states, or what is wrong with them (field by field). */
export function roundTerms(protocol: RoundProtocol, params: Readonly<Record<string, string>>): Terms | Issue[] {
  const issues: Issue[] = [];
  const num = (
    key: string,
    opts: { required?: boolean; min?: number; above?: number; int?: boolean; max?: number },
  ) => {
    const raw = params[key];
    if (raw === undefined) {
      if (opts.required) issues.push({ field: `params.${key}`, message: `is required for ${protocol}` });
      return undefined;
    }
    const v = Number(raw);
    const bad =
      raw.trim() === '' ||
      !Number.isFinite(v) ||
      (opts.int === true && !Number.isInteger(v)) ||
      (opts.min !== undefined && v < opts.min) ||
      (opts.above !== undefined && v <= opts.above) ||
      (opts.max !== undefined && v > opts.max);
    if (bad) {
      const what = [
        opts.int ? 'a whole number' : 'a number',
        opts.min !== undefined && `of at least ${opts.min}`,
        opts.above !== undefined && `above ${opts.above}`,
        opts.max !== undefined && `of at most ${opts.max}`,
      ]
        .filter(Boolean)
        .join(' ');
      issues.push({ field: `params.${key}`, message: `expected ${what}, got "${raw}"` });
      return undefined;
    }
    return v;
  };
  let terms: Terms;
  if (protocol === 'fipa-english-auction') {
    terms = {
      start: num('X-start-price', { required: true, min: 0 }) ?? 0,
      step: num('X-increment', { above: 0 }) ?? 1,
      maxRounds: num('X-max-rounds', { int: true, min: 1, max: 100 }) ?? 50,
    };
    const reserve = num('X-reserve', { min: 0 });
    if (reserve !== undefined) terms.reserve = reserve;
  } else if (protocol === 'fipa-dutch-auction') {
    terms = {
      start: num('X-start-price', { required: true, above: 0 }) ?? 0,
      step: num('X-decrement', { required: true, above: 0 }) ?? 1,
      reserve: num('X-reserve', { min: 0 }) ?? 0,
      maxRounds: num('X-max-rounds', { int: true, min: 1, max: 1000 }) ?? 100,
    };
    if (issues.length === 0 && terms.reserve! > terms.start)
      issues.push({
        field: 'params.X-reserve',
        message: `the reserve (${terms.reserve}) is above the start price (${terms.start})`,
      });
  } else {
    terms = { start: 0, step: 0, maxRounds: num('X-max-rounds', { int: true, min: 1, max: 20 }) ?? 3 };
    const target = num('X-target', {});
    if (target !== undefined) terms.target = target;
  }
  return issues.length > 0 ? issues : terms;
}

/** What a round protocol's first message must be: a cfp with valid terms. Empty when it is fine. */
export function roundTermIssues(
  protocol: Protocol | undefined,
  performative: Performative,
  params: Readonly<Record<string, string>>,
  inReplyTo: string | undefined,
): Issue[] {
  if (!isRoundProtocol(protocol) || inReplyTo !== undefined) return [];
  if (performative !== 'cfp')
    return [
      { field: 'performative', message: `a ${protocol} conversation starts with a "cfp", not "${performative}"` },
    ];
  const t = roundTerms(protocol, params);
  return Array.isArray(t) ? t : [];
}

/** One round: its cfp, the bidders yet to answer, and the answers so far. */
interface Round {
  n: number;
  cfp: AclMessage;
  price: number;
  waiting: Set<string>;
  /** Proposals made by the round's deadline, in the order they came. */
  proposals: AclMessage[];
  deadline: number;
}

function roundsOf(messages: readonly StoredMessage[], terms: Terms, cfg: MessagingConfig): Round[] {
  const cfps = messages.filter((s) => s.message.performative === 'cfp');
  const first = cfps[0]?.message;
  const window = first?.reply_by ? Date.parse(first.reply_by) - Date.parse(first.timestamp) : cfg.cfp_deadline;
  const failed = failedNames(messages);
  return cfps.map((s, i) => {
    const cfp = s.message;
    const key = cfp.reply_with ?? cfp.id;
    const answers = messages.map((x) => x.message).filter((m) => m.in_reply_to === key && m.sender !== cfp.sender);
    const waiting = new Set(s.routed_to.map((r) => r.toLowerCase()).filter((r) => !failed.has(r)));
    for (const a of answers) waiting.delete(a.sender.toLowerCase());
    const price = cfp.params['X-price'] !== undefined ? Number(cfp.params['X-price']) : terms.start;
    const deadline = cfp.reply_by ? Date.parse(cfp.reply_by) : Date.parse(cfp.timestamp) + Math.max(window, 0);
    return {
      n: i + 1,
      cfp,
      price,
      waiting,
      proposals: answers.filter((a) => a.performative === 'propose' && !afterDeadline(a, deadline)),
      deadline,
    };
  });
}

const decided = (messages: readonly StoredMessage[]) =>
  messages.some((s) => s.message.performative === 'accept-proposal');

/** The open round of a round protocol conversation (none once decided), for its deadline. */
export function openRound(
  protocol: RoundProtocol,
  messages: readonly StoredMessage[],
  cfg: MessagingConfig,
): { deadline: number } | undefined {
  const first = messages.find((s) => s.message.performative === 'cfp');
  if (!first || decided(messages)) return undefined;
  const terms = roundTerms(protocol, first.message.params);
  if (Array.isArray(terms)) return undefined;
  return roundsOf(messages, terms, cfg).at(-1);
}

/** A platform-made message of the auction, from the initiator. */
function made(
  conversation: ConversationId,
  first: AclMessage,
  performative: Performative,
  receivers: string[],
  content: Content,
  extra: Partial<AclMessage> = {},
): AclMessage {
  return {
    id: newMessageId(),
    performative,
    sender: first.sender,
    receivers,
    content,
    conversation_id: conversation,
    protocol: first.protocol!,
    ...(first.ontology !== undefined && { ontology: first.ontology }),
    ...(first.trace_context !== undefined && { trace_context: first.trace_context }),
    params: first.params,
    timestamp: iso(),
    chain: first.chain,
    ...(first.on_behalf_of !== undefined && { on_behalf_of: first.on_behalf_of }),
    ...extra,
  };
}

const unique = (xs: readonly string[]) => [...new Set(xs)];
const keyOf = (m: AclMessage) => m.reply_with ?? m.id;

/** Whether the auctions tell their participants when they start and end (FIPA's informs); the iterated Contract Net does not. */
const informs = (protocol: Protocol | null | undefined): boolean =>
  protocol === 'fipa-english-auction' || protocol === 'fipa-dutch-auction';

/**
 * Whether `m` is an auction's start or end notice: recorded and delivered, but a configuration
 * agent's model is not run for it (there is nothing to answer; what it must act on comes as a cfp
 * or an accept/reject).
 */
export const auctionNotice = (m: AclMessage): boolean =>
  m.performative === 'inform' && informs(m.protocol) && m.params['X-auction'] !== undefined;

/**
 * The inform that opens an auction (FIPA's inform start-of-auction), sent to the bidders the
 * opening cfp was routed to, before it: the item and the terms a bidder may know (not the reserve).
 */
export function auctionStart(cfp: AclMessage, receivers: readonly string[]): AclMessage | undefined {
  if (!informs(cfp.protocol) || cfp.performative !== 'cfp' || receivers.length === 0) return undefined;
  const terms = roundTerms(cfp.protocol as RoundProtocol, cfp.params);
  if (Array.isArray(terms)) return undefined;
  const content: Record<string, Content> = { auction: 'started', item: cfp.content, start_price: terms.start };
  content[cfp.protocol === 'fipa-english-auction' ? 'increment' : 'decrement'] = terms.step;
  return made(cfp.conversation_id, cfp, 'inform', [...receivers], content, {
    params: { ...cfp.params, 'X-auction': 'start' },
  });
}

/** The inform that closes an auction (FIPA's inform end-of-auction), to every bidder still reachable. */
function auctionEnd(
  conv: Conversation,
  all: readonly StoredMessage[],
  first: AclMessage,
  outcome: { winner: string; price: number | null } | { reason: string },
  fx: StepEffects,
): void {
  if (!informs(conv.protocol)) return;
  const failed = failedNames(all);
  const to = allBidders(all).filter((b) => !failed.has(b.toLowerCase()));
  if (to.length === 0) return;
  const content: Record<string, Content> =
    'winner' in outcome
      ? { auction: 'ended', item: first.content, result: 'sold', winner: outcome.winner, price: outcome.price }
      : { auction: 'ended', item: first.content, result: 'not sold', reason: outcome.reason };
  conv.max_turns = Math.max(conv.max_turns, conv.turns + 3);
  fx.send(made(conv.id, first, 'inform', to, content, { params: { ...first.params, 'X-auction': 'end' } }));
}

/** Fails the auction: every bidder's last open bid is rejected with `why`, then the end notice. */
function noSale(
  conv: Conversation,
  all: readonly StoredMessage[],
  rounds: Round[],
  why: string,
  fx: StepEffects,
  answeredNow?: AclMessage,
): void {
  const first = rounds[0]!.cfp;
  for (const p of lastOpenBids(conv, all, rounds, answeredNow))
    fx.send(
      made(
        conv.id,
        first,
        'reject-proposal',
        [p.sender],
        { result: 'lost', reason: 'no sale', message: why },
        { in_reply_to: keyOf(p), params: { ...first.params, 'X-reject-reason': 'no sale' } },
      ),
    );
  auctionEnd(conv, all, first, { reason: why }, fx);
  fx.setState('failed', why);
}

/**
 * The proposals the end of the protocol answers, but `winner`: in an auction each bidder's last
 * bid (one answer per bidder, dropped-out and tied ones included); in the iterated Contract Net
 * every proposal no earlier iteration answered.
 */
function lastOpenBids(
  conv: Conversation,
  all: readonly StoredMessage[],
  rounds: Round[],
  winner: AclMessage | undefined,
): AclMessage[] {
  const open = rounds.flatMap((r) => r.proposals).filter((p) => p.id !== winner?.id && !answered(all, p));
  if (conv.protocol === 'fipa-iterated-contract-net') return open;
  const last = new Map<string, AclMessage>();
  for (const p of open) last.set(p.sender.toLowerCase(), p);
  if (winner) last.delete(winner.sender.toLowerCase());
  return [...last.values()];
}

/**
 * A bidder answered a round protocol's message: the round closes when it can, the auction is
 * awarded when it is won, and the winner's answer to its award ends the conversation. A bid the
 * call can no longer take (after the award, after its round closed or after its deadline) is
 * rejected as late.
 */
export async function afterRoundReply(
  conv: Conversation,
  original: AclMessage,
  last: AclMessage | undefined,
  messages: () => Promise<StoredMessage[]>,
  cfg: MessagingConfig,
  fx: StepEffects,
): Promise<void> {
  if (!last || !isRoundProtocol(conv.protocol)) return;
  if (original.performative === 'accept-proposal') {
    if (last.performative === 'inform') fx.setState('completed', `awarded to ${last.sender}`);
    else fx.setState('failed', `${last.sender} won but answered ${last.performative}`);
    return;
  }
  if (original.performative !== 'cfp') return;
  const all = await messages();
  const bid = last.performative === 'propose' && !answered(all, last);
  if (decided(all)) {
    if (bid) rejectAfterAward(conv, all, original, last, fx);
    return;
  }
  const rounds = roundsOf(all, termsOf(conv.protocol, all), cfg);
  const round = rounds.at(-1);
  if (!round || round.cfp.id !== original.id) {
    const n = rounds.findIndex((r) => r.cfp.id === original.id) + 1;
    if (bid) rejectLate(conv, original, last, `Your bid came after round ${n} had closed.`, fx);
    return;
  }
  if (bid && afterDeadline(last, round.deadline))
    rejectLate(conv, original, last, `Your bid came after the round's reply_by ${iso(round.deadline)}.`, fx);
  if (conv.protocol === 'fipa-dutch-auction' && round.proposals.length > 0) {
    award(conv, all, rounds, round.proposals[0]!, round.price, fx);
    return;
  }
  if (round.waiting.size === 0 || round.deadline <= Date.now()) closeRound(conv, all, rounds, cfg, fx);
  else conv.expires_at = iso(round.deadline);
}

/**
 * Rejects a bid that came after the award: tied when it answered the round the winning bid
 * answered (the first bid at a price wins), else late.
 */
export function rejectAfterAward(
  conv: Conversation,
  all: readonly StoredMessage[],
  cfp: AclMessage,
  bid: AclMessage,
  fx: StepEffects,
): void {
  const accept = all.find((s) => s.message.performative === 'accept-proposal')?.message;
  const won = accept && all.find((s) => keyOf(s.message) === accept.in_reply_to)?.message;
  if (won && won.in_reply_to === keyOf(cfp) && won.id !== bid.id)
    return rejectLate(conv, cfp, bid, `Another bid at the same price (${won.sender}) came first.`, fx, 'tied');
  rejectLate(conv, cfp, bid, `Your bid came after the ${conv.protocol} had been decided.`, fx);
}

/**
 * A participant of a round protocol could not be reached (participants.ts): the open round no
 * longer waits for it, and closes now when nobody else is awaited.
 */
export async function roundParticipantFailed(
  conv: Conversation,
  messages: () => Promise<StoredMessage[]>,
  cfg: MessagingConfig,
  fx: StepEffects,
): Promise<void> {
  if (!isRoundProtocol(conv.protocol)) return;
  const all = await messages();
  if (decided(all) || !all.some((s) => s.message.performative === 'cfp')) return;
  const rounds = roundsOf(all, termsOf(conv.protocol, all), cfg);
  const round = rounds.at(-1)!;
  if (round.waiting.size === 0 || round.deadline <= Date.now()) closeRound(conv, all, rounds, cfg, fx);
}

/** A round protocol's deadline passed (the sweep): its open round closes. False when there is none. */
export async function roundAtDeadline(
  conv: Conversation,
  messages: () => Promise<StoredMessage[]>,
  cfg: MessagingConfig,
  fx: StepEffects,
): Promise<boolean> {
  if (!isRoundProtocol(conv.protocol)) return false;
  const all = await messages();
  if (decided(all) || !all.some((s) => s.message.performative === 'cfp')) return false;
  closeRound(conv, all, roundsOf(all, termsOf(conv.protocol, all), cfg), cfg, fx);
  return true;
}

function termsOf(protocol: RoundProtocol, all: readonly StoredMessage[]): Terms {
  const first = all.find((s) => s.message.performative === 'cfp')!.message;
  const t = roundTerms(protocol, first.params);
  // Checked when the first cfp was accepted; a stored conversation always has valid terms.
  return Array.isArray(t) ? { start: 0, step: 1, maxRounds: 1 } : t;
}

function closeRound(
  conv: Conversation,
  all: readonly StoredMessage[],
  rounds: Round[],
  cfg: MessagingConfig,
  fx: StepEffects,
): void {
  const protocol = conv.protocol as RoundProtocol;
  const terms = termsOf(protocol, all);
  const round = rounds.at(-1)!;
  const first = rounds[0]!.cfp;
  const bids = round.proposals;
  const previous = rounds.at(-2);
  const failed = failedNames(all);
  const fits = (bidders: number) => conv.turns + 3 * bidders + 3 <= conv.max_turns;

  if (protocol === 'fipa-english-auction') {
    if (bids.length === 0) {
      const leader = previous?.proposals[0];
      if (!leader || !previous) return noSale(conv, all, rounds, `no bid at the start price ${terms.start}`, fx);
      return award(conv, all, rounds, leader, previous.price, fx, terms.reserve);
    }
    const bidders = unique(bids.map((b) => b.sender)).filter((b) => !failed.has(b.toLowerCase()));
    if (bidders.length <= 1 || round.n >= terms.maxRounds || !fits(bidders.length))
      return award(conv, all, rounds, bids[0]!, round.price, fx, terms.reserve);
    return nextRound(conv, first, bidders, round.n + 1, round.price + terms.step, cfg, fx, {
      leader: bids[0]!.sender,
    });
  }

  if (protocol === 'fipa-dutch-auction') {
    const price = round.price - terms.step;
    const everyone = unique(allBidders(all)).filter((b) => !failed.has(b.toLowerCase()));
    if (price < (terms.reserve ?? 0) || round.n >= terms.maxRounds)
      return noSale(conv, all, rounds, `no bid down to the reserve price ${terms.reserve ?? 0}`, fx);
    if (everyone.length === 0) return noSale(conv, all, rounds, 'no bidder could be reached', fx);
    if (!fits(everyone.length))
      return noSale(conv, all, rounds, `turn limit reached before any bid (at most ${conv.max_turns} messages)`, fx);
    return nextRound(conv, first, everyone, round.n + 1, price, cfg, fx);
  }

  // Iterated Contract Net.
  const sel = selectionOf(first, { rule: cfg.cfp_select, field: cfg.cfp_field });
  if (bids.length === 0) {
    const before = previous ? chooseWinner(previous.proposals, sel) : undefined;
    if (!before || !previous) return fx.setState('failed', `no proposals in round ${round.n}`);
    return award(conv, all, rounds, before, proposalValue(before.content, sel.field), fx, undefined, sel.field);
  }
  const best = chooseWinner(bids, sel)!;
  const value = proposalValue(best.content, sel.field);
  const met =
    terms.target !== undefined &&
    value !== undefined &&
    (sel.rule === 'highest' ? value >= terms.target : value <= terms.target);
  const bidders = unique(bids.map((b) => b.sender)).filter((b) => !failed.has(b.toLowerCase()));
  if (met || sel.rule === 'first' || round.n >= terms.maxRounds || !fits(bidders.length))
    return award(conv, all, rounds, best, value, fx, undefined, sel.field);
  // FIPA's iteration: the proposals not taken are rejected, then the call goes out again. The
  // best one stands (it is the offer the new call names) and is answered when the call ends.
  for (const p of bids)
    if (p !== best)
      fx.send(
        made(
          conv.id,
          first,
          'reject-proposal',
          [p.sender],
          { result: 'rejected', reason: 'another round', round: round.n, best_offer: value ?? null },
          { in_reply_to: keyOf(p), params: { ...first.params, 'X-reject-reason': 'another round' } },
        ),
      );
  return nextRound(conv, first, bidders, round.n + 1, value, cfg, fx);
}

function allBidders(all: readonly StoredMessage[]): string[] {
  return all.find((s) => s.message.performative === 'cfp')?.routed_to ?? [];
}

/** Sends the next round's cfp to `bidders` and moves the conversation's deadline to the round's. */
function nextRound(
  conv: Conversation,
  first: AclMessage,
  bidders: string[],
  n: number,
  price: number | undefined,
  cfg: MessagingConfig,
  fx: StepEffects,
  extra: { leader?: string } = {},
): void {
  const window = first.reply_by ? Date.parse(first.reply_by) - Date.parse(first.timestamp) : cfg.cfp_deadline;
  const deadline = Date.now() + Math.max(window, 1000);
  const content: Record<string, Content> = { item: first.content, round: n };
  const params: Record<string, string> = { ...first.params, 'X-round': String(n) };
  if (conv.protocol === 'fipa-iterated-contract-net') {
    if (price !== undefined) content.best_offer = price;
  } else if (price !== undefined) {
    content.price = price;
    params['X-price'] = String(price);
  }
  if (extra.leader !== undefined) content.leader = extra.leader;
  fx.send(made(conv.id, first, 'cfp', bidders, content, { reply_by: iso(deadline), params }));
  conv.expires_at = iso(deadline);
}

/**
 * Awards the auction to `winner` at `price`: `accept-proposal` to the winner, `reject-proposal` to
 * every other bidder's last open bid (outbid, dropped out or tied at the same price), then the end
 * notice to every reachable bidder. Below the reserve the winner is rejected too and the auction
 * fails.
 */
function award(
  conv: Conversation,
  all: readonly StoredMessage[],
  rounds: Round[],
  winner: AclMessage,
  price: number | undefined,
  fx: StepEffects,
  reserve?: number,
  field = 'price',
): void {
  const first = rounds[0]!.cfp;
  const at = price !== undefined ? ` at ${price}` : '';
  const losers = lastOpenBids(conv, all, rounds, winner);
  conv.max_turns = Math.max(conv.max_turns, conv.turns + losers.length + 4);
  if (reserve !== undefined && price !== undefined && price < reserve) {
    const why = `the highest bid${at} (${winner.sender}) is below the reserve price ${reserve}`;
    fx.send(
      made(conv.id, first, 'reject-proposal', [winner.sender], `The highest bid${at} is below the reserve price.`, {
        in_reply_to: keyOf(winner),
        params: { ...first.params, 'X-reject-reason': 'below reserve' },
      }),
    );
    return noSale(conv, all, rounds, why, fx, winner);
  }
  const item = typeof first.content === 'string' ? first.content : JSON.stringify(first.content);
  fx.send(
    made(
      conv.id,
      first,
      'accept-proposal',
      [winner.sender],
      { result: 'won', price: price ?? null, item: first.content, message: `You won${at}. Task: ${item}` },
      { in_reply_to: keyOf(winner) },
    ),
  );
  const winnerRound = rounds.find((r) => r.proposals.some((p) => p.id === winner.id));
  for (const l of losers) {
    // In an auction every bid of a round is at the round's price; in the iterated Contract Net a tie is an equal value.
    const sameRound = winnerRound?.proposals.some((p) => p.id === l.id) === true;
    const tied =
      sameRound && (conv.protocol !== 'fipa-iterated-contract-net' || proposalValue(l.content, field) === price);
    const dropped = !tied && rounds.at(-1)!.proposals.every((p) => p.sender !== l.sender);
    const reason =
      l.sender.toLowerCase() === winner.sender.toLowerCase()
        ? 'superseded'
        : tied
          ? 'tied'
          : dropped
            ? 'dropped out'
            : 'outbid';
    fx.send(
      made(
        conv.id,
        first,
        'reject-proposal',
        [l.sender],
        { result: 'lost', reason, winner: winner.sender, price: price ?? null },
        { in_reply_to: keyOf(l), params: { ...first.params, 'X-reject-reason': reason } },
      ),
    );
  }
  auctionEnd(conv, all, first, { winner: winner.sender, price: price ?? null }, fx);
}
