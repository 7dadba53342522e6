/**
 * The bids of a conversation as values: for each call (a cfp, or each round's cfp), every
 * proposal with the values the selection rule ranks on and how each was read, the ranking, the
 * refusals, and who won and why. The conversation API computes it here, once; the CLI and the
 * console show what the API answers.
 */
import { contentText, type AclMessage, type Content } from '../message.js';
import {
  keysOf,
  rankProposals,
  readValue,
  ruleText,
  selectionOf,
  type Selection,
  type SelectKey,
} from './selection.js';

/** How a value was found: typed (structured content), read from text, or the round's asking price. */
export type BidValueSource = 'typed' | 'text' | 'asking';

export interface BidValue {
  value: number;
  source: BidValueSource;
  /** For a value read from text: the words it was read from. */
  read_from?: string;
}

export interface BidView {
  /** 1 = best by the rule. */
  rank: number;
  message_id: string;
  sender: string;
  /** Typed: the bid is structured content (a model's `propose` call); text: values were read from prose. */
  source: 'typed' | 'text';
  /** The value of each field the rule ranks on (a field absent: the bid offers none). */
  values: Record<string, BidValue>;
  /** Every plain field of a typed bid (price, currency, terms, valid_until, an agent's own fields). */
  fields?: Record<string, string | number | boolean | null>;
  /** A text bid's words (at most 300 characters). */
  text?: string;
  outcome?: 'accepted' | 'rejected';
}

export interface BidRound {
  round: number;
  cfp_id: string;
  /** An auction round's asking price. */
  asking_price?: number;
  bids: BidView[];
  refused: { sender: string; performative: string; reason: string }[];
}

export interface ConversationBids {
  /** The rule in words: `lowest price, then lowest delivery_days`, `first`, or the auction's. */
  rule: string;
  keys: SelectKey[];
  rounds: BidRound[];
  winner: { sender: string; message_id: string; round: number } | null;
  /** Why the winner won (or why there is none yet). */
  why: string;
}

const AUCTIONS: Record<string, string> = {
  'fipa-english-auction': 'English auction: the asking price rises while two or more bid; the last bidder left wins',
  'fipa-dutch-auction': 'Dutch auction: the asking price falls; the first bid wins',
};

/**
 * The bids of a conversation, undefined when it has no call for proposals. `defaults` is the
 * server's rule (`[messaging] cfp_select`, `cfp_field`) for a cfp that names none.
 */
export function conversationBids(
  protocol: string | null | undefined,
  messages: readonly AclMessage[],
  defaults: Selection,
): ConversationBids | undefined {
  const first = messages.find((m) => m.performative === 'cfp');
  if (!first) return undefined;
  const calls = messages.filter((m) => m.performative === 'cfp' && m.sender === first.sender);
  const accept = messages.find((m) => m.performative === 'accept-proposal' && m.sender === first.sender);
  const auction = protocol !== null && protocol !== undefined ? AUCTIONS[protocol] : undefined;
  // A cfp that names no rule was awarded by the server's default of the time, which the award names.
  const named = first.params['X-select'] !== undefined || accept?.params['X-select'] === undefined;
  const sel: Selection = auction
    ? { rule: 'first', field: 'price' }
    : selectionOf(named ? first : { ...first, params: { ...first.params, ...accept!.params } }, defaults);
  const fields = auction ? ['price'] : keysOf(sel).map((k) => k.field);
  const rejectedKeys = new Set(
    messages.filter((m) => m.performative === 'reject-proposal' && m.in_reply_to).map((m) => m.in_reply_to!),
  );
  let winner: ConversationBids['winner'] = null;
  const rounds = calls.map((cfp, i): BidRound => {
    const key = cfp.reply_with ?? cfp.id;
    const answers = messages.filter((m) => m.in_reply_to === key && m.sender !== cfp.sender);
    const proposals = answers.filter((m) => m.performative === 'propose');
    const asking = askingPrice(cfp, auction !== undefined);
    const bids = rankProposals(proposals, sel).map(({ message }, r): BidView => {
      const mKey = message.reply_with ?? message.id;
      const won = accept !== undefined && accept.in_reply_to === mKey;
      if (won) winner = { sender: message.sender, message_id: message.id, round: i + 1 };
      const typed = isObject(message.content);
      const values: Record<string, BidValue> = {};
      for (const f of fields) {
        const v = readValue(message.content, f);
        if (v) values[f] = v;
        else if (auction && f === 'price' && asking !== undefined) values[f] = { value: asking, source: 'asking' };
      }
      return {
        rank: r + 1,
        message_id: message.id,
        sender: message.sender,
        source: typed ? 'typed' : 'text',
        values,
        ...(typed ? { fields: plainFields(message.content) } : { text: contentText(message.content).slice(0, 300) }),
        ...(won ? { outcome: 'accepted' as const } : rejectedKeys.has(mKey) && { outcome: 'rejected' as const }),
      };
    });
    return {
      round: i + 1,
      cfp_id: cfp.id,
      ...(asking !== undefined && { asking_price: asking }),
      bids,
      refused: answers
        .filter((m) => m.performative !== 'propose')
        .map((m) => ({ sender: m.sender, performative: m.performative, reason: contentText(m.content).slice(0, 300) })),
    };
  });
  return {
    rule: auction ?? ruleText(sel),
    keys: auction ? [] : keysOf(sel),
    rounds,
    winner,
    why: whyText(protocol, sel, rounds, winner),
  };
}

