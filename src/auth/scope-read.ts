/**
 * What a principal may read, by its agent scope: the one rule every read surface applies (REST
 * lists and single reads, conversation and event streams, MCP resources, memory).
 *  - A message is visible iff every agent it names (its sender when that is an agent, its
 *    receivers, where it was routed) is in the principal's `agents` scope.
 *  - A conversation is visible iff every agent among its participants is.
 *  - An event about an agent is visible iff that agent is.
 *  - A list of agents (the agents, the directory, the OpenAI models) holds only those in scope; a
 *    capability is listed with its providers in scope, and not at all when none is.
 * Parties that are not agents (`key:…`, `oidc:…`, `cert:…`, the platform `caxton`, `mcp`, `user`)
 * do not count. A principal without an agents scope (and the local one) sees everything.
 *
 * The same rule as SQL (messageScopeSql, conversationScopeSql) narrows list queries, so a page of
 * a filtered list is full while visible items remain; the readers still check each item here.
 */
import type { AgentRegistry, DeployedAgent, ListOptions } from '../agents/index.js';
import { globSql, type SqlDialect } from '../storage/index.js';
import { agentOfRef, inScope, type Principal } from './principal.js';

/** Parties without ":" that are still not agents: the platform itself and default outside senders. */
export const NON_AGENT_PARTIES: readonly string[] = ['caxton', 'mcp', 'user'];

/** Whether a message party names an agent (agent names never contain ":"). */
export function isAgentParty(name: string): boolean {
  return !name.includes(':') && !NON_AGENT_PARTIES.includes(name);
}

/** The agent globs limiting what `p` reads; undefined: it reads every agent's traffic. */
export function readScopeOf(p: Pick<Principal, 'scope'> | undefined): readonly string[] | undefined {
  return p?.scope.agents;
}

/** Whether an event or record about agent `name` is visible to `p`. */
export function agentVisible(p: Pick<Principal, 'scope'> | undefined, name: string): boolean {
  return inScope(readScopeOf(p), name);
}

/** agentVisible as a filter for lists, or undefined when `p` sees every agent (nothing to filter). */
export function agentFilterOf(p: Pick<Principal, 'scope'> | undefined): ((name: string) => boolean) | undefined {
  const globs = readScopeOf(p);
  return globs === undefined ? undefined : (name) => inScope(globs, agentOfRef(name));
}

/** The deployed agents `p` sees, sorted by name; `total` counts only those, so pages stay full. */
export function agentsVisibleTo(
  p: Pick<Principal, 'scope'> | undefined,
  registry: AgentRegistry,
  opts: Omit<ListOptions, 'visible'> = {},
): { agents: DeployedAgent[]; total: number } {
  return registry.list({ ...opts, visible: agentFilterOf(p) });
}

/** Capabilities with only the providers `p` sees; a capability none of whose providers it sees is left out. */
export function capabilitiesVisibleTo<C extends string>(
  p: Pick<Principal, 'scope'> | undefined,
  capabilities: readonly { capability: C; agents: readonly string[] }[],
): { capability: C; agents: string[] }[] {
  const visible = agentFilterOf(p);
  return capabilities.flatMap((c) => {
    const agents = visible ? c.agents.filter(visible) : [...c.agents];
    return agents.length > 0 ? [{ capability: c.capability, agents }] : [];
  });
}

/** Whether every agent among `parties` is in `p`'s agents scope. */
export function partiesVisible(p: Pick<Principal, 'scope'> | undefined, parties: Iterable<string>): boolean {
  const globs = readScopeOf(p);
  if (globs === undefined) return true;
  for (const name of parties) if (isAgentParty(name) && !inScope(globs, name)) return false;
  return true;
}

/** A stored message as the rule reads it. */
export interface MessageParties {
  message: { readonly sender: string; readonly receivers: readonly string[] };
  routed_to: readonly string[];
}

export function messageVisible(p: Pick<Principal, 'scope'> | undefined, m: MessageParties): boolean {
  return partiesVisible(p, [m.message.sender, ...m.message.receivers, ...m.routed_to]);
}

export function conversationVisible(
  p: Pick<Principal, 'scope'> | undefined,
  c: { readonly participants: readonly string[] },
): boolean {
  return partiesVisible(p, c.participants);
}

