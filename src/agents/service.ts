import { CaxtonError } from '../shared/errors.js';
import type { SourceIssue } from '../shared/issues.js';
import { agentKey, type AgentDefinition, type AgentFormat } from './definition.js';
import { parseAgent, type ParseResult } from './parse.js';
import { AgentParser, type ParseStats } from './parse-pool.js';
import type { AgentRegistry, DeployedAgent } from './registry.js';
import type { AgentStore } from './store.js';

export interface DeployInput {
  body: string | Uint8Array;
  format?: AgentFormat;
  /** Shown in messages; defaults to `<request body>`. */
  file?: string;
}

export interface DeployOutcome {
  agent: DeployedAgent;
  warnings: SourceIssue[];
  created: boolean;
}

/** A file in agents_dir whose current content does not load (the last good version keeps running). */
/** Checks the service runs on every valid definition, deploy and file alike (wired by the server). */
export interface AgentServiceOptions {
  /** A warning when the agent's model cannot be served as written (see src/execution/deps.ts modelCheck). */
  checkModel?: (llm: { provider?: string; model?: string }) => string | undefined;
  /**
   * Further deploy-time checks (issue 15: providers and tools the server cannot resolve), each
   * returning warnings. More can be added once the server's parts are up (`addCheck`).
   */
  checks?: AgentCheck[];
  /** Bodies and files at least this large are parsed on a worker thread (parse-pool.ts; default 64 KiB). */
  offThreadParseBytes?: number;
}

/** A deploy-time check of a valid definition against the server's configuration: its warnings. */
export type AgentCheck = (def: AgentDefinition) => { code: string; field: string; message: string; suggestion?: string }[];

/** The warning codes of the server-side checks (logged at warn level when a file loads). */
export const DEPLOY_CHECK_CODES: ReadonlySet<string> = new Set(['model_unresolved', 'provider_unresolved', 'tool_unresolved']);

export interface FileStatus {
  path: string;
  state: 'loaded' | 'invalid' | 'ignored';
  agent?: string;
  errors?: SourceIssue[];
  updated_at: string;
}

function invalid(result: Extract<ParseResult, { ok: false }>): CaxtonError {
  const first = result.errors[0];
  const where = first ? `${first.file ?? ''}${first.line ? `:${first.line}:${first.column ?? 1}` : ''}` : '';
  return new CaxtonError(
    'invalid_agent',
    `agent definition is invalid (${result.errors.length} error${result.errors.length === 1 ? '' : 's'}); first: ${where ? `${where} ` : ''}${first?.message ?? ''}`,
    { errors: result.errors, warnings: result.warnings },
  );
}

/**
 * Deploy, update and remove agents, whichever way they arrive (REST API or agents_dir), keeping
 * the registry and the store consistent: validation happens first, storage second, the
 * registry last — so a failure never leaves a half-deployed agent.
 */
export class AgentService {
  readonly registry: AgentRegistry;
  readonly #store: AgentStore;
  readonly #files = new Map<string, FileStatus>();
  /** File path → agent key it provides. */
  readonly #fileAgents = new Map<string, string>();

  readonly #options: AgentServiceOptions;
  readonly #parser: AgentParser;
  readonly #checks: AgentCheck[];

  constructor(registry: AgentRegistry, store: AgentStore, options: AgentServiceOptions = {}) {
    this.registry = registry;
    this.#store = store;
    this.#options = options;
    this.#checks = [...(options.checks ?? [])];
    this.#parser = new AgentParser(options.offThreadParseBytes !== undefined ? { offThreadBytes: options.offThreadParseBytes } : {});
  }

  /** Where bodies were parsed (in-thread or on the worker): for tests and diagnostics. */
  parseStats(): ParseStats {
    return this.#parser.stats();
  }

  /** Ends the parser's worker thread (with the server). */
  close(): Promise<void> {
    return this.#parser.close();
  }

  /** Loads every API-deployed agent persisted in the store. */
  loadPersisted(): number {
    let n = 0;
    for (const s of this.#store.loadAll()) {
      this.registry.upsert({ definition: s.definition, format: s.format, origin: { kind: 'api' }, revision: s.revision, deployed_at: s.deployed_at, updated_at: s.updated_at });
      n++;
    }
    return n;
  }

  /** Parses and checks a definition on this thread (the CLI, tests, small bodies). */
  validate(input: DeployInput): ParseResult {
    const file = input.file ?? '<request body>';
    return this.#checked(parseAgent(input.body, { file, ...(input.format && { format: input.format }) }), file);
  }

  /**
   * As `validate`, with a large body parsed on the parser's worker thread so the event loop stays
   * free (the API's deploy, validate and update use this).
   */
  async validateAsync(input: DeployInput): Promise<ParseResult> {
    const file = input.file ?? '<request body>';
    return this.#checked(await this.#parser.parse(input.body, { file, ...(input.format && { format: input.format }) }), file);
  }

