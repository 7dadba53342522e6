import type { JsonSchema } from '../llm/types.js';

/** What a tool knows about the call it serves. */
export interface ToolContext {
  agent: string;
  execution_id: string;
  conversation_id?: string;
  /**
   * The agents whose executions led to this one, oldest first (not including `agent`); the
   * messaging layer uses it to detect loops. Absent for a request that came from outside.
   */
  chain?: string[];
  /** W3C trace context of the request (`traceparent` header value), to continue its trace. */
  traceparent?: string;
  /**
   * The id of the principal this call acts for (Principal.id): the authenticated caller whose
   * request led to it, or the principal a message being handled acts for. Recorded in the tool
   * audit; messages sent by the call carry it as `on_behalf_of`.
   */
  principal?: string;
  /**
   * The ACL sender of messages sent by the call when it is not an agent's (an MCP client's call:
   * its principal, Principal.id); absent: `agent`.
   */
  sender?: string;
  /**
   * The memory scopes that caller's key allows (Principal.scope.memory); absent: any. The memory
   * tools refuse every other scope, as the REST memory routes do.
   */
  memory_scopes?: readonly string[];
  /**
   * The agents the caller's `send_message` may address, by name (its definition's
   * `messaging.send_to`, from Claude Code's `Agent(a, b)`); absent: any agent or capability.
   */
  send_to?: readonly string[];
  /** Absolute time (ms since epoch) by which the call must finish. */
  deadline: number;
  signal: AbortSignal;
}

export interface ToolResult {
  /** Text fed back to the model. */
  content: string;
  is_error?: boolean;
  /** The call was refused, not run: the tool is not in the agent's list, or caxton.toml does not grant what it needs. */
  refused?: boolean;
  /** Files in the workspace the call created or changed (paths below its root), when the tool cannot say so by its arguments (workspace.bash). */
  files?: string[];
  /** The call outlived its deadline: the registry stopped waiting for it (the tool may still end it later). */
  timed_out?: boolean;
}

/** A result's outcome as the audit log and the direct-call API name it, when the tool recorded none itself. */
export const resultOutcome = (r: ToolResult): 'ok' | 'error' | 'timeout' =>
  r.timed_out === true ? 'timeout' : r.is_error === true ? 'error' : 'ok';

/**
 * The interface every tool implements: built-ins now, sandboxed WASM tool servers and mounted MCP
 * servers later. Names are what agents list in `tools` (`calculator`, `server.tool`).
 */
export interface Tool {
  readonly name: string;
  readonly description: string;
  readonly input_schema: JsonSchema;
  /**
   * The tool records each of its calls in the tool audit itself (tool servers, MCP tools, the
   * workspace, web and todo groups); the registry records the calls of every other tool.
   */
  readonly audits?: boolean;
  /**
   * Running it twice with the same arguments has the effect of running it once (a read, a pure
   * computation). A durable run that was interrupted while such a call ran runs it again; any
   * other interrupted call is not repeated, and the model is told its outcome is unknown.
   */
  readonly idempotent?: boolean;
  invoke(args: Record<string, unknown>, ctx: ToolContext): Promise<ToolResult>;
}