/**
 * The log lines `p` may see, or undefined when it sees them all: a line naming agents (its
 * `agent`, `sender` or `receiver` fields) is visible iff each is in scope, as a message is.
 */
export function logLinesVisibleTo(
  p: Pick<Principal, 'scope'> | undefined,
): ((line: Readonly<Record<string, unknown>>) => boolean) | undefined {
  if (readScopeOf(p) === undefined) return undefined;
  return (line) =>
    partiesVisible(
      p,
      [line.agent, line.sender, line.receiver].flat().filter((v): v is string => typeof v === 'string'),
    );
}

/** `expr` (a party name) is an agent outside `globs`, as SQL. */
function outsideSql(dialect: SqlDialect, expr: string, globs: readonly string[], param: (v: string) => string): string {
  const colon = dialect === 'sqlite' ? `instr(${expr}, ':') = 0` : `strpos(${expr}, ':') = 0`;
  const named = NON_AGENT_PARTIES.map((n) => param(n)).join(', ');
  return `(${colon} AND ${expr} NOT IN (${named}) AND NOT ${globSql(dialect, expr, globs, param)})`;
}

/**
 * `expr`, JSON text, with each `\u0000` escape made `\u0001`: PostgreSQL refuses to read JSON
 * holding one (message content may), and the names read from it never contain either.
 */
const pgJsonText = (expr: string): string =>
  `(CASE WHEN strpos(${expr}, '\\u0000') > 0 THEN regexp_replace(${expr}, '(?<!\\\\)((?:\\\\\\\\)*)\\\\u0000', '\\1\\\\u0001', 'g') ELSE ${expr} END)`;

/** The strings of a JSON array held in `expr` (text), as a FROM item `r` and its value column; `path`: the array at that key of an object. */
function jsonElements(dialect: SqlDialect, expr: string, path?: string): { from: string; v: string } {
  if (dialect === 'sqlite') return { from: `json_each(${expr}${path ? `, '$.${path}'` : ''}) r`, v: 'r.value' };
  return {
    from: `json_array_elements_text(${path ? `COALESCE(${pgJsonText(expr)}::json -> '${path}', '[]'::json)` : `(${expr})::json`}) AS r(v)`,
    v: 'r.v',
  };
}

/** No element of the JSON array in `expr` is an agent outside `globs`, as SQL. */
function noneOutside(
  dialect: SqlDialect,
  expr: string,
  globs: readonly string[],
  param: (v: string) => string,
  path?: string,
): string {
  const e = jsonElements(dialect, expr, path);
  return `NOT EXISTS (SELECT 1 FROM ${e.from} WHERE ${outsideSql(dialect, e.v, globs, param)})`;
}

/**
 * messageVisible as an SQL condition over a messages row whose columns are `cols` (sender, the
 * routed_to JSON array, the JSON body with its receivers).
 */
export function messageScopeSql(
  dialect: SqlDialect,
  cols: { sender: string; routed_to: string; body: string },
  globs: readonly string[],
  param: (v: string) => string,
): string {
  return `(NOT ${outsideSql(dialect, cols.sender, globs, param)} AND ${noneOutside(dialect, cols.routed_to, globs, param)} AND ${noneOutside(dialect, cols.body, globs, param, 'receivers')})`;
}

/** conversationVisible as an SQL condition over the participants JSON array `participants`. */
export function conversationScopeSql(
  dialect: SqlDialect,
  participants: string,
  globs: readonly string[],
  param: (v: string) => string,
): string {
  return noneOutside(dialect, participants, globs, param);
}

/** agentVisible as an SQL condition over `expr`, text naming an agent (`NAME@VERSION` is the agent NAME). */
export function agentScopeSql(
  dialect: SqlDialect,
  expr: string,
  globs: readonly string[],
  param: (v: string) => string,
): string {
  const at = dialect === 'sqlite' ? `instr(${expr}, '@')` : `strpos(${expr}, '@')`;
  const name = `(CASE WHEN ${at} > 1 THEN substr(${expr}, 1, ${at} - 1) ELSE ${expr} END)`;
  return globSql(dialect, name, globs, param);
}