function askingPrice(cfp: AclMessage, auction: boolean): number | undefined {
  if (!auction) return undefined;
  const raw = cfp.params['X-price'] ?? cfp.params['X-start-price'];
  const n = raw === undefined ? NaN : Number(raw);
  return Number.isFinite(n) ? n : undefined;
}

function whyText(
  protocol: string | null | undefined,
  sel: Selection,
  rounds: readonly BidRound[],
  winner: ConversationBids['winner'],
): string {
  const all = rounds.flatMap((r) => r.bids);
  if (all.length === 0) return 'no proposals';
  if (!winner) return 'not decided yet';
  const w = winner;
  const round = rounds[w.round - 1]!;
  const bid = round.bids.find((b) => b.message_id === w.message_id)!;
  const at = bid.values.price ? ` at ${bid.values.price.value}` : '';
  if (protocol === 'fipa-english-auction') return `${w.sender} was the last bidder left${at} (round ${w.round})`;
  if (protocol === 'fipa-dutch-auction') return `${w.sender} bid first${at} (round ${w.round})`;
  if (sel.rule === 'first') return `${w.sender} proposed first (rule: first)`;
  const others = round.bids.filter((b) => b !== bid);
  const where = rounds.length > 1 ? ` in round ${w.round}` : '';
  if (others.length === 0) return `${w.sender} made the only proposal${where} (rule: ${ruleText(sel)})`;
  if (bid.rank !== 1) return `${w.sender} was awarded${where}, though ranked ${bid.rank} by ${ruleText(sel)}`;
  // The first key on which the winner beats the runner-up decides; keys before it tied.
  const next = round.bids.find((b) => b.rank === 2)!;
  const tied: string[] = [];
  for (const k of keysOf(sel)) {
    const a = bid.values[k.field]?.value;
    const b = next.values[k.field]?.value;
    if (a === b) {
      tied.push(`${k.field} ${a ?? '(none)'}`);
      continue;
    }
    const against = others.map((o) => `${o.values[k.field]?.value ?? 'none'} (${o.sender})`).join(', ');
    const lead = tied.length > 0 ? `tied with ${next.sender} on ${tied.join(', ')}; ` : '';
    return `${w.sender} won${where}: ${lead}${k.order} ${k.field}: ${a} against ${against}`;
  }
  return `${w.sender} won${where}: tied with ${next.sender} on ${tied.join(', ')}; the earlier proposal wins a tie`;
}

function isObject(c: Content): c is Record<string, Content> {
  return typeof c === 'object' && c !== null && !Array.isArray(c);
}

function plainFields(c: Content): Record<string, string | number | boolean | null> {
  const out: Record<string, string | number | boolean | null> = {};
  if (!isObject(c)) return out;
  for (const [k, v] of Object.entries(c))
    if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[k] = v;
  return out;
}
