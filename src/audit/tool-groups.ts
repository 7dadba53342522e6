/**
 * The server a tool call is filed under in the tool audit. Every path that records a call without
 * the tool recording it itself (an agent's call through the host registry, a call the registry
 * refuses, a direct call from the API, the console or the CLI) asks here, so a tool's calls are
 * found under one name whoever made them: the name the catalogue lists the tool's source under.
 */

/** The pseudo-server of the executor's built-in tools (calculator, current_time, llm.chat). */
export const BUILTIN_GROUP = 'builtin';
/** The pseudo-server of the host's own single-name tools (send_message, the memory tools). */
export const HOST_GROUP = 'host';

/**
 * `builtin`: `tool` is one of the executor's built-in tools. Otherwise a `SERVER.tool` name is filed
 * under SERVER (a tool server, an MCP server, a host tool group such as workspace), and a single
 * name under the host group.
 */
export function auditServerOf(tool: string, builtin: boolean): string {
  if (builtin) return BUILTIN_GROUP;
  const dot = tool.indexOf('.');
  return dot > 0 ? tool.slice(0, dot) : HOST_GROUP;
}
