/**
 * `caxton agent validate`'s checks beyond the parse, made without a server as the server makes
 * them at deploy: the tools an agent names, and with a caxton.toml its provider and model. Tool
 * names are checked against the built-in tools,
 * the host tools every server offers, the built-in WebAssembly tool servers' tools (their
 * manifests in tools/builtin/), and the servers a caxton.toml names — `[mcp_servers.NAME]` and
 * `[tools.NAME]` grants of deployed tool servers — whose tools are only known once they run, so
 * any tool of theirs resolves.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parse } from 'smol-toml';
import type { AgentDefinition } from '../agents/index.js';
import { loadServerConfig, serverConfigSchema, type ServerConfig } from '../config/index.js';
import {
  llmSetup,
  modelCheck,
  providerCheck,
  ungrantedTools,
  unresolvedTools,
  type ToolCatalogueNames,
} from '../execution/index.js';
import type { SourceIssue } from '../shared/issues.js';
import { MEMORY_TOOL_NAMES } from '../memory/tools.js';
import { calculatorTool, currentTimeTool } from '../tools/index.js';
import { SqliteTeamStore, TeamBoard, teamTools, todoTools } from '../tools/todo/index.js';
import { DEFAULT_BUILTIN_DIR } from '../tools/servers/manager.js';
import { webTools } from '../tools/web/index.js';
import { workspaceTools } from '../tools/workspace/index.js';

/** The host tools every server offers besides memory's: messaging, and the toolkit's tools as the server builds them. */
function hostToolNames(config: Pick<ServerConfig, 'workspace' | 'web'>): string[] {
  const toolkit = [
    ...workspaceTools(config.workspace, undefined),
    ...webTools(config.web, () => [], undefined),
    ...todoTools(undefined),
    ...teamTools(new TeamBoard(SqliteTeamStore.inMemory()), undefined),
  ];
  return ['send_message', ...toolkit.map((t) => t.name)];
}

/** `SERVER.tool` for every tool of the built-in tool server packages (those `[tools.NAME] enabled = false` turns off left out). */
function builtinServerTools(dir: string, config: ServerConfig | undefined): { servers: string[]; tools: string[] } {
  const servers: string[] = [];
  const tools: string[] = [];
  if (!existsSync(dir)) return { servers, tools };
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const manifest = join(dir, entry.name, 'caxton-tool.toml');
    if (!entry.isDirectory() || !existsSync(manifest)) continue;
    let doc: { name?: unknown; tools?: { name?: unknown }[] };
    try {
      doc = parse(readFileSync(manifest, 'utf8')) as typeof doc;
    } catch {
      continue;
    }
    if (typeof doc.name !== 'string' || config?.tools[doc.name]?.enabled === false) continue;
    servers.push(doc.name);
    for (const t of doc.tools ?? []) if (typeof t.name === 'string') tools.push(`${doc.name}.${t.name}`);
  }
  return { servers, tools };
}

export function offlineToolNames(
  config: ServerConfig | undefined,
  builtinDir = DEFAULT_BUILTIN_DIR,
): ToolCatalogueNames {
  const wasm = builtinServerTools(builtinDir, config);
  const granted = Object.keys(config?.tools ?? {}).filter((name) => name !== 'limits' && !wasm.servers.includes(name));
  return {
    tools: [
      calculatorTool.name,
      currentTimeTool.name,
      'llm.chat',
      ...hostToolNames(config ?? serverConfigSchema.parse({})),
      ...MEMORY_TOOL_NAMES,
      ...wasm.tools,
    ],
    mcpServers: [...Object.keys(config?.mcp_servers ?? {}), ...granted],
  };
}

/**
 * The caxton.toml that validating `files` uses: `--config`, else $CAXTON_CONFIG, else
 * ./caxton.toml, else one beside the first file's folder (a project's agents/ sits next to it).
 */
export function findProjectConfig(
  files: readonly string[],
  given: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  cwd = process.cwd(),
): string | undefined {
  if (given !== undefined) return given;
  if (env.CAXTON_CONFIG) return env.CAXTON_CONFIG;
  const candidates = [
    resolve(cwd, 'caxton.toml'),
    ...files
      .slice(0, 1)
      .flatMap((f) => [
        join(dirname(resolve(cwd, f)), 'caxton.toml'),
        join(dirname(dirname(resolve(cwd, f))), 'caxton.toml'),
      ]),
  ];
  return candidates.find((c) => existsSync(c));
}

export interface OfflineChecker {
  /** The caxton.toml the checks used, if any. */
  configFile: string | undefined;
  check(def: AgentDefinition, file: string): SourceIssue[];
}

/**
 * The checks for one run of validate. A tool that resolves to nothing is an error, except in a
 * Claude Code file (tools given in Claude's form), which Claude Code loads with it ignored: a warning.
 */
export function offlineChecker(configFile: string | undefined): OfflineChecker {
  const config =
    configFile === undefined
      ? undefined
      : loadServerConfig({ file: configFile, env: process.env, cwd: process.cwd(), flags: {} });
  const names = offlineToolNames(config);
  const setup = config && llmSetup(config);
  const models = setup && modelCheck(setup);
  const providers = setup && providerCheck(setup);
  return {
    configFile,
    check(def, file) {
      const out: SourceIssue[] = unresolvedTools(
        def.tools,
        names,
        def.metadata.claude_tools !== undefined ? 'warning' : 'error',
      ).map((i) => ({ ...i, severity: i.severity ?? 'warning', file }));
      // What caxton.toml grants is known only with one: without it every grant would look missing.
      if (config) for (const w of ungrantedTools(def.tools, config)) out.push({ ...w, severity: 'warning', file });
      for (const w of providers?.(def.llm) ?? []) out.push({ ...w, severity: 'warning', file });
      const model = models?.(def.llm);
      if (model !== undefined)
        out.push({
          severity: 'warning',
          code: 'model_unresolved',
          file,
          field: def.metadata.claude_model !== undefined ? 'model' : 'llm.model',
          message: model,
        });
      return out;
    },
  };
}
