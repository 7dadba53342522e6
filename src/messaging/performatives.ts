import { INTERACTION_PROTOCOLS, type InteractionProtocol } from '../agents/index.js';

/**
 * The 22 communicative acts of the FIPA Communicative Act Library (SC00037J), as Caxton names
 * them on the wire (lower case, hyphenated, exactly as FIPA writes them).
 */
export const PERFORMATIVES = [
  'accept-proposal',
  'agree',
  'cancel',
  'cfp',
  'confirm',
  'disconfirm',
  'failure',
  'inform',
  'inform-if',
  'inform-ref',
  'not-understood',
  'propagate',
  'propose',
  'proxy',
  'query-if',
  'query-ref',
  'refuse',
  'reject-proposal',
  'request',
  'request-when',
  'request-whenever',
  'subscribe',
] as const;

export type Performative = (typeof PERFORMATIVES)[number];

const BY_KEY = new Map<string, Performative>(PERFORMATIVES.map((p) => [p, p]));

/** Accepts `query-if`, `QUERY_IF`, `Query_If`...; undefined when it is none of the 22 acts. */
export function normalizePerformative(s: string): Performative | undefined {
  return BY_KEY.get(s.trim().toLowerCase().replace(/_/g, '-'));
}

/**
 * How the router addresses a capability: `one` provider chosen by the strategy, or `all` of them.
 * Messages sent to named receivers go to exactly those receivers whatever the act.
 */
export function fanOut(p: Performative): 'one' | 'all' {
  switch (p) {
    case 'inform':
    case 'cfp':
    case 'propagate':
    case 'confirm':
    case 'disconfirm':
    case 'inform-if':
    case 'inform-ref':
      return 'all';
    case 'request':
    case 'request-when':
    case 'request-whenever':
    case 'query-if':
    case 'query-ref':
    case 'propose':
    case 'subscribe':
    case 'proxy':
    case 'accept-proposal':
    case 'reject-proposal':
    case 'agree':
    case 'refuse':
    case 'failure':
    case 'not-understood':
    case 'cancel':
      return 'one';
  }
}

/**
 * Whether a configuration agent is run for this act. Replies that only report an outcome to an
 * agent (agree, refuse, failure, not-understood, reject-proposal) and `cancel` are recorded and
 * acknowledged without calling the model: there is nothing for it to do.
 */
export function executes(p: Performative): boolean {
  switch (p) {
    case 'agree':
    case 'refuse':
    case 'failure':
    case 'not-understood':
    case 'reject-proposal':
    case 'cancel':
      return false;
    default:
      return true;
  }
}

/** Whether the receiver is expected to answer (the platform turns the agent's answer into a reply). */
export function expectsReply(p: Performative): boolean {
  switch (p) {
    case 'request':
    case 'request-when':
    case 'request-whenever':
    case 'query-if':
    case 'query-ref':
    case 'cfp':
    case 'propose':
    case 'accept-proposal':
    case 'subscribe':
    case 'proxy':
      return true;
    default:
      return false;
  }
}

/** The interaction protocols the platform runs. */
export const PROTOCOLS = INTERACTION_PROTOCOLS;
export type Protocol = InteractionProtocol;

/** The protocol a conversation follows when its first message names none. */
export function defaultProtocol(p: Performative): Protocol | undefined {
  switch (p) {
    case 'request':
    case 'request-when':
    case 'request-whenever':
      return 'fipa-request';
    case 'query-if':
    case 'query-ref':
      return 'fipa-query';
    case 'cfp':
      return 'fipa-contract-net';
    case 'subscribe':
      return 'fipa-subscribe';
    default:
      return undefined;
  }
}

/**
 * The replies an agent may give to each act that expects one; the first is the default when its
 * answer carries no `PERFORMATIVE:` marker.
 */
export function allowedReplies(p: Performative): readonly Performative[] {
  switch (p) {
    case 'request':
    case 'request-when':
    case 'request-whenever':
    case 'proxy':
      return ['inform', 'failure', 'refuse', 'not-understood'];
    case 'query-if':
    case 'query-ref':
      return ['inform', 'failure', 'refuse', 'not-understood'];
    case 'cfp':
      return ['propose', 'refuse', 'not-understood'];
    case 'propose':
      return ['accept-proposal', 'reject-proposal', 'not-understood'];
    case 'accept-proposal':
      return ['inform', 'failure'];
    case 'subscribe':
      return ['agree', 'refuse'];
    default:
      return [];
  }
}
