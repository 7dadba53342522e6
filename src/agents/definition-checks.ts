import type { SourceIssue } from '../shared/issues.js';
import type { AgentDefinition, AgentFormat } from './definition.js';
import type { ParseResult } from './parse.js';
import { AgentParser, type ParseStats } from './parse-pool.js';

/** A check run after the parse; an issue is a warning unless its `severity` says error (the deploy is then refused). */
export type AgentCheck = (
  def: AgentDefinition,
) => { severity?: 'error' | 'warning'; code: string; field: string; message: string; suggestion?: string }[];

/** Where a definition comes from: an agents_dir file, or a body deployed through the API. */
export type AgentSource = 'file' | 'api';

/**
 * Resolves what a definition names outside its text — a `[wasm]` module — and records it in the
 * definition (its path and digest), so the version holds the module's content. Its issues are
 * errors unless they say otherwise.
 */
export type AgentResolver = (
  def: AgentDefinition,
  file: string,
  origin: AgentSource,
) => { severity?: 'error' | 'warning'; code: string; field: string; message: string; suggestion?: string }[];

/** The warning codes of the server-side checks (logged at warn level when a file loads). */
export const DEPLOY_CHECK_CODES: ReadonlySet<string> = new Set([
  'model_unresolved',
  'provider_unresolved',
  'tool_unresolved',
  'tool_not_granted',
]);

export interface AgentChecksOptions {
  /** A warning when the agent's model cannot be served as written (see src/execution/deps.ts modelCheck). */
  checkModel?: ((llm: { provider?: string; model?: string }) => string | undefined) | undefined;
  /** Further checks (providers and tools the server cannot resolve); more join once the server's parts are up (`add`). */
  checks?: AgentCheck[] | undefined;
  /** Bodies and files at least this large are parsed on a worker thread (parse-pool.ts; default 64 KiB). */
  offThreadParseBytes?: number | undefined;
  /** Resolves a `[wasm]` module (src/execution/wasm-agent.ts); absent: such agents are refused. */
  resolveModule?: AgentResolver | undefined;
}

/**
 * Parsing and the server-side checks every definition goes through, deployed or read from a file:
 * one place, so an API deploy and an agents_dir file of the same text get the same verdict.
 */
export class AgentChecks {
  readonly #checkModel: AgentChecksOptions['checkModel'];
  readonly #checks: AgentCheck[];
  readonly #parser: AgentParser;
  readonly #resolveModule: AgentResolver | undefined;

  constructor(opts: AgentChecksOptions = {}) {
    this.#checkModel = opts.checkModel;
    this.#resolveModule = opts.resolveModule;
    this.#checks = [...(opts.checks ?? [])];
    this.#parser = new AgentParser(
      opts.offThreadParseBytes !== undefined ? { offThreadBytes: opts.offThreadParseBytes } : {},
    );
  }

  /** Parses and checks a body; a large one on the worker thread, so the event loop stays free. */
  async validateAsync(
    body: string | Uint8Array,
    file: string,
    format?: AgentFormat,
    origin: AgentSource = 'api',
  ): Promise<ParseResult> {
    return this.checked(await this.#parser.parse(body, { file, ...(format && { format }) }), file, origin);
  }

  /** Adds the deploy-time warnings the parser cannot know (they need the server's configuration). */
  checked(result: ParseResult, file: string, origin: AgentSource = 'api'): ParseResult {
    if (!result.ok) return result;
    const def = result.definition;
    const added: SourceIssue[] = [];
    if (def.wasm !== undefined) {
      const issues = this.#resolveModule
        ? this.#resolveModule(def, file, origin)
        : [
            {
              code: 'wasm_not_supported',
              field: 'wasm.module',
              message: 'this server does not run WebAssembly agents',
              suggestion: 'remove [wasm] and give the agent a system_prompt',
            },
          ];
      for (const i of issues) added.push({ ...i, severity: i.severity ?? 'error', file });
    }
    const message = this.#checkModel?.(def.llm);
    if (message !== undefined) {
      const field = result.format === 'markdown' && def.metadata.claude_model !== undefined ? 'model' : 'llm.model';
      const suggestion = `e.g. in caxton.toml:\n[llm.model_aliases]\n${def.llm.model ?? 'sonnet'} = "gpt-4o"`;
      added.push({ severity: 'warning', code: 'model_unresolved', file, field, message, suggestion });
    }
    for (const check of this.#checks)
      for (const w of check(def)) added.push({ ...w, severity: w.severity ?? 'warning', file });
    const errors = added.filter((i) => i.severity === 'error');
    const warnings = [...result.warnings, ...added.filter((i) => i.severity !== 'error')];
    if (errors.length > 0) return { ok: false, format: result.format, errors, warnings };
    return added.length === 0 ? result : { ...result, warnings };
  }

  /** Adds a check (the tool check, once tool servers and MCP servers are up). */
  add(check: AgentCheck): void {
    this.#checks.push(check);
  }

  /** The server-side checks' issues for a deployed agent (the start-up log, once every check is in; `agent show`). */
  deployed(def: AgentDefinition): ReturnType<AgentCheck> {
    return this.#checks.flatMap((c) => c(def));
  }

  /** Parses on the worker thread when the body is large (a file changed after the start). */
  parse(bytes: Uint8Array, file: string): Promise<ParseResult> {
    return this.#parser.parse(bytes, { file });
  }

  stats(): ParseStats {
    return this.#parser.stats();
  }

  close(): Promise<void> {
    return this.#parser.close();
  }
}
