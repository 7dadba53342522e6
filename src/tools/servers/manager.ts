/**
 * The tool servers a Caxton server runs: the built-in packages shipped in `tools/builtin/` and the
 * packages deployed through the API (kept in a ToolPackageStorePort: the data dir's SQLite, or a
 * cluster's PostgreSQL; reloaded at start). In a cluster, `refresh`/`refreshAll` bring this node's
 * servers in line with what the shared store holds (src/cluster/tool-sync.ts calls them when
 * another node deploys or removes a package), and `onChange` tells of this node's own deploys. Each server's tools are
 * registered on the host tool registry (`executor.hostTools`) as `SERVER.tool`, exactly like
 * mounted MCP servers, so an agent's `tools` allowlist, the request deadline and the audit log
 * apply the same way. What a server may reach is the intersection of its manifest and the
 * operator's `[tools.NAME]` grants in caxton.toml (see WasmToolServer). What it holds per name
 * (entries, the tools standing in for a server still loading, their views) is in
 * manager-entries.ts. The calls that reach no server are audited by the host registry's hooks
 * (src/audit/tool-calls.ts, installed at start).
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CaxtonError } from '../../shared/errors.js';
import type { SourceIssue } from '../../shared/issues.js';
import { closest } from '../../shared/suggest.js';
import { resultOutcome, type ToolResult } from '../types.js';
import type { ToolAuditRecord, ToolAuditSink } from '../../audit/index.js';
import { registerWaiting, summaryOf, viewOf, type Entry, type StartJob } from './manager-entries.js';
import type { ToolLimitCaps } from './manifest-limits.js';
import { MANIFEST_FILE, parseToolManifestOrThrow, type ToolManifest } from './manifest.js';
import { readPreparedManifests } from './prepared-manifests.js';
import { moduleDigest, type StoredToolPackage, type ToolPackageStorePort } from './package-store.js';
import { ToolPackageStore } from './sqlite-package-store.js';
import type * as ServerModule from './tool-server.js';
import type { ToolServerGrants, WasmToolServer } from './tool-server.js';
import {
  toLimitCaps,
  toServerGrants,
  type DeployResult,
  type RefreshOutcome,
  type ToolCallOptions,
  type ToolCallResult,
  type ToolPackageChange,
  type ToolServerManagerOptions,
  type ToolServerSummary,
  type ToolServerView,
} from './manager-types.js';

export * from './manager-types.js';

/**
 * The tool server module, imported by the first server to load rather than by the server's start:
 * with it comes QuickJS, whose WebAssembly module it loads. Every path that builds a server
 * awaits `loadServerModule()` first.
 */
let serverModule: typeof ServerModule | undefined;
async function loadServerModule(): Promise<typeof ServerModule> {
  if (serverModule) return serverModule;
  const [m, { loadQuickJS }] = await Promise.all([import('./tool-server.js'), import('./js/index.js')]);
  await loadQuickJS();
  return (serverModule = m);
}

/** `tools/builtin/` of this installation (src/tools/servers and dist/tools/servers are both three levels down). */
export const DEFAULT_BUILTIN_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../tools/builtin');

/** Who a call made through the API (not by an agent) is recorded as in the audit log. */
export const API_CALLER = 'api';

const errText = (e: unknown) => (e instanceof Error ? e.message : String(e));

export class ToolServerManager {
  readonly #opts: ToolServerManagerOptions;
  readonly #store: ToolPackageStorePort;
  readonly #entries = new Map<string, Entry>();
  /** Per name, the tail of its chain of changes: deploys, removals and refreshes of one name run one at a time. */
  readonly #chains = new Map<string, Promise<unknown>>();
  readonly #listeners = new Set<(c: ToolPackageChange) => void>();
  readonly #baseDir: string;
  /** Execution ids of API calls in flight → their audit record once written. */
  readonly #watch = new Map<string, ToolAuditRecord | undefined>();
  readonly #sink: ToolAuditSink;
  readonly #caps: ToolLimitCaps;
  #ready: Promise<{ loaded: number; failed: number }> = Promise.resolve({ loaded: 0, failed: 0 });
  #settle: (r: { loaded: number; failed: number }) => void = () => {};
  #jobs: StartJob[] = [];
  #loader: Promise<{ loaded: number; failed: number }> | undefined;
  #closed = false;

