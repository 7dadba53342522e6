/**
 * Which agents an MCP caller sees: those the `[mcp] agents` patterns offer, narrowed to the
 * caller's agent scope. Shared by tools (`ask_<agent>`), prompts and resources so the three never
 * disagree about who is visible.
 */
import { agentVisible as inAgentScope, can, type LimitSet, type Permission, type Principal } from '../auth/index.js';
import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';
import type { AgentRegistry, DeployedAgent } from '../agents/index.js';

/** Who is calling over MCP (POST /mcp: the authenticated principal; stdio: nobody, the local user). */
export interface McpCaller {
  principal?: Principal | undefined;
  limits?: LimitSet | undefined;
  /**
   * Told when a tool call is refused for the caller's permissions or scopes, so the request's
   * audit row says `denied` although the MCP answer itself is a success carrying a tool error.
   */
  refused?: (() => void) | undefined;
  /**
   * Told when a call that changes something (a run's decision) failed with an error `code`, so the
   * audit row says `error` as the REST route's would.
   */
  failed?: ((code: string) => void) | undefined;
}

/**
 * A JSON-RPC error for the MCP client. The SDK's McpError puts "MCP error CODE: " before its
 * message and the SDK sends `message` as it is, so a client (which adds the prefix itself) showed
 * "MCP error -32602: MCP error -32602: ...". The SDK's own errors ("Method not found") go out
 * without the prefix; Caxton's do too.
 */
export function rpcError(code: number, message: string, data?: unknown): McpError {
  const e = new McpError(code, message, data);
  e.message = message;
  return e;
}

/** `*` (everything), an exact name, or `prefix.*`. */
export function matches(patterns: readonly string[], name: string): boolean {
  for (const p of patterns) {
    if (p === '*' || p === name) return true;
    if (p.endsWith('.*') && name.startsWith(p.slice(0, -1))) return true;
  }
  return false;
}

/** stdio has no principal: the local user may do everything the configuration offers. */
export const allowed = (p: Principal | undefined, permission: Permission): boolean =>
  p === undefined || can(p, permission);

export function agentVisible(patterns: readonly string[], caller: McpCaller, name: string): boolean {
  return matches(patterns, name) && inAgentScope(caller.principal, name);
}

/** The agent `name` if it is offered and in the caller's scope. */
export function offeredAgent(
  agents: AgentRegistry,
  patterns: readonly string[],
  caller: McpCaller,
  name: string,
): DeployedAgent | undefined {
  const a = agents.get(name);
  return a && agentVisible(patterns, caller, a.definition.name as string) ? a : undefined;
}

/** Every agent a caller sees, in name order. */
export function visibleAgents(agents: AgentRegistry, patterns: readonly string[], caller: McpCaller): DeployedAgent[] {
  return agents.list().agents.filter((a) => agentVisible(patterns, caller, a.definition.name as string));
}

export function encodeCursor(offset: number): string {
  return Buffer.from(String(offset)).toString('base64url');
}

/** A cursor this server did not hand out is the caller's mistake: JSON-RPC -32602. */
export function decodeCursor(cursor: string | undefined): number {
  if (cursor === undefined) return 0;
  const n = Number(Buffer.from(cursor, 'base64url').toString());
  if (!Number.isSafeInteger(n) || n < 0)
    throw rpcError(
      ErrorCode.InvalidParams,
      `invalid cursor "${cursor.slice(0, 40)}": pass the nextCursor of the previous page, or none for the first page`,
    );
  return n;
}