  /** `deploy` with the body parsed by `validateAsync`; every check after the parse runs at once, as in `deploy`. */
  async deployAsync(input: DeployInput, mode: 'create' | 'update', expectName?: string): Promise<DeployOutcome> {
    const result = await this.validateAsync(input);
    return this.deploy(input, mode, expectName, result);
  }

  /** Adds the deploy-time warnings the parser cannot know (they need the server's configuration). */
  #checked(result: ParseResult, file: string): ParseResult {
    if (!result.ok) return result;
    const def = result.definition;
    const added: SourceIssue[] = [];
    const message = this.#options.checkModel?.(def.llm);
    if (message !== undefined) {
      const field = result.format === 'markdown' && def.metadata.claude_model !== undefined ? 'model' : 'llm.model';
      const suggestion = `e.g. in caxton.toml:\n[llm.model_aliases]\n${def.llm.model ?? 'sonnet'} = "gpt-4o"`;
      added.push({ severity: 'warning', code: 'model_unresolved', file, field, message, suggestion });
    }
    for (const check of this.#checks) for (const w of check(def)) added.push({ severity: 'warning', file, ...w });
    return added.length === 0 ? result : { ...result, warnings: [...result.warnings, ...added] };
  }

  /** Adds a deploy-time check (the tool check, once tool servers and MCP servers are up). */
  addCheck(check: AgentCheck): void {
    this.#checks.push(check);
  }

  /** The server-side checks' warnings for a deployed agent (the start-up log, once every check is in). */
  checkDeployed(def: AgentDefinition): { code: string; field: string; message: string }[] {
    return this.#checks.flatMap((c) => c(def));
  }

  /** Deploys a new agent (mode `create`) or replaces an API-deployed one (mode `update`). */
  deploy(input: DeployInput, mode: 'create' | 'update', expectName?: string, validated?: ParseResult): DeployOutcome {
    const result = validated ?? this.validate(input);
    if (!result.ok) throw invalid(result);
    const def = result.definition;
    if (expectName !== undefined && agentKey(expectName) !== agentKey(def.name)) {
      throw new CaxtonError('invalid_request', `the body defines agent "${def.name}" but the URL names "${expectName}"`, { field: 'name' });
    }
    const existing = this.registry.get(def.name);
    if (existing?.origin.kind === 'file') {
      throw new CaxtonError('agent_managed_by_file', `agent "${existing.definition.name}" is defined by the file ${existing.origin.path}; edit or delete that file instead`, {
        path: existing.origin.path,
      });
    }
    if (mode === 'create' && existing) {
      throw new CaxtonError('agent_exists', `an agent named "${existing.definition.name}" is already deployed (names are unique regardless of case)`, {
        name: existing.definition.name,
        hint: 'use PUT /api/v1/agents/{name} to update it',
      });
    }
    if (mode === 'update' && !existing) {
      throw new CaxtonError('agent_not_found', `no agent named "${def.name}" is deployed`, { name: def.name });
    }
    if (existing && existing.definition.name !== def.name) {
      // Names are unique regardless of case: "Foo" would silently replace and rename "foo".
      throw new CaxtonError(
        'invalid_request',
        `the body names the agent "${def.name}" but the deployed agent is spelt "${existing.definition.name}"; names are unique regardless of case, so this would rename it`,
        { field: 'name', name: def.name, deployed: existing.definition.name, hint: `use name "${existing.definition.name}", or DELETE the agent and deploy it again under the new spelling` },
      );
    }
    const now = new Date().toISOString();
    const source = typeof input.body === 'string' ? input.body : Buffer.from(input.body).toString('utf8');
    const agent: DeployedAgent = {
      definition: def,
      format: result.format,
      origin: { kind: 'api' },
      revision: (existing?.revision ?? 0) + 1,
      deployed_at: existing?.deployed_at ?? now,
      updated_at: now,
    };
    this.#store.save({ ...agent, source });
    this.registry.upsert(agent);
    return { agent, warnings: result.warnings, created: !existing };
  }

  remove(name: string): DeployedAgent {
    const existing = this.registry.get(name);
    if (!existing) throw new CaxtonError('agent_not_found', `no agent named "${name}" is deployed`, { name });
    if (existing.origin.kind === 'file') {
      throw new CaxtonError('agent_managed_by_file', `agent "${existing.definition.name}" is defined by the file ${existing.origin.path}; delete that file to remove it`, {
        path: existing.origin.path,
      });
    }
    this.#store.delete(name);
    this.registry.remove(name);
    return existing;
  }

  /** The original text an agent was deployed from (API agents only). */
  source(name: string): string | undefined {
    return this.#store.source(name);
  }

