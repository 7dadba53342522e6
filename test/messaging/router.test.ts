/**
 * Router unit tests: a real Directory over a real AgentRegistry (in memory, no server), a fixed
 * LoadView, and hand-built messages. Each test pins one decision of Router.route exactly.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { AgentRegistry } from '../../src/agents/index.js';
import { Directory } from '../../src/messaging/directory.js';
import { Router, type RouteDecision } from '../../src/messaging/router.js';
import { LeastLoaded, RoundRobin, type LoadView } from '../../src/messaging/strategy.js';
import { aclMessage, agentDef, deploy } from './helpers.js';

const msg = aclMessage;

function agentsOf(d: RouteDecision): string[] {
  if (!d.ok) throw new Error(`expected ok, got ${d.reason}: ${d.message}`);
  return d.receivers.map((e) => e.agent);
}

function loads(m: Record<string, number>): LoadView {
  return { load: (a) => m[a] ?? 0 };
}

let registry: AgentRegistry;
let directory: Directory;

beforeEach(() => {
  registry = new AgentRegistry();
  // Deployed out of order: the directory sorts providers by name.
  deploy(registry, agentDef('charlie', ['calc']));
  deploy(registry, agentDef('alpha', ['calc', 'solo']));
  deploy(registry, agentDef('bravo', ['calc']));
  directory = new Directory(registry);
});

describe('Router: named receivers', () => {
  it('delivers to exactly the named receivers, in order, with mode "named" and the directory entries', () => {
    const r = new Router(directory, new RoundRobin());
    const d = r.route(msg({ receivers: ['bravo', 'alpha'] }));
    expect(d.ok).toBe(true);
    if (!d.ok) return;
    expect(d.mode).toBe('named');
    expect(d.receivers).toHaveLength(2);
    expect(d.receivers[0]).toBe(directory.get('bravo'));
    expect(d.receivers[1]).toBe(directory.get('alpha'));
  });

  it('named receivers ignore the fan-out of the act (inform to one named agent stays one)', () => {
    const d = new Router(directory, new RoundRobin()).route(msg({ performative: 'inform', receivers: ['charlie'] }));
    expect(d.ok && d.mode).toBe('named');
    expect(agentsOf(d)).toEqual(['charlie']);
  });

  it('resolves names regardless of case', () => {
    expect(agentsOf(new Router(directory, new RoundRobin()).route(msg({ receivers: ['ALPHA'] })))).toEqual(['alpha']);
  });

  it('an unknown agent fails the whole message with unknown_agent naming it', () => {
    const d = new Router(directory, new RoundRobin()).route(msg({ receivers: ['alpha', 'ghost'] }));
    expect(d).toEqual({ ok: false, reason: 'unknown_agent', message: 'no agent named "ghost" is deployed' });
  });

  it('a named receiver already in the chain is a loop', () => {
    const d = new Router(directory, new RoundRobin()).route(msg({ receivers: ['bravo'], chain: ['alpha', 'bravo'] }));
    expect(d).toEqual({ ok: false, reason: 'loop_detected', message: 'message loop detected: alpha → bravo → bravo' });
  });

  it('a named receiver that does not accept the protocol fails with no_acceptable_provider', () => {
    deploy(registry, agentDef('picky', ['calc'], '[messaging]\nprotocols = ["fipa-query"]\n'));
    const r = new Router(directory, new RoundRobin());
    expect(r.route(msg({ receivers: ['picky'], protocol: 'fipa-request' }))).toEqual({
      ok: false,
      reason: 'no_acceptable_provider',
      message: `agent "picky" does not accept this message's protocol, ontology or language`,
    });
    expect(agentsOf(r.route(msg({ receivers: ['picky'], protocol: 'fipa-query' })))).toEqual(['picky']);
    // No protocol on the message: accepted.
    expect(agentsOf(r.route(msg({ receivers: ['picky'] })))).toEqual(['picky']);
  });
});

describe('Router: capability to one provider', () => {
  it('unknown capability', () => {
    expect(new Router(directory, new RoundRobin()).route(msg({ capability: 'nope' }))).toEqual({
      ok: false,
      reason: 'unknown_capability',
      message: 'no agent provides capability "nope"',
    });
  });

  it('a single provider is chosen without consulting the strategy', () => {
    let asked = 0;
    const strategy = {
      name: 'spy',
      select: (_c: string, cands: readonly { agent: string }[]) => {
        asked++;
        return cands[0] as never;
      },
    };
    const d = new Router(directory, strategy).route(msg({ capability: 'solo' }));
    expect(d).toEqual({ ok: true, mode: 'one', receivers: [directory.get('alpha')] });
    expect(asked).toBe(0);
  });

  it('round-robin rotates over the providers in name order, per capability', () => {
    const r = new Router(directory, new RoundRobin());
    const picks = Array.from({ length: 7 }, () => agentsOf(r.route(msg({ capability: 'calc' }))));
    expect(picks).toEqual([['alpha'], ['bravo'], ['charlie'], ['alpha'], ['bravo'], ['charlie'], ['alpha']]);
    const d = r.route(msg({ capability: 'calc' }));
    expect(d.ok && d.mode).toBe('one');
  });

  it('round-robin keeps a separate counter per capability', () => {
    deploy(registry, agentDef('delta', ['other']));
    deploy(registry, agentDef('echo', ['other']));
    const r = new Router(directory, new RoundRobin());
    expect(agentsOf(r.route(msg({ capability: 'calc' })))).toEqual(['alpha']);
    expect(agentsOf(r.route(msg({ capability: 'calc' })))).toEqual(['bravo']);
    expect(agentsOf(r.route(msg({ capability: 'other' })))).toEqual(['delta']);
    expect(agentsOf(r.route(msg({ capability: 'calc' })))).toEqual(['charlie']);
    expect(agentsOf(r.route(msg({ capability: 'other' })))).toEqual(['echo']);
  });

  it('least-loaded picks the unique least loaded provider, wherever it is in the list', () => {
    for (const [m, want] of [
      [{ alpha: 3, bravo: 1, charlie: 2 }, 'bravo'],
      [{ alpha: 0, bravo: 1, charlie: 2 }, 'alpha'],
      [{ alpha: 5, bravo: 4, charlie: 3 }, 'charlie'],
    ] as const) {
      const r = new Router(directory, new LeastLoaded(), loads(m));
      expect(agentsOf(r.route(msg({ capability: 'calc' })))).toEqual([want]);
      // Stable: the same loads give the same pick.
      expect(agentsOf(r.route(msg({ capability: 'calc' })))).toEqual([want]);
    }
  });

  it('least-loaded shares ties round-robin among the tied providers only', () => {
    const r = new Router(directory, new LeastLoaded(), loads({ alpha: 1, bravo: 4, charlie: 1 }));
    const picks = Array.from({ length: 4 }, () => agentsOf(r.route(msg({ capability: 'calc' })))[0]);
    expect(picks).toEqual(['alpha', 'charlie', 'alpha', 'charlie']);
  });

  it('without a LoadView every provider has load 0: least-loaded rotates over all of them', () => {
    const r = new Router(directory, new LeastLoaded());
    const picks = Array.from({ length: 4 }, () => agentsOf(r.route(msg({ capability: 'calc' })))[0]);
    expect(picks).toEqual(['alpha', 'bravo', 'charlie', 'alpha']);
  });

  it('the strategy is swappable at run time', () => {
    const r = new Router(directory, new RoundRobin(), loads({ alpha: 9, bravo: 9, charlie: 0 }));
    expect(agentsOf(r.route(msg({ capability: 'calc' })))).toEqual(['alpha']);
    r.strategy = new LeastLoaded();
    expect(agentsOf(r.route(msg({ capability: 'calc' })))).toEqual(['charlie']);
  });
});

describe('Router: broadcast acts', () => {
  for (const performative of [
    'inform',
    'cfp',
    'propagate',
    'confirm',
    'disconfirm',
    'inform-if',
    'inform-ref',
  ] as const) {
    it(`${performative} to a capability goes to every provider, in name order`, () => {
      const d = new Router(directory, new RoundRobin()).route(msg({ performative, capability: 'calc' }));
      expect(d).toEqual({ ok: true, mode: 'all', receivers: directory.providers('calc') });
      expect(agentsOf(d)).toEqual(['alpha', 'bravo', 'charlie']);
    });
  }

  for (const performative of ['request', 'query-ref', 'propose', 'subscribe', 'cancel'] as const) {
    it(`${performative} to a capability goes to one provider`, () => {
      const d = new Router(directory, new RoundRobin()).route(msg({ performative, capability: 'calc' }));
      expect(d.ok && d.mode).toBe('one');
      expect(agentsOf(d)).toHaveLength(1);
    });
  }

  it('a broadcast still skips providers in the chain and those that do not accept the protocol', () => {
    deploy(registry, agentDef('picky', ['calc'], '[messaging]\nprotocols = ["fipa-query"]\n'));
    const d = new Router(directory, new RoundRobin()).route(
      msg({ performative: 'cfp', capability: 'calc', protocol: 'fipa-contract-net', chain: ['bravo'] }),
    );
    expect(agentsOf(d)).toEqual(['alpha', 'charlie']);
  });
});

describe('Router: protocol, ontology and language filters', () => {
  beforeEach(() => {
    deploy(
      registry,
      agentDef(
        'q1',
        ['lookup'],
        '[messaging]\nprotocols = ["fipa-query"]\nontologies = ["geo"]\nlanguages = ["json"]\n',
      ),
    );
    deploy(
      registry,
      agentDef(
        'q2',
        ['lookup'],
        '[messaging]\nprotocols = ["fipa-request"]\nontologies = ["finance"]\nlanguages = ["text"]\n',
      ),
    );
    deploy(registry, agentDef('q3', ['lookup'], '[messaging]\nontologies = ["geo", "finance"]\n'));
  });

  const r = () => new Router(directory, new RoundRobin());

  it('keeps only providers accepting the protocol (an empty list accepts every protocol)', () => {
    expect(agentsOf(r().route(msg({ performative: 'inform', capability: 'lookup', protocol: 'fipa-query' })))).toEqual([
      'q1',
      'q3',
    ]);
    expect(
      agentsOf(r().route(msg({ performative: 'inform', capability: 'lookup', protocol: 'fipa-request' }))),
    ).toEqual(['q2', 'q3']);
  });

  it('keeps only providers accepting the ontology', () => {
    expect(agentsOf(r().route(msg({ performative: 'inform', capability: 'lookup', ontology: 'geo' })))).toEqual([
      'q1',
      'q3',
    ]);
    expect(agentsOf(r().route(msg({ performative: 'inform', capability: 'lookup', ontology: 'finance' })))).toEqual([
      'q2',
      'q3',
    ]);
  });

  it('keeps only providers accepting the language', () => {
    expect(agentsOf(r().route(msg({ performative: 'inform', capability: 'lookup', language: 'json' })))).toEqual([
      'q1',
      'q3',
    ]);
  });

  it('providers with no list accept every protocol, ontology and language', () => {
    const d = new Router(directory, new RoundRobin()).route(
      msg({
        performative: 'inform',
        capability: 'calc',
        protocol: 'fipa-subscribe',
        ontology: 'any',
        language: 'klingon',
      }),
    );
    expect(agentsOf(d)).toEqual(['alpha', 'bravo', 'charlie']);
  });

  it('all filters apply together', () => {
    expect(
      agentsOf(
        r().route(
          msg({
            performative: 'inform',
            capability: 'lookup',
            protocol: 'fipa-query',
            ontology: 'geo',
            language: 'json',
          }),
        ),
      ),
    ).toEqual(['q1', 'q3']);
    expect(
      agentsOf(
        r().route(msg({ performative: 'inform', capability: 'lookup', protocol: 'fipa-query', ontology: 'finance' })),
      ),
    ).toEqual(['q3']);
    // One candidate left for a one-provider act: that one, strategy or not.
    expect(r().route(msg({ capability: 'lookup', protocol: 'fipa-request', ontology: 'geo' }))).toEqual({
      ok: true,
      mode: 'one',
      receivers: [directory.get('q3')],
    });
  });

  it('no acceptable provider names every parameter given', () => {
    expect(r().route(msg({ capability: 'lookup', ontology: 'weather' }))).toEqual({
      ok: false,
      reason: 'no_acceptable_provider',
      message: 'no provider of capability "lookup" accepts ontology "weather"',
    });
    expect(
      r().route(msg({ capability: 'lookup', protocol: 'fipa-subscribe', ontology: 'weather', language: 'xml' })),
    ).toEqual({
      ok: false,
      reason: 'no_acceptable_provider',
      message:
        'no provider of capability "lookup" accepts protocol "fipa-subscribe", ontology "weather", language "xml"',
    });
  });
});

describe('Router: loop detection', () => {
  it('a chain of max_hops agents is stopped before routing, even to a valid receiver', () => {
    const r = new Router(directory, new RoundRobin(), undefined, 3);
    expect(r.route(msg({ receivers: ['alpha'], chain: ['x', 'y', 'z'] }))).toEqual({
      ok: false,
      reason: 'loop_detected',
      message:
        'message chain is 3 agents long (x → y → z); the limit is 3 ([messaging] max_hops): stopped as a probable loop',
    });
    // One hop under the limit still routes.
    expect(agentsOf(r.route(msg({ receivers: ['alpha'], chain: ['x', 'y'] })))).toEqual(['alpha']);
  });

  it('the default max_hops is 8', () => {
    const r = new Router(directory, new RoundRobin());
    const chain7 = ['a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7'];
    expect(agentsOf(r.route(msg({ capability: 'solo', chain: chain7 })))).toEqual(['alpha']);
    const d = r.route(msg({ capability: 'solo', chain: [...chain7, 'a8'] }));
    expect(!d.ok && d.reason).toBe('loop_detected');
  });

  it('capability routing passes over providers already in the chain', () => {
    const r = new Router(directory, new RoundRobin());
    const picks = Array.from({ length: 4 }, () => agentsOf(r.route(msg({ capability: 'calc', chain: ['bravo'] })))[0]);
    expect(picks).toEqual(['alpha', 'charlie', 'alpha', 'charlie']);
  });

  it('when every acceptable provider is in the chain it is a loop, naming the first of them', () => {
    const r = new Router(directory, new RoundRobin());
    expect(r.route(msg({ capability: 'solo', chain: ['user-agent', 'alpha'] }))).toEqual({
      ok: false,
      reason: 'loop_detected',
      message: 'message loop detected: user-agent → alpha → alpha; capability "solo" has no other provider',
    });
    expect(r.route(msg({ capability: 'calc', chain: ['charlie', 'alpha', 'bravo'] }))).toEqual({
      ok: false,
      reason: 'loop_detected',
      message: 'message loop detected: charlie → alpha → bravo → alpha; capability "calc" has no other provider',
    });
  });

  it('when some providers refuse the protocol and the rest are in the chain it is still a loop', () => {
    deploy(registry, agentDef('picky', ['solo'], '[messaging]\nprotocols = ["fipa-query"]\n'));
    const d = new Router(directory, new RoundRobin()).route(
      msg({ capability: 'solo', protocol: 'fipa-request', chain: ['alpha'] }),
    );
    expect(!d.ok && d.reason).toBe('loop_detected');
  });

  it('when the only providers in the chain would not accept the message anyway, it is no_acceptable_provider', () => {
    deploy(registry, agentDef('narrow1', ['narrow'], '[messaging]\nprotocols = ["fipa-query"]\n'));
    deploy(registry, agentDef('narrow2', ['narrow'], '[messaging]\nprotocols = ["fipa-query"]\n'));
    const r = new Router(directory, new RoundRobin());
    // Nobody accepts fipa-request; narrow1 is in the chain but is not the reason nothing is left.
    expect(r.route(msg({ capability: 'narrow', protocol: 'fipa-request', chain: ['narrow1'] }))).toEqual({
      ok: false,
      reason: 'no_acceptable_provider',
      message: 'no provider of capability "narrow" accepts protocol "fipa-request"',
    });
    // With an acceptable protocol, the one not in the chain is routed.
    expect(agentsOf(r.route(msg({ capability: 'narrow', protocol: 'fipa-query', chain: ['narrow1'] })))).toEqual([
      'narrow2',
    ]);
  });
});
