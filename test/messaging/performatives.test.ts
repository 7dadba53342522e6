/**
 * The 22 FIPA communicative acts as a unit (src/messaging/performatives.ts): how each is written,
 * and for each act how the router addresses it, whether an agent runs for it, whether it expects
 * a reply, the protocol it starts and the replies it allows. One row per act, so that moving an
 * act from one case to another fails here, not only in a conversation that happens to use it.
 */
import { describe, expect, it } from 'vitest';
import {
  allowedReplies,
  defaultProtocol,
  executes,
  expectsReply,
  fanOut,
  normalizePerformative,
  PERFORMATIVES,
  PROTOCOLS,
  type Performative,
  type Protocol,
} from '../../src/messaging/performatives.js';

const ASK = ['inform', 'failure', 'refuse', 'not-understood'];

// act: [fanOut, executes, expectsReply, defaultProtocol, allowedReplies]
const TABLE: Record<Performative, ['one' | 'all', boolean, boolean, Protocol | undefined, string[]]> = {
  'accept-proposal': ['one', true, true, undefined, ['inform', 'failure']],
  agree: ['one', false, false, undefined, []],
  cancel: ['one', false, false, undefined, []],
  cfp: ['all', true, true, 'fipa-contract-net', ['propose', 'refuse', 'not-understood']],
  confirm: ['all', true, false, undefined, []],
  disconfirm: ['all', true, false, undefined, []],
  failure: ['one', false, false, undefined, []],
  inform: ['all', true, false, undefined, []],
  'inform-if': ['all', true, false, undefined, []],
  'inform-ref': ['all', true, false, undefined, []],
  'not-understood': ['one', false, false, undefined, []],
  propagate: ['all', true, false, undefined, []],
  propose: ['one', true, true, undefined, ['accept-proposal', 'reject-proposal', 'not-understood']],
  proxy: ['one', true, true, undefined, ASK],
  'query-if': ['one', true, true, 'fipa-query', ASK],
  'query-ref': ['one', true, true, 'fipa-query', ASK],
  refuse: ['one', false, false, undefined, []],
  'reject-proposal': ['one', false, false, undefined, []],
  request: ['one', true, true, 'fipa-request', ASK],
  'request-when': ['one', true, true, 'fipa-request', ASK],
  'request-whenever': ['one', true, true, 'fipa-request', ASK],
  subscribe: ['one', true, true, 'fipa-subscribe', ['agree', 'refuse']],
};

describe('performatives', () => {
  it('are the 22 acts of the FIPA library, written as FIPA writes them', () => {
    expect([...PERFORMATIVES]).toEqual(Object.keys(TABLE));
    expect(PERFORMATIVES).toHaveLength(22);
  });

  it('normalizePerformative accepts any case, "_" for "-" and surrounding blanks; anything else is undefined', () => {
    for (const p of PERFORMATIVES) {
      expect(normalizePerformative(p)).toBe(p);
      expect(normalizePerformative(p.toUpperCase().replace(/-/g, '_'))).toBe(p);
    }
    expect(normalizePerformative('  Query_If\t')).toBe('query-if');
    expect(normalizePerformative('Request_WhenEver')).toBe('request-whenever');
    for (const s of ['', ' ', 'queryif', 'query if', 'query--if', 'informs', 'ask', 'query-if.'])
      expect(normalizePerformative(s)).toBeUndefined();
  });

  it.each(Object.entries(TABLE))(
    '%s: fanOut, executes, expectsReply, defaultProtocol, allowedReplies',
    (act, [fan, runs, reply, protocol, replies]) => {
      const p = act as Performative;
      expect(fanOut(p)).toBe(fan);
      expect(executes(p)).toBe(runs);
      expect(expectsReply(p)).toBe(reply);
      expect(defaultProtocol(p)).toBe(protocol);
      expect(allowedReplies(p)).toEqual(replies);
    },
  );

  it('an act expects a reply exactly when it allows some replies', () => {
    for (const p of PERFORMATIVES) expect(allowedReplies(p).length > 0).toBe(expectsReply(p));
  });

  it('every default protocol is one the platform runs', () => {
    expect([...PROTOCOLS]).toEqual([
      'fipa-request',
      'fipa-query',
      'fipa-contract-net',
      'fipa-subscribe',
      'fipa-english-auction',
      'fipa-dutch-auction',
      'fipa-iterated-contract-net',
    ]);
    for (const p of PERFORMATIVES) {
      const protocol = defaultProtocol(p);
      if (protocol !== undefined) expect(PROTOCOLS).toContain(protocol);
    }
  });
});