  // -------------------------------------------------------------------------------------------
  // agents_dir

  /** Applies a new or changed file. An invalid file keeps the last good version running. */
  applyFile(path: string, bytes: Uint8Array): FileStatus {
    let result: ParseResult;
    try {
      result = parseAgent(bytes, { file: path });
    } catch (e) {
      return this.#unparsable(path, e);
    }
    return this.#applyParsed(path, result);
  }

  /**
   * As `applyFile`, with a large file parsed on the worker thread (the watcher's changes after
   * the start). `stillCurrent` is asked after the parse: when the file changed or went away
   * meanwhile, this result is dropped (undefined) and the newer event applies.
   */
  async applyFileAsync(path: string, bytes: Uint8Array, stillCurrent: () => boolean = () => true): Promise<FileStatus | undefined> {
    let result: ParseResult;
    try {
      result = await this.#parser.parse(bytes, { file: path });
    } catch (e) {
      return stillCurrent() ? this.#unparsable(path, e) : undefined;
    }
    return stillCurrent() ? this.#applyParsed(path, result) : undefined;
  }

  #unparsable(path: string, e: unknown): FileStatus {
    // The parser bounds what it reads, but one file must never take the watcher (or the start) down.
    return this.markInvalid(path, {
      severity: 'error',
      code: 'unreadable',
      file: path,
      message: `the file could not be parsed: ${e instanceof Error ? e.message : String(e)}`,
      suggestion: 'fix or remove the file',
    });
  }

  #applyParsed(path: string, parsed: ParseResult): FileStatus {
    const now = new Date().toISOString();
    const result = this.#checked(parsed, path);
    if (!result.ok) {
      if (result.format === 'markdown' && result.errors.every((e) => e.code === 'missing_frontmatter')) {
        // A README or notes file among the agents: not an agent, not an error.
        const status: FileStatus = { path, state: 'ignored', updated_at: now };
        this.#files.set(path, status);
        this.removeFile(path, { keepStatus: true });
        return status;
      }
      const status: FileStatus = {
        path,
        state: 'invalid',
        errors: result.errors,
        updated_at: now,
        ...(this.#fileAgents.has(path) && { agent: this.registry.get(this.#fileAgents.get(path)!)?.definition.name }),
      };
      this.#files.set(path, status);
      return status;
    }
    const def = result.definition;
    const key = agentKey(def.name);
    const holder = this.registry.get(def.name);
    const previousKey = this.#fileAgents.get(path);
    if (holder && !(holder.origin.kind === 'file' && holder.origin.path === path)) {
      const by = holder.origin.kind === 'file' ? `the file ${holder.origin.path}` : 'an agent deployed through the API';
      const status: FileStatus = {
        path,
        state: 'invalid',
        updated_at: now,
        errors: [
          { severity: 'error', code: 'duplicate_name', file: path, field: 'name', message: `agent name "${def.name}" is already used by ${by}`, suggestion: 'give this agent a different name' },
        ],
      };
      this.#files.set(path, status);
      return status;
    }
    if (previousKey !== undefined && previousKey !== key) this.registry.remove(previousKey);
    this.registry.upsert({
      definition: def,
      format: result.format,
      origin: { kind: 'file', path },
      revision: (holder?.revision ?? 0) + 1,
      deployed_at: holder?.deployed_at ?? now,
      updated_at: now,
    });
    this.#fileAgents.set(path, key);
    const status: FileStatus = { path, state: 'loaded', agent: def.name, updated_at: now };
    if (result.warnings.length > 0) status.errors = result.warnings;
    this.#files.set(path, status);
    return status;
  }

  /**
   * Records a file that could not be read or parsed at all (permissions, size, a parser failure):
   * it is reported as invalid, and the last good version of its agent keeps running.
   */
  markInvalid(path: string, issue: SourceIssue): FileStatus {
    const agentKeyOfFile = this.#fileAgents.get(path);
    const agent = agentKeyOfFile !== undefined ? this.registry.get(agentKeyOfFile)?.definition.name : undefined;
    const status: FileStatus = { path, state: 'invalid', errors: [issue], updated_at: new Date().toISOString(), ...(agent !== undefined && { agent }) };
    this.#files.set(path, status);
    return status;
  }

  removeFile(path: string, opts: { keepStatus?: boolean } = {}): void {
    const key = this.#fileAgents.get(path);
    if (key !== undefined) {
      const agent = this.registry.get(key);
      if (agent?.origin.kind === 'file' && agent.origin.path === path) this.registry.remove(key);
      this.#fileAgents.delete(path);
    }
    if (!opts.keepStatus) this.#files.delete(path);
  }

  fileStatuses(): FileStatus[] {
    return [...this.#files.values()].sort((a, b) => (a.path < b.path ? -1 : 1));
  }
}
