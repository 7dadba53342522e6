/**
 * Deploy-time checks of what an agent names that only the server's configuration can resolve
 * (issue 15): its `[llm] provider` and fallbacks, and its tools. Each returns warnings, never
 * errors — the agent deploys, and the operator hears at once what would fail at run time (a
 * missing provider answers configuration_error then; a missing tool is never offered to the model).
 */
import { closest } from '../shared/suggest.js';
import type { ToolRegistry } from '../tools/index.js';
import type { LlmSetup } from './deps.js';

/** A deploy warning (a SourceIssue with severity `warning`, without the file). */
export interface AgentCheckWarning {
  code: 'provider_unresolved' | 'tool_unresolved';
  field: string;
  message: string;
  suggestion: string;
}

/** Warns for an `llm.provider` or `llm.fallbacks` entry no `[llm.providers.NAME]` defines. */
export function providerCheck(setup: LlmSetup): (llm: { provider?: string; fallbacks?: readonly string[] }) => AgentCheckWarning[] {
  const names = Object.keys(setup.providers);
  const one = (name: string, field: string): AgentCheckWarning[] => {
    if (Object.hasOwn(setup.providers, name)) return [];
    const guess = closest(name, names);
    return [
      {
        code: 'provider_unresolved',
        field,
        message: `${field} names the LLM provider "${name}", which caxton.toml does not configure${guess ? ` (did you mean "${guess}"?)` : ''}; ${names.length > 0 ? `configured providers: ${names.join(', ')}` : 'no providers are configured'}. Invoking the agent fails with configuration_error until this is fixed`,
        suggestion: `add [llm.providers.${name}] to caxton.toml, or set ${field} to ${guess ? `"${guess}"` : 'a configured provider'}`,
      },
    ];
  };
  return (llm) => {
    // With no provider at all nothing can run, and the executor says so (as for model_unresolved).
    if (names.length === 0) return [];
    return [...(llm.provider !== undefined ? one(llm.provider, 'llm.provider') : []), ...(llm.fallbacks ?? []).flatMap((f, i) => one(f, `llm.fallbacks.${i}`))];
  };
}

/**
 * Warns for a `tools` entry the server cannot resolve: not a built-in, not a registered host tool
 * (send_message, memory tools, WebAssembly tool servers' `SERVER.tool`, connected MCP servers'
 * `NAME.tool`). A `NAME.tool` or `NAME.*` of a configured MCP server that has not connected yet
 * is not warned about: its tools arrive when it connects. Patterns other than `NAME.*` are left
 * alone (the allowlist only understands that one).
 */
export function toolCheck(opts: { builtins: ToolRegistry; host: ToolRegistry; mcpServers: () => readonly string[] }): (tools: readonly string[]) => AgentCheckWarning[] {
  return (tools) => {
    const known = [...opts.builtins.list(), ...opts.host.list()].map((t) => t.name);
    const mcp = new Set(opts.mcpServers());
    const out: AgentCheckWarning[] = [];
    tools.forEach((entry, i) => {
      const dot = entry.indexOf('.');
      const prefix = dot > 0 ? entry.slice(0, dot) : undefined;
      const serverTools = prefix !== undefined ? known.filter((n) => n.startsWith(`${prefix}.`)) : [];
      if (entry.endsWith('.*')) {
        if (serverTools.length > 0 || (prefix !== undefined && mcp.has(prefix))) return;
      } else if (entry.includes('*')) return;
      else if (known.includes(entry) || (prefix !== undefined && mcp.has(prefix) && serverTools.length === 0)) return;
      // A bare server name allows nothing: the allowlist wants `SERVER.*` (or `SERVER.tool`).
      const guess = known.some((n) => n.startsWith(`${entry}.`)) ? `${entry}.*` : closest(entry, known);
      out.push({
        code: 'tool_unresolved',
        field: `tools.${i}`,
        message: `the tool "${entry}" is not offered by this server (not a built-in, host tool, WebAssembly tool server or mounted MCP server tool)${guess ? `; did you mean "${guess}"?` : ''}. The agent runs without it`,
        suggestion:
          prefix !== undefined
            ? `deploy the tool server "${prefix}", mount it with [mcp_servers.${prefix}] in caxton.toml, or fix the name`
            : 'fix the name (GET /api/v1/tools lists the tools), or remove it',
      });
    });
    return out;
  };
}
