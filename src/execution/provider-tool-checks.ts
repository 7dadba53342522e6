/**
 * Deploy-time checks of what an agent names that only the server's configuration can resolve:
 * its `[llm] provider` and fallbacks, and its tools. A provider that is not configured is a
 * warning (the agent deploys; invoking it answers configuration_error until the operator adds the
 * provider). A tool that resolves to nothing is an error for Caxton's own formats and a warning for
 * a Claude Code file, which Claude Code loads with the tools it does not know ignored.
 */
import { closest } from '../shared/suggest.js';
import { CLAUDE_TOOL_MAP } from '../agents/index.js';
import { toolkitGrantMissing, type ToolkitGrantConfig, type ToolRegistry } from '../tools/index.js';
import type { LlmSetup } from './deps.js';

/** A deploy-time issue (a SourceIssue without the file); a warning unless `severity` says error. */
export interface AgentCheckWarning {
  severity?: 'error' | 'warning';
  code: 'provider_unresolved' | 'tool_unresolved' | 'tool_not_granted';
  field: string;
  message: string;
  suggestion: string;
}

/** Warns for an `llm.provider` or `llm.fallbacks` entry no `[llm.providers.NAME]` defines. */
export function providerCheck(
  setup: LlmSetup,
): (llm: { provider?: string; fallbacks?: readonly string[] }) => AgentCheckWarning[] {
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
    return [
      ...(llm.provider !== undefined ? one(llm.provider, 'llm.provider') : []),
      ...(llm.fallbacks ?? []).flatMap((f, i) => one(f, `llm.fallbacks.${i}`)),
    ];
  };
}

/**
 * The `tools` entries the server cannot resolve: not a built-in, not a registered host tool
 * (send_message, the memory, workspace and web tools, WebAssembly tool servers' `SERVER.tool`,
 * connected MCP servers' `NAME.tool`), and not a server: `SERVER` and `SERVER.*` name every tool of
 * one. A configured MCP server that has not connected yet resolves whatever tool is named (its
 * tools arrive when it connects). Patterns other than `NAME.*` are left alone.
 */
export function toolCheck(opts: {
  builtins: ToolRegistry;
  host: ToolRegistry;
  mcpServers: () => readonly string[];
}): (tools: readonly string[], severity?: 'error' | 'warning') => AgentCheckWarning[] {
  return (tools, severity = 'warning') => {
    const known = [...opts.builtins.list(), ...opts.host.list()].map((t) => t.name);
    return unresolvedTools(tools, { tools: known, mcpServers: opts.mcpServers() }, severity);
  };
}

/** What tool names can resolve to: every tool name offered, and the MCP servers configured (connected or not). */
export interface ToolCatalogueNames {
  tools: readonly string[];
  mcpServers: readonly string[];
}

/** What a tool server or MCP server may be named (src/config/config-schema.ts allows no more). */
const SERVER_NAME = /^[A-Za-z0-9_-]+$/;

const serverOf = (name: string): string | undefined => {
  const dot = name.indexOf('.');
  return dot > 0 ? name.slice(0, dot) : undefined;
};

/** The unresolved entries of `tools` against `names` (the server's live registries, or the CLI's offline catalogue). */
export function unresolvedTools(
  tools: readonly string[],
  names: ToolCatalogueNames,
  severity: 'error' | 'warning',
): AgentCheckWarning[] {
  const known = new Set(names.tools);
  const servers = new Set(names.tools.flatMap((n) => serverOf(n) ?? []));
  const mcp = new Set(names.mcpServers);
  const out: AgentCheckWarning[] = [];
  tools.forEach((entry, i) => {
    const all = entry.endsWith('.*');
    if (entry.includes('*') && !all) return;
    // Claude Code's `mcp__server__tool` names its server between the first two `__`.
    const mcpServer = entry.startsWith('mcp__') ? entry.slice(5).split('__')[0] : undefined;
    const prefix = all ? entry.slice(0, -2) : (serverOf(entry) ?? (mcpServer || entry));
    const wholeServer = all || entry === prefix;
    // A tool of an MCP server not connected yet resolves; a connected one (its tools listed) must offer it.
    if (
      known.has(entry) ||
      (wholeServer && (servers.has(prefix) || mcp.has(prefix))) ||
      (mcp.has(prefix) && !servers.has(prefix))
    )
      return;
    const candidates = [...known, ...servers, ...mcp];
    const guess = closest(entry, candidates) ?? (wholeServer ? undefined : closest(prefix, [...servers, ...mcp]));
    const tail =
      severity === 'error'
        ? 'Fix the name or make the tool available, then deploy again'
        : 'The agent runs without it, as Claude Code ignores tools it does not know';
    out.push({
      severity,
      code: 'tool_unresolved',
      field: `tools.${i}`,
      message: `the tool "${entry}" is not offered by this server (not a built-in, host tool, WebAssembly tool server or mounted MCP server tool)${guess ? `; did you mean "${guess}"?` : ''}. ${tail}`,
      suggestion: servers.has(prefix)
        ? `"${prefix}" offers: ${names.tools.filter((n) => serverOf(n) === prefix).join(', ')}`
        : SERVER_NAME.test(prefix)
          ? `mount an MCP server with [mcp_servers.${prefix}] in caxton.toml, deploy a tool server named "${prefix}", or fix the name (caxton tool list shows every tool)`
          : `no server can be named "${prefix}" (a tool is NAME, SERVER.tool or SERVER.*, with letters, digits, "_" and "-"): fix the name or remove it`,
    });
  });
  return out;
}

/**
 * The `tools` entries this server offers but caxton.toml does not grant (Write without
 * `[workspace] write = true`, Bash without `[workspace.bash]`...): the agent deploys and runs, and
 * each call of such a tool is refused naming the setting, so deploy, validate and `agent show` say
 * so first.
 */
export function ungrantedTools(tools: readonly string[], config: ToolkitGrantConfig): AgentCheckWarning[] {
  const out: AgentCheckWarning[] = [];
  tools.forEach((tool, i) => {
    const missing = toolkitGrantMissing(tool, config);
    if (missing === undefined) return;
    const claude = Object.keys(CLAUDE_TOOL_MAP).find((k) => CLAUDE_TOOL_MAP[k] === tool);
    out.push({
      code: 'tool_not_granted',
      field: `tools.${i}`,
      message: `the tool "${tool}"${claude ? ` (Claude Code's ${claude})` : ''} is listed and offered, but not granted: ${missing.reason}. Each of its calls is refused until caxton.toml sets ${missing.setting}`,
      suggestion: `set ${missing.setting} in caxton.toml, or remove "${claude ?? tool}" from the agent's tools`,
    });
  });
  return out;
}
