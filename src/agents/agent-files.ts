import type { SourceIssue } from '../shared/issues.js';
import type { AgentChecks } from './definition-checks.js';
import { agentKey } from './definition.js';
import { parseAgent, type ParseResult } from './parse.js';
import type { AgentRegistry } from './agent-registry.js';
import { definitionHash, type AgentVersionStore } from './versions/index.js';

/** A file in agents_dir and what became of it (an invalid file's last good version keeps running). */
export interface FileStatus {
  path: string;
  state: 'loaded' | 'invalid' | 'ignored';
  agent?: string;
  errors?: SourceIssue[];
  updated_at: string;
}

/**
 * The agents defined by files in agents_dir: each file's status, the agent it provides, and a
 * version for each content a file takes. A file is its agent's source of truth: the API neither
 * changes nor removes a file agent (the deployer refuses, naming the file).
 */
export class AgentFiles {
  readonly #registry: AgentRegistry;
  readonly #checks: AgentChecks;
  readonly #versions: AgentVersionStore | undefined;
  readonly #files = new Map<string, FileStatus>();
  /** File path → agent key it provides. */
  readonly #fileAgents = new Map<string, string>();

  constructor(registry: AgentRegistry, checks: AgentChecks, versions: AgentVersionStore | undefined) {
    this.#registry = registry;
    this.#checks = checks;
    this.#versions = versions;
  }

  /** Applies a new or changed file. An invalid file keeps the last good version running. */
  applyFile(path: string, bytes: Uint8Array): FileStatus {
    let result: ParseResult;
    try {
      result = parseAgent(bytes, { file: path });
    } catch (e) {
      return this.#unparsable(path, e);
    }
    return this.#applyParsed(path, result, bytes);
  }

  /**
   * As `applyFile`, with a large file parsed on the worker thread (the watcher's changes after
   * the start). `stillCurrent` is asked after the parse: when the file changed or went away
   * meanwhile, this result is dropped (undefined) and the newer event applies.
   */
  async applyFileAsync(
    path: string,
    bytes: Uint8Array,
    stillCurrent: () => boolean = () => true,
  ): Promise<FileStatus | undefined> {
    let result: ParseResult;
    try {
      result = await this.#checks.parse(bytes, path);
    } catch (e) {
      return stillCurrent() ? this.#unparsable(path, e) : undefined;
    }
    return stillCurrent() ? this.#applyParsed(path, result, bytes) : undefined;
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

  #applyParsed(path: string, parsed: ParseResult, bytes: Uint8Array): FileStatus {
    const now = new Date().toISOString();
    const result = this.#checks.checked(parsed, path, 'file');
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
        ...(this.#fileAgents.has(path) && { agent: this.#registry.get(this.#fileAgents.get(path)!)?.definition.name }),
      };
      this.#files.set(path, status);
      return status;
    }
    const def = result.definition;
    const key = agentKey(def.name);
    const holder = this.#registry.get(def.name);
    const previousKey = this.#fileAgents.get(path);
    if (holder && !(holder.origin.kind === 'file' && holder.origin.path === path)) {
      const by = holder.origin.kind === 'file' ? `the file ${holder.origin.path}` : 'an agent deployed through the API';
      const status: FileStatus = {
        path,
        state: 'invalid',
        updated_at: now,
        errors: [duplicateNameIssue(path, def.name, by)],
      };
      this.#files.set(path, status);
      return status;
    }
    if (previousKey !== undefined && previousKey !== key) this.#registry.remove(previousKey);
    const hash = definitionHash(def);
    const status: FileStatus = { path, state: 'loaded', agent: def.name, updated_at: now };
    if (result.warnings.length > 0) status.errors = result.warnings;
    // The same file saved again with the same content (a touch, a formatting change): a no-op.
    if (holder && definitionHash(holder.definition) === hash) {
      this.#fileAgents.set(path, key);
      this.#files.set(path, status);
      return status;
    }
    // A version for each content the file takes (not for each start of the server).
    const versions = this.#versions;
    if (versions && versions.latest(def.name)?.hash !== hash)
      versions.append({
        definition: def,
        format: result.format,
        source: Buffer.from(bytes).toString('utf8'),
        how: 'file',
        origin: 'file',
        path,
      });
    this.#registry.upsert({
      definition: def,
      format: result.format,
      origin: { kind: 'file', path },
      revision: (holder?.revision ?? 0) + 1,
      deployed_at: holder?.deployed_at ?? now,
      updated_at: now,
    });
    this.#fileAgents.set(path, key);
    this.#files.set(path, status);
    return status;
  }

  /**
   * Records a file that could not be read or parsed at all (permissions, size, a parser failure):
   * it is reported as invalid, and the last good version of its agent keeps running.
   */
  markInvalid(path: string, issue: SourceIssue): FileStatus {
    const agentKeyOfFile = this.#fileAgents.get(path);
    const agent = agentKeyOfFile !== undefined ? this.#registry.get(agentKeyOfFile)?.definition.name : undefined;
    const status: FileStatus = {
      path,
      state: 'invalid',
      errors: [issue],
      updated_at: new Date().toISOString(),
      ...(agent !== undefined && { agent }),
    };
    this.#files.set(path, status);
    return status;
  }

  removeFile(path: string, opts: { keepStatus?: boolean } = {}): void {
    const key = this.#fileAgents.get(path);
    if (key !== undefined) {
      const agent = this.#registry.get(key);
      if (agent?.origin.kind === 'file' && agent.origin.path === path) {
        this.#registry.remove(key);
        // The file is gone (keepStatus: it is only unloaded): a removed agent's history is bounded.
        if (!opts.keepStatus) this.#versions?.removed(agent.definition.name);
      }
      this.#fileAgents.delete(path);
    }
    if (!opts.keepStatus) this.#files.delete(path);
  }

  /** Whether `path` has a status: loaded, or reported invalid. */
  hasFile(path: string): boolean {
    return this.#files.has(path);
  }

  fileStatuses(): FileStatus[] {
    return [...this.#files.values()].sort((a, b) => (a.path < b.path ? -1 : 1));
  }

  /**
   * Runs the checks added since the files were loaded (the tool check needs the tool servers,
   * which start after the agents): a file agent they find errors in is unloaded and its file
   * marked invalid with those errors, as if the check had run when it loaded.
   */
  recheckFiles(): FileStatus[] {
    const out: FileStatus[] = [];
    for (const [path, key] of [...this.#fileAgents]) {
      const agent = this.#registry.get(key);
      if (!agent) continue;
      const errors = this.#checks.deployed(agent.definition).filter((i) => i.severity === 'error');
      if (errors.length === 0) continue;
      // Unloaded, not removed: the file is still there, so its history stays with the live agents'.
      this.removeFile(path, { keepStatus: true });
      const status: FileStatus = {
        path,
        state: 'invalid',
        agent: agent.definition.name,
        errors: errors.map((e) => ({ ...e, severity: 'error' as const, file: path })),
        updated_at: new Date().toISOString(),
      };
      this.#files.set(path, status);
      out.push(status);
    }
    return out;
  }
}

/**
 * A file whose agent's name another agent holds (`by`: "the file PATH" or "an agent deployed
 * through the API"): the loader's refusal, and `caxton agent validate`'s over the files it is given.
 */
export function duplicateNameIssue(path: string, name: string, by: string): SourceIssue {
  return {
    severity: 'error',
    code: 'duplicate_name',
    file: path,
    field: 'name',
    message: `agent name "${name}" is already used by ${by}`,
    suggestion: 'give this agent a different name',
  };
}
