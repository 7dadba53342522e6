/**
 * Memory scopes. Every entity and relation lives in exactly one scope, stored as a key:
 *  - `agent:<name>`: private to one agent (the name lower-cased, as agent names are unique
 *    regardless of case). Agents reach only their own: the memory tools build this key from the
 *    calling agent's name and never take one from the model.
 *  - `workspace`: shared by the agents of this server.
 *  - `global`: shared by everything.
 */
import { agentKey } from '../agents/definition.js';
import { inScope, type Principal } from '../auth/principal.js';
import { agentVisible } from '../auth/scope-read.js';
import { CaxtonError } from '../shared/errors.js';

export const SCOPE_KINDS = ['agent', 'workspace', 'global'] as const;
export type ScopeKind = (typeof SCOPE_KINDS)[number];

const AGENT_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export function agentScope(agent: string): string {
  return `agent:${agentKey(agent)}`;
}

/**
 * Turns a scope as written by a trusted caller (REST, CLI, import files) into its key: `workspace`,
 * `global`, `agent:NAME`, or `agent` with `agent` given. `field` names the input in errors.
 */
export function parseScope(value: unknown, opts: { agent?: string; field?: string } = {}): string {
  const field = opts.field ?? 'scope';
  if (typeof value !== 'string' || value === '') {
    throw new CaxtonError(
      'invalid_request',
      `"${field}" must be one of "agent", "workspace", "global" or "agent:NAME"`,
      { field },
    );
  }
  if (value === 'workspace' || value === 'global') return value;
  if (value === 'agent' || value === 'agent-only') {
    if (!opts.agent)
      throw new CaxtonError(
        'invalid_request',
        `"${field}" is "agent" but no agent is named: use "agent:NAME" or give the agent`,
        { field },
      );
    return agentScope(opts.agent);
  }
  if (value.startsWith('agent:')) {
    const name = value.slice('agent:'.length);
    if (!AGENT_RE.test(name))
      throw new CaxtonError('invalid_request', `"${field}": "${name}" is not a valid agent name`, { field });
    return agentScope(name);
  }
  throw new CaxtonError(
    'invalid_request',
    `unknown scope "${value}" in "${field}": expected "agent", "workspace", "global" or "agent:NAME"`,
    { field, value },
  );
}

/** The scopes an agent can see: its own, the workspace and global. */
export function visibleScopes(agent: string): string[] {
  return [agentScope(agent), 'workspace', 'global'];
}

/** The scope kind a tool argument names, for the calling agent (never another agent's scope). */
export function toolScope(value: unknown, agent: string, fallback: ScopeKind): string {
  const kind = value === undefined || value === null ? fallback : value;
  if (kind === 'agent' || kind === 'agent-only') return agentScope(agent);
  if (kind === 'workspace' || kind === 'global') return kind;
  throw new CaxtonError(
    'invalid_request',
    `unknown scope ${JSON.stringify(kind)}: use "agent" (your private memory), "workspace" or "global"`,
    { field: 'scope' },
  );
}

/** Who is asking, as far as memory scopes go: a principal's id, the memory scopes and the agents its key allows. */
export type MemoryCaller = Pick<Principal, 'id'> & { readonly scope: Pick<Principal['scope'], 'memory' | 'agents'> };

/**
 * Whether the caller's agent scope reaches a memory scope: `agent:NAME` only with NAME among its
 * agents (src/auth/scope-read.ts); the shared scopes always. The key holds the name lower-cased,
 * and the globs are matched against that as written: a glob with capitals reaches no agent memory
 * rather than, by folding case, that of an agent it does not match.
 */
function agentReaches(caller: MemoryCaller, scope: string): boolean {
  if (caller.scope.agents === undefined || !scope.startsWith('agent:')) return true;
  return agentVisible(caller, scope.slice('agent:'.length));
}

/**
 * The one rule on a caller's memory scopes, applied by every way into memory (REST, MCP tools):
 * a caller limited to some scopes uses only those, and a caller limited to some agents reaches
 * `agent:NAME` only for those agents. `scope` undefined means "every scope", which a caller
 * limited to some memory scopes may not ask for: it must name one (a caller limited only by agents
 * gets every scope it may use, permittedScopes). No caller (auth off, an agent's own call) and a
 * caller without limits may use any scope. Throws 'forbidden' naming the scope.
 */
export function checkMemoryScope(caller: MemoryCaller | undefined, scope: string | undefined): void {
  if (!caller) return;
  if (scope !== undefined && !agentReaches(caller, scope))
    throw new CaxtonError(
      'forbidden',
      `${caller.id} may not use the memory scope "${scope}": its agent is outside the agents it may reach (${caller.scope.agents!.join(', ')})`,
      {
        reason: 'agent_scope',
        scope,
      },
    );
  const allowed = caller.scope.memory;
  if (allowed === undefined) return;
  if (scope === undefined)
    throw new CaxtonError(
      'forbidden',
      `${caller.id} may use only the memory scopes ${allowed.join(', ')}: name one with ?scope=`,
      { reason: 'memory_scope', allowed },
    );
  if (!inScope(allowed, scope))
    throw new CaxtonError(
      'forbidden',
      `${caller.id} may not use the memory scope "${scope}" (its keys allow: ${allowed.join(', ')})`,
      { reason: 'memory_scope', scope },
    );
}

/** Of `scopes`, those the caller may use (all of them for a caller without limits). */
export function permittedScopes(caller: MemoryCaller | undefined, scopes: readonly string[]): string[] {
  if (!caller) return [...scopes];
  const allowed = caller.scope.memory;
  return scopes.filter((s) => inScope(allowed, s) && agentReaches(caller, s));
}