  constructor(opts: ToolServerManagerOptions) {
    this.#opts = opts;
    this.#caps = toLimitCaps(opts.caps);
    if (opts.store) this.#store = opts.store;
    else if (opts.db) this.#store = new ToolPackageStore(opts.db);
    else throw new Error('ToolServerManager needs a store or a db');
    this.#baseDir = opts.baseDir ?? process.cwd();
    this.#sink = {
      record: (r) => {
        if (r.execution_id !== undefined && this.#watch.has(r.execution_id)) this.#watch.set(r.execution_id, r);
        opts.audit?.record(r);
      },
    };
  }

  #grants(name: string): ToolServerGrants {
    return toServerGrants(this.#opts.grants?.[name], this.#baseDir);
  }

  #build(
    manifest: ToolManifest,
    wasm: Uint8Array,
    file: string,
    wasmFile: string,
    warnings: SourceIssue[],
  ): WasmToolServer {
    const log = this.#opts.logger;
    if (!serverModule) throw new Error('the tool server module is imported before a server is built');
    return new serverModule.WasmToolServer(
      manifest,
      wasm,
      {
        grants: this.#grants(manifest.name),
        caps: this.#caps,
        audit: this.#sink,
        ...(log && { log: (level, message, server) => log[level]({ tool_server: server }, message) }),
        ...(this.#opts.http && { http: this.#opts.http }),
      },
      file,
      wasmFile,
      warnings,
    );
  }

  /**
   * Loads the built-in packages, then the deployed ones, and resolves when every one has loaded or
   * failed. A package that cannot be loaded is logged and listed as `failed`; it never stops the server.
   */
  async start(): Promise<{ loaded: number; failed: number }> {
    await this.begin();
    return this.loadInBackground();
  }

  /**
   * Starts the servers off the caller's path, part one: reads every manifest (built-in and
   * deployed) and registers each tool at once, waiting for its own server. Resolves once the tools
   * are registered; `loadInBackground` then loads the servers (module compilation,
   * instrumentation, schemas). A call to a tool whose server has not loaded yet loads that server
   * at once and waits for it only.
   */
  async begin(): Promise<void> {
    const jobs: StartJob[] = [];
    const dir = this.#opts.builtinDir === undefined ? DEFAULT_BUILTIN_DIR : this.#opts.builtinDir;
    if (dir !== false && existsSync(dir)) {
      const prepared = readPreparedManifests();
      for (const sub of readdirSync(dir, { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => d.name)
        .sort()) {
        const file = join(dir, sub, MANIFEST_FILE);
        if (!existsSync(file)) continue;
        const job = this.#announceBuiltin(file, prepared);
        if (job) jobs.push(job);
      }
    }
    for (const p of await this.#store.all()) {
      const job = this.#announceStored(p);
      if (job) jobs.push(job);
    }
    this.#jobs = jobs;
    this.#ready = new Promise((r) => (this.#settle = r));
  }

  /** Settles when every server `begin` announced has loaded or failed (with the counts of all servers). */
  get ready(): Promise<{ loaded: number; failed: number }> {
    return this.#ready;
  }

  /**
   * Part two: loads the servers `begin` announced, one per turn of the event loop, each once
   * `quiet` resolves (the HTTP server passes "no request in flight", so a request arriving at
   * start is not kept waiting behind a module's compilation).
   */
  loadInBackground(quiet: () => Promise<void> = () => Promise.resolve()): Promise<{ loaded: number; failed: number }> {
    this.#loader ??= (async () => {
      for (const job of this.#jobs) {
        await new Promise<void>((r) => setImmediate(r));
        if (!job.running) await quiet();
        if (this.#closed) job.done();
        else await this.#run(job);
      }
      this.#jobs = [];
      const all = [...this.#entries.values()];
      const loaded = all.filter((e) => e.server).length;
      if (!this.#closed)
        this.#opts.logger?.info(
          { loaded, failed: all.length - loaded, servers: all.filter((e) => e.server).map((e) => e.name) },
          'tool servers loaded',
        );
      const counts = { loaded, failed: all.length - loaded };
      this.#settle(counts);
      return counts;
    })();
    return this.#loader;
  }

  /** Runs a start job once, after the name's earlier changes; its waiting tools are released when it ends. */
  #run(job: StartJob): Promise<void> {
    job.running ??= this.#serial(job.name, async () => {
      await loadServerModule();
      await job.load();
    })
      .catch((e: unknown) =>
        this.#opts.logger?.error({ tool_server: job.name, err: errText(e) }, 'tool server load failed'),
      )
      .finally(() => job.done());
    return job.running;
  }

  /** A call waits for server `name`: its start job runs now, ahead of the others. */
  #loadNow(name: string): void {
    for (const job of this.#jobs) if (job.name === name && !this.#closed) void this.#run(job);
  }

  /**
   * Registers the tools of a server about to load, each waiting for it (see `registerWaiting`).
   * Returns the function that ends the waiting.
   */
  #wait(entry: Entry, manifest: ToolManifest): () => void {
    const done = registerWaiting(entry, manifest, this.#opts.tools, {
      loadNow: (name) => this.#loadNow(name),
      loaded: (name) => this.#entries.get(name),
    });
    return () => {
      this.#unwait(entry);
      done();
    };
  }

  /** Takes the waiting tools of `entry` off the registry (before its server's own are registered). */
  #unwait(entry: Entry): void {
    const registry = this.#opts.tools;
    for (const t of entry.waiting ?? []) if (registry.get(t.name) === t) registry.unregister(t.name);
    entry.waiting = undefined;
    entry.loading = undefined;
  }

  /** Reads a built-in package's manifest and registers its tools as waiting; undefined when it is skipped. */
  #announceBuiltin(file: string, prepared: ReadonlyMap<string, ToolManifest>): StartJob | undefined {
    const log = this.#opts.logger;
    let manifest: ToolManifest;
    try {
      const bytes = readFileSync(file);
      manifest =
        (prepared.size > 0 ? prepared.get(bytes.toString('utf8')) : undefined) ??
        parseToolManifestOrThrow(bytes, file, { compileSchemas: false }).manifest;
    } catch (e) {
      log?.warn({ file, err: errText(e) }, 'built-in tool server skipped: its manifest is invalid');
      return undefined;
    }
    const name = manifest.name;
    if (this.#opts.grants?.[name]?.enabled === false) {
      log?.info(
        { tool_server: name },
        `built-in tool server "${name}" is disabled in caxton.toml ([tools.${name}] enabled = false)`,
      );
      return undefined;
    }
    const entry: Entry = {
      name,
      origin: 'builtin',
      deployed_at: null,
      digest: null,
      revision: null,
      module_bytes: null,
      path: dirname(file),
      manifest,
    };
    let done: () => void;
    try {
      done = this.#wait(entry, manifest);
    } catch (e) {
      entry.error = errText(e);
      log?.warn({ tool_server: name, err: entry.error }, `built-in tool server "${name}" could not be loaded`);
      this.#entries.set(name, entry);
      return undefined;
    }
    this.#entries.set(name, entry);
    return { name, load: () => this.#loadBuiltin(file, entry), done };
  }

  /** Reads a deployed package's manifest and registers its tools as waiting; undefined when it cannot be. */
  #announceStored(p: StoredToolPackage): StartJob | undefined {
    if (this.#entries.get(p.name)?.origin === 'builtin' || this.#opts.grants?.[p.name]?.enabled === false) {
      // Refused by the full load, which says why.
      return { name: p.name, load: async () => void this.#loadStored(p), done: () => {} };
    }
    let manifest: ToolManifest;
    try {
      ({ manifest } = parseToolManifestOrThrow(p.manifest, `${p.name}/${MANIFEST_FILE}`, { compileSchemas: false }));
      if (manifest.name !== p.name) throw new Error('another name');
    } catch {
      return { name: p.name, load: async () => void this.#loadStored(p), done: () => {} };
    }
    const entry: Entry = {
      name: p.name,
      origin: 'api',
      deployed_at: p.deployed_at,
      digest: p.digest,
      revision: p.revision,
      module_bytes: p.wasm.byteLength,
      path: null,
      manifest,
    };
    let done: () => void;
    try {
      done = this.#wait(entry, manifest);
    } catch {
      return { name: p.name, load: async () => void this.#loadStored(p), done: () => {} };
    }
    this.#entries.set(p.name, entry);
    return {
      name: p.name,
      load: async () => {
        // Its own waiting entry is not an old copy to replace.
        if (this.#entries.get(p.name) === entry) this.#entries.delete(p.name);
        this.#unwait(entry);
        this.#loadStored(p);
      },
      done,
    };
  }

  /**
   * Loads a stored package, replacing this node's copy of the name (if any), through the checks a
   * deploy makes (the manifest, the operator's grants and caps, the module's compilation, the
   * tool names). A package that fails them is listed as `failed` with the reason and logged, never
   * thrown: the store is what every node shares, and one bad row must not stop a node.
   */
  #loadStored(p: StoredToolPackage): boolean {
    const log = this.#opts.logger;
    const registry = this.#opts.tools;
    const entry: Entry = {
      name: p.name,
      origin: 'api',
      deployed_at: p.deployed_at,
      digest: p.digest,
      revision: p.revision,
      module_bytes: p.wasm.byteLength,
      path: null,
    };
    const old = this.#entries.get(p.name);
    if (old?.origin === 'builtin') {
      log?.error(
        { tool_server: p.name },
        `deployed tool server "${p.name}" is shadowed by the built-in of the same name and was not loaded`,
      );
      return false;
    }
    let server: WasmToolServer | undefined;
    try {
      if (this.#opts.grants?.[p.name]?.enabled === false)
        throw new CaxtonError(
          'conflict',
          `tool server "${p.name}" is disabled by [tools.${p.name}] enabled = false in caxton.toml`,
        );
      const { manifest, warnings } = parseToolManifestOrThrow(p.manifest, `${p.name}/${MANIFEST_FILE}`);
      if (manifest.name !== p.name)
        throw new CaxtonError('validation_failed', `the stored manifest names "${manifest.name}", not "${p.name}"`);
      entry.manifest = manifest;
      server = this.#build(manifest, p.wasm, `${p.name}/${MANIFEST_FILE}`, manifest.module, warnings);
      old?.server?.unregister(registry);
      server.register(registry);
      entry.server = server;
    } catch (e) {
      server?.close();
      entry.error = errText(e);
      log?.warn(
        { tool_server: p.name, revision: p.revision, err: entry.error },
        `deployed tool server "${p.name}" could not be loaded; it is listed as failed, without tools`,
      );
    }
    // The old copy is gone either way: the stored package is the one every node should run.
    if (old?.server && entry.server !== old.server) {
      old.server.unregister(registry);
      old.server.close();
    }
    this.#entries.set(p.name, entry);
    return entry.server !== undefined;
  }

  /** Runs `fn` after every earlier change of `name` (deploy, remove, refresh) has finished. */
  #serial<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#chains.get(name) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => {});
    this.#chains.set(name, tail);
    void tail.then(() => {
      if (this.#chains.get(name) === tail) this.#chains.delete(name);
    });
    return run;
  }

  /** Told of each deploy and removal made through this manager (not of refreshes); returns the unsubscribe. */
  onChange(fn: (c: ToolPackageChange) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  #emit(c: ToolPackageChange): void {
    for (const fn of this.#listeners) {
      try {
        fn(c);
      } catch (e) {
        this.#opts.logger?.warn({ tool_server: c.name, err: errText(e) }, 'a tool package change listener failed');
      }
    }
  }

  /**
   * Brings this node's copy of deployed package `name` in line with the store: loads it if the
   * store has another revision than the one running here (through the checks of `#loadStored`),
   * unloads it if the store has none. `known`: the revision a change notice announced; when it is
   * the one running here, nothing is read.
   */
  refresh(name: string, known?: { revision: number }): Promise<RefreshOutcome> {
    return this.#serial(name, async () => {
      const e = this.#entries.get(name);
      if (e?.origin === 'builtin') {
        this.#opts.logger?.warn(
          { tool_server: name },
          `deployed tool server "${name}" (changed on another node) is shadowed here by the built-in of the same name and was not loaded`,
        );
        return 'unchanged';
      }
      if (known && e?.revision === known.revision) return 'unchanged';
      const p = await this.#store.get(name);
      await loadServerModule();
      if (!p) {
        if (!e) return 'unchanged';
        e.server?.unregister(this.#opts.tools);
        e.server?.close();
        this.#entries.delete(name);
        this.#opts.logger?.info({ tool_server: name }, 'tool server removed (by another node)');
        return 'removed';
      }
      if (e?.revision === p.revision) return 'unchanged';
      const ok = this.#loadStored(p);
      if (ok)
        this.#opts.logger?.info(
          { tool_server: name, revision: p.revision, replaced: e !== undefined },
          'tool server loaded (deployed by another node)',
        );
      return ok ? 'loaded' : 'failed';
    });
  }

  /**
   * Compares every deployed package running here with the store's versions (names, digests and
   * revisions: no module bytes) and refreshes the names that differ. Catches up on changes whose
   * notices were missed.
   */
  async refreshAll(): Promise<Record<RefreshOutcome, number>> {
    const out: Record<RefreshOutcome, number> = { loaded: 0, failed: 0, removed: 0, unchanged: 0 };
    const stored = new Map((await this.#store.versions()).map((v) => [v.name, v]));
    const names = new Set<string>();
    for (const v of stored.values()) {
      const e = this.#entries.get(v.name);
      if (!e || (e.origin === 'api' && (e.revision !== v.revision || e.digest !== v.digest))) names.add(v.name);
    }
    for (const e of this.#entries.values()) if (e.origin === 'api' && !stored.has(e.name)) names.add(e.name);
    for (const name of names) out[await this.refresh(name)]++;
    return out;
  }

  /** Loads a built-in package announced by `#announceBuiltin`: its module, the full manifest check, its tools. */
  async #loadBuiltin(file: string, entry: Entry): Promise<void> {
    const log = this.#opts.logger;
    const name = entry.name;
    try {
      const { manifest, warnings } = parseToolManifestOrThrow(readFileSync(file), file);
      entry.manifest = manifest;
      const wasmFile = join(dirname(file), manifest.module);
      if (!existsSync(wasmFile)) {
        entry.error = `module ${manifest.module} is not built; run \`npm run build:tools\``;
        log?.warn({ tool_server: name, module: wasmFile }, `built-in tool server "${name}" skipped: ${entry.error}`);
        return;
      }
      // Read without blocking the event loop: a large module on a slow disk delays this server only.
      const wasm = await readFile(wasmFile);
      await loadServerModule();
      if (this.#closed) return;
      entry.digest = moduleDigest(wasm);
      entry.module_bytes = wasm.byteLength;
      const server = this.#build(manifest, wasm, file, wasmFile, warnings);
      this.#unwait(entry);
      server.register(this.#opts.tools);
      entry.server = server;
      for (const w of server.warnings) log?.debug({ tool_server: name, field: w.field }, w.message);
    } catch (e) {
      entry.error = errText(e);
      log?.warn({ tool_server: name, err: entry.error }, `built-in tool server "${name}" could not be loaded`);
    } finally {
      this.#unwait(entry);
    }
  }

  /**
   * Deploys (or replaces) a package from its manifest text and module bytes. Everything is checked
   * before anything changes: a bad manifest ('validation_failed', naming the field), an invalid or
   * disallowed module ('validation_failed'), a name held by a built-in server or another tool
   * ('conflict') leave the running servers and the stored packages as they were.
   */
  async deploy(manifestText: string | Uint8Array, wasm: Uint8Array): Promise<DeployResult> {
    const { manifest, warnings } = parseToolManifestOrThrow(manifestText, MANIFEST_FILE);
    const name = manifest.name;
    return this.#serial(name, async () => {
      await loadServerModule();
      const old = this.#entries.get(name);
      if (old?.origin === 'builtin')
        throw new CaxtonError(
          'conflict',
          `"${name}" is a built-in tool server and cannot be replaced; choose another name`,
          { name },
        );
      if (this.#opts.grants?.[name]?.enabled === false)
        throw new CaxtonError(
          'conflict',
          `tool server "${name}" is disabled by the operator ([tools.${name}] enabled = false in caxton.toml)`,
          { name },
        );
      const server = this.#build(manifest, wasm, MANIFEST_FILE, manifest.module, warnings);
      const registry = this.#opts.tools;
      old?.server?.unregister(registry);
      try {
        server.register(registry);
      } catch (e) {
        if (old?.server) old.server.register(registry);
        server.close();
        throw e;
      }
      const text = typeof manifestText === 'string' ? manifestText : Buffer.from(manifestText).toString('utf8');
      const digest = moduleDigest(wasm);
      const deployedAt = new Date().toISOString();
      let revision: number;
      try {
        ({ revision } = await this.#store.put({ name, manifest: text, wasm, digest, deployed_at: deployedAt }));
      } catch (e) {
        server.unregister(registry);
        server.close();
        if (old?.server) old.server.register(registry);
        throw e;
      }
      old?.server?.close();
      this.#entries.set(name, {
        name,
        origin: 'api',
        server,
        manifest,
        deployed_at: deployedAt,
        digest,
        revision,
        module_bytes: wasm.byteLength,
        path: null,
      });
      this.#opts.logger?.info(
        {
          tool_server: name,
          version: manifest.version,
          tools: server.tools.map((t) => t.name),
          replaced: old !== undefined,
        },
        'tool server deployed',
      );
      this.#emit({ type: 'deployed', name, digest, revision });
      return { created: old === undefined, server: this.view(name)! };
    });
  }

  /** Removes a deployed package (its tools disappear at once). Built-in servers cannot be removed. */
  remove(name: string): Promise<void> {
    // Checked first, so an unknown name is refused without waiting for the name's other changes.
    this.#require(name);
    return this.#serial(name, async () => {
      const e = this.#require(name);
      if (e.origin === 'builtin')
        throw new CaxtonError(
          'conflict',
          `"${name}" is a built-in tool server; disable it in caxton.toml with [tools.${name}] enabled = false`,
          { name },
        );
      await this.#store.remove(name);
      e.server?.unregister(this.#opts.tools);
      e.server?.close();
      this.#entries.delete(name);
      this.#opts.logger?.info({ tool_server: name }, 'tool server removed');
      this.#emit({ type: 'removed', name });
    });
  }

  #require(name: string): Entry {
    const e = this.#entries.get(name);
    if (!e) {
      const guess = closest(name, [...this.#entries.keys()]);
      throw new CaxtonError(
        'tool_not_found',
        `no tool server named "${name}"${guess ? `; did you mean "${guess}"?` : ''}`,
        { name },
      );
    }
    return e;
  }

  get size(): number {
    return this.#entries.size;
  }

  server(name: string): WasmToolServer | undefined {
    return this.#entries.get(name)?.server;
  }

  list(): ToolServerSummary[] {
    return [...this.#entries.values()].sort((a, b) => (a.name < b.name ? -1 : 1)).map(summaryOf);
  }

  view(name: string): ToolServerView | undefined {
    const e = this.#entries.get(name);
    return e && viewOf(e, this.#opts.grants?.[name], this.#grants(name));
  }

  /**
   * Calls `SERVER.tool` directly (REST, CLI), through the host tool registry like an agent would,
   * audited with `agent` (default "api"). Unknown servers and tools are 'tool_not_found'.
   */
  async call(fullName: string, args: Record<string, unknown>, opts: ToolCallOptions = {}): Promise<ToolCallResult> {
    const dot = fullName.indexOf('.');
    if (dot <= 0)
      throw new CaxtonError(
        'invalid_request',
        `"${fullName}" is not a tool name: expected SERVER.tool (e.g. csv_parser.parse)`,
        { tool: fullName },
      );
    let e = this.#require(fullName.slice(0, dot));
    // A server still loading at start: the call waits for it, and only for it.
    if (e.loading) {
      this.#loadNow(e.name);
      await e.loading;
      e = this.#require(e.name);
    }
    const server = e.server;
    if (!server)
      throw new CaxtonError('tool_not_found', `tool server "${e.name}" is not loaded: ${e.error ?? 'unknown reason'}`, {
        name: e.name,
      });
    const tool = server.tools.find((t) => t.name === fullName);
    if (!tool) {
      const names = server.tools.map((t) => t.name);
      const guess = closest(fullName, names);
      throw new CaxtonError(
        'tool_not_found',
        `tool server "${e.name}" has no tool "${fullName.slice(dot + 1)}"${guess ? `; did you mean "${guess}"?` : ''} (tools: ${names.join(', ')})`,
        {
          tool: fullName,
          tools: names,
        },
      );
    }
    const executionId = `api_${randomUUID()}`;
    // A worker-run server may first have to start its worker (a thread, the QuickJS module).
    const timeout = opts.timeoutMs ?? server.limits.timeout_ms + (server.offThread ? 5000 : 1000);
    this.#watch.set(executionId, undefined);
    try {
      const r: ToolResult = await this.#opts.tools.invoke([fullName], fullName, args, {
        agent: opts.agent ?? API_CALLER,
        execution_id: executionId,
        ...(opts.conversation_id !== undefined && { conversation_id: opts.conversation_id }),
        ...(opts.principal !== undefined && { principal: opts.principal }),
        deadline: Date.now() + timeout,
        signal: opts.signal ?? new AbortController().signal,
      });
      const rec = this.#watch.get(executionId);
      return {
        tool: fullName,
        content: r.content,
        is_error: r.is_error === true,
        outcome: rec?.outcome ?? resultOutcome(r),
        duration_us: rec?.duration_us ?? 0,
        fuel_used: rec?.fuel_used ?? 0,
        memory_bytes: rec?.memory_bytes ?? 0,
        execution_id: executionId,
      };
    } finally {
      this.#watch.delete(executionId);
    }
  }

  /** Unregisters every tool and drops the instances. */
  close(): void {
    this.#closed = true;
    // Servers never loaded: their waiting calls end (the server is not loaded), `ready` settles.
    for (const job of this.#jobs) if (!job.running) job.done();
    if (!this.#loader) this.#settle({ loaded: 0, failed: this.#entries.size });
    for (const e of this.#entries.values()) {
      this.#unwait(e);
      e.server?.unregister(this.#opts.tools);
      e.server?.close();
    }
    this.#entries.clear();
  }
}
