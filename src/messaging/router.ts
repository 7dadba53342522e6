import type { SendScope } from '../auth/index.js';
import { accepts, type Directory, type DirectoryEntry } from './directory.js';
import type { AclMessage } from './message.js';
import { fanOut } from './performatives.js';
import type { LoadView, RoutingStrategy } from './strategy.js';

export type RouteFailure =
  'unknown_capability' | 'unknown_agent' | 'no_acceptable_provider' | 'loop_detected' | 'out_of_scope';

export type RouteDecision =
  | { readonly ok: true; readonly mode: 'named' | 'one' | 'all'; readonly receivers: readonly DirectoryEntry[] }
  | { readonly ok: false; readonly reason: RouteFailure; readonly message: string };

const NO_LOAD: LoadView = { load: () => 0 };

/**
 * Decides where a message goes. Named receivers get it as addressed; a capability goes to one
 * provider chosen by the strategy (request, query, propose...) or to every provider (inform, cfp).
 * Providers that do not accept the message's protocol, ontology or language are passed over, and
 * an agent already in the message's chain never receives it again (a message loop). With a
 * `scope` (the acting principal's, src/auth/scope-send.ts), providers outside it are not
 * candidates at all, and when a capability has providers but none inside it, its refusal is thrown.
 * Synchronous and allocation-light: it runs for every message.
 */
export class Router {
  constructor(
    readonly directory: Directory,
    public strategy: RoutingStrategy,
    private readonly load: LoadView = NO_LOAD,
    private readonly maxHops = 8,
  ) {}

  route(m: AclMessage, scope?: SendScope): RouteDecision {
    if (m.chain.length >= this.maxHops) {
      return {
        ok: false,
        reason: 'loop_detected',
        message: `message chain is ${m.chain.length} agents long (${m.chain.join(' → ')}); the limit is ${this.maxHops} ([messaging] max_hops): stopped as a probable loop`,
      };
    }
    if (m.receivers.length > 0) return this.#named(m);
    const capability = m.capability!;
    let providers = this.directory.providers(capability);
    if (providers.length === 0)
      return { ok: false, reason: 'unknown_capability', message: `no agent provides capability "${capability}"` };
    if (scope) {
      providers = providers.filter((e) => scope.allows(e.agent));
      if (providers.length === 0) throw scope.refusal(capability);
    }
    let candidates = providers;
    if (m.protocol !== undefined || m.ontology !== undefined || m.language !== undefined || m.chain.length > 0) {
      candidates = providers.filter((e) => accepts(e, m) && !m.chain.includes(e.agent));
      if (candidates.length === 0) {
        const looping = providers.filter((e) => m.chain.includes(e.agent));
        if (looping.length > 0 && looping.length === providers.filter((e) => accepts(e, m)).length) {
          return {
            ok: false,
            reason: 'loop_detected',
            message: `message loop detected: ${[...m.chain, looping[0]!.agent].join(' → ')}; capability "${capability}" has no other provider`,
          };
        }
        return {
          ok: false,
          reason: 'no_acceptable_provider',
          message: `no provider of capability "${capability}" accepts ${[m.protocol && `protocol "${m.protocol}"`, m.ontology && `ontology "${m.ontology}"`, m.language && `language "${m.language}"`].filter(Boolean).join(', ')}`,
        };
      }
    }
    if (fanOut(m.performative) === 'all') return { ok: true, mode: 'all', receivers: candidates };
    return {
      ok: true,
      mode: 'one',
      receivers: [candidates.length === 1 ? candidates[0]! : this.strategy.select(capability, candidates, this.load)],
    };
  }

  #named(m: AclMessage): RouteDecision {
    // Made on the first receiver, sized for it: most messages name one.
    let out: DirectoryEntry[] | undefined;
    for (const name of m.receivers) {
      const e = this.directory.get(name);
      if (!e) {
        const at = name.lastIndexOf('@');
        const message =
          at > 0
            ? `"${name}" is not a version agent "${name.slice(0, at)}" keeps: address the agent by name (its live version), or a kept version as NAME@VERSION (caxton agent history ${name.slice(0, at)} lists them)`
            : `no agent named "${name}" is deployed`;
        return { ok: false, reason: 'unknown_agent', message };
      }
      if (m.chain.includes(e.agent))
        return {
          ok: false,
          reason: 'loop_detected',
          message: `message loop detected: ${[...m.chain, e.agent].join(' → ')}`,
        };
      if (!accepts(e, m))
        return {
          ok: false,
          reason: 'no_acceptable_provider',
          message: `agent "${e.agent}" does not accept this message's protocol, ontology or language`,
        };
      if (out) out.push(e);
      else out = [e];
    }
    return { ok: true, mode: 'named', receivers: out ?? [] };
  }
}
