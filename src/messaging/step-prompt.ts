import { normalizePerformative, allowedReplies, type Performative, type Protocol } from './performatives.js';
import { contentText, type AclMessage, type Content } from './message.js';

const INSTRUCTIONS: Partial<Record<Performative, string>> = {
  request:
    'Carry out the request and answer with the result. If you will not do it, start your answer with "REFUSE:" and the reason; if you tried and could not, start it with "FAILURE:" and the reason.',
  'request-when':
    'Carry out the request when its condition holds and answer with the result, or start your answer with "REFUSE:" and the reason.',
  'request-whenever':
    'Carry out the request each time its condition holds and answer with the result, or start your answer with "REFUSE:" and the reason.',
  'query-if':
    'Answer whether the proposition is true ("true" or "false", with a short justification). If you cannot tell, start your answer with "FAILURE:" and the reason.',
  'query-ref':
    'Answer with the object(s) the query refers to. If you cannot, start your answer with "FAILURE:" and the reason.',
  cfp: 'This is a call for proposals. If you can do the task, start your answer with "PROPOSE:" and give your terms, including "price: <number>" (your cost). If you will not bid, start your answer with "REFUSE:" and the reason.',
  propose: 'This is a proposal. Start your answer with "ACCEPT-PROPOSAL:" or "REJECT-PROPOSAL:" and your reasons.',
  'accept-proposal':
    'Your proposal was accepted: carry out the task now and answer with the result. If you could not, start your answer with "FAILURE:" and the reason.',
  subscribe:
    'This is a subscription request. Start your answer with "AGREE:" to accept it or "REFUSE:" and the reason.',
  inform: 'This is information for you: take note of it and act on it if your role calls for it. No reply is expected.',
  proxy:
    'Forward the content as asked and answer with the outcome, or start your answer with "REFUSE:" and the reason.',
};

/** What a cfp asks in a protocol that runs in rounds (auctions price each round; the iterated call names the best offer). */
const ROUND_CFP: Partial<Record<Protocol, string>> = {
  'fipa-english-auction':
    'This is a round of an English auction: the asking price rises each round. To bid the asking price, start your answer with "PROPOSE:" and "price: <the asking price>"; to drop out, start it with "REFUSE:" and the reason.',
  'fipa-dutch-auction':
    'This is a round of a Dutch auction: the asking price falls each round and the first bid wins. To buy at the asking price, start your answer with "PROPOSE:" and "price: <the asking price>"; to wait for a lower price, start it with "REFUSE:".',
  'fipa-iterated-contract-net':
    'This is a call for proposals that may be repeated: when "best_offer" is given, it is the best offer so far, and yours should improve on it. Start your answer with "PROPOSE:" and your terms, including "price: <number>", or with "REFUSE:" and the reason.',
};

/**
 * What a step asks when its acts are offered as tools (acts.ts): the model answers by calling
 * one, so the instruction names the tools instead of the text markers.
 */
const WITH_ACTS: Partial<Record<Performative, string>> = {
  cfp: 'This is a call for proposals. If you can do the task, call the "propose" tool with your price (a number: your cost) and your terms. If you will not bid, call the "refuse" tool with the reason.',
  'query-ref':
    'Answer by calling the "inform" tool with the object(s) the query refers to; if you will not answer, call "refuse", and if you cannot, call "failure", with the reason.',
};
const ROUND_WITH_ACTS: Partial<Record<Protocol, string>> = {
  'fipa-english-auction':
    'This is a round of an English auction: the asking price rises each round. To bid the asking price, call the "propose" tool with price set to it; to drop out, call the "refuse" tool with the reason.',
  'fipa-dutch-auction':
    'This is a round of a Dutch auction: the asking price falls each round and the first bid wins. To buy at the asking price, call the "propose" tool with price set to it; to wait for a lower price, call the "refuse" tool.',
  'fipa-iterated-contract-net':
    'This is a call for proposals that may be repeated: when "best_offer" is given, it is the best offer so far, and yours should improve on it. Call the "propose" tool with your price and terms, or the "refuse" tool with the reason.',
};

/**
 * Renders an incoming message as the prompt of a configuration agent's execution. `acts`: the
 * step's acts are offered to the model as tools, so the instruction names them.
 */
export function renderMessagePrompt(
  m: AclMessage,
  receiver: string,
  history: readonly AclMessage[],
  acts = false,
): string {
  const head = [
    `You received a FIPA-ACL "${m.performative}" message from "${m.sender}"${m.capability ? ` addressed to capability "${m.capability}"` : ''}.`,
    `Conversation: ${m.conversation_id}${m.protocol ? ` (protocol ${m.protocol})` : ''}`,
  ];
  if (m.ontology) head.push(`Ontology: ${m.ontology}`);
  if (m.language) head.push(`Content language: ${m.language}`);
  if (m.reply_by) head.push(`Reply by: ${m.reply_by}`);
  // Checked by the platform when the message arrived (ADR 0115): the receiver may rely on who wrote it.
  if (m.signed_by) head.push(`Signed by: ${m.signed_by.principal} (key ${m.signed_by.key}, verified by the platform)`);
  const round =
    m.performative === 'cfp' && m.protocol !== undefined ? (acts ? ROUND_WITH_ACTS : ROUND_CFP)[m.protocol] : undefined;
  const asking = m.params['X-price'] ?? m.params['X-start-price'];
  if (round && m.protocol !== 'fipa-iterated-contract-net' && asking !== undefined)
    head.push(`Asking price: ${asking}`);
  const lines = [...head];
  const earlier = history.filter((h) => h.id !== m.id);
  if (earlier.length > 0) {
    lines.push('', 'Conversation so far:');
    for (const h of earlier)
      lines.push(
        `- [${h.performative}] ${h.sender} → ${h.receivers.length > 0 ? h.receivers.join(', ') : (h.capability ?? '?')}: ${oneLine(contentText(h.content), 500)}`,
      );
  }
  lines.push('', 'Content:', contentText(m.content));
  const how = round ?? (acts ? WITH_ACTS[m.performative] : undefined) ?? INSTRUCTIONS[m.performative];
  if (how) lines.push('', how);
  void receiver;
  return lines.join('\n');
}

function oneLine(s: string, max: number): string {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

const MARKER_RE = /^\s*(?:\*\*)?\s*([A-Za-z][A-Za-z_-]*)\s*(?:\*\*)?\s*:\s*/;

/**
 * Turns an agent's answer into a reply: a leading `PERFORMATIVE:` marker (or a JSON object with
 * "performative" and "content") picks the act among those allowed for the incoming one; anything
 * else is the default reply (inform to a request, propose to a cfp...).
 */
export function parseAnswer(
  answer: string,
  incoming: Performative,
): { performative: Performative; content: Content } | undefined {
  const allowed = allowedReplies(incoming);
  if (allowed.length === 0) return undefined;
  const trimmed = answer.trim();
  if (trimmed.startsWith('{')) {
    try {
      const obj = JSON.parse(trimmed) as { performative?: unknown; content?: unknown };
      if (typeof obj.performative === 'string') {
        const p = normalizePerformative(obj.performative);
        if (p && allowed.includes(p)) return { performative: p, content: (obj.content ?? '') as Content };
      }
    } catch {
      /* plain text */
    }
  }
  const m = MARKER_RE.exec(answer);
  if (m) {
    const p = normalizePerformative(m[1]!);
    if (p && allowed.includes(p)) return { performative: p, content: answer.slice(m[0].length).trim() };
  }
  return { performative: allowed[0]!, content: trimmed };
}
