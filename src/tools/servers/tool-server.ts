/**
 * A tool server: one package (`caxton-tool.toml` + `.wasm`) loaded into a sandbox, its tools
 * exposed as `Tool`s named `server.tool` for the ToolRegistry. What the module may reach is the
 * intersection of what its manifest asks for and what the operator grants (`ToolServerGrants`);
 * the effective limits are the smaller of the two. Every call is validated against the tool's
 * input schema, run in the sandbox, checked against the output schema, and audit-logged.
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { CaxtonError } from '../../shared/errors.js';
import { scrubSecrets } from '../../shared/secrets.js';
import type { SourceIssue } from '../../shared/issues.js';
import type { ToolRegistry } from '../tool-registry.js';
import type { Tool, ToolContext, ToolResult } from '../types.js';
import { digestArgs, type ToolAuditSink } from '../../audit/index.js';
import type { CallOutcome } from './errors.js';
import { ownListeners, parseHostGrants } from '../../shared/host-grants.js';
import { FileAccess } from './fs-access.js';
import { sharedHttpClient, type SyncHttpClient } from './host-http.js';
import { capLimits, type ToolLimitCaps } from './manifest-limits.js';
import {
  compileSchema,
  MANIFEST_FILE,
  parseToolManifestOrThrow,
  type ToolDeclaration,
  type ToolLimits,
  type ToolManifest,
} from './manifest.js';
import { SqliteAccess } from './sqlite-access.js';
import { resolveGrants, type ToolServerGrants } from './grants.js';
import { decodeJsSource, JsSandbox } from './js/index.js';
import { OffThreadSandbox } from './off-thread.js';
import {
  prepareModule,
  WasmSandbox,
  type CallResult,
  type LogLevel,
  type SandboxGrants,
  type SandboxLimits,
} from './wasm/index.js';

export type { ToolServerGrants } from './grants.js';

export interface WasmToolServerOptions {
  grants?: ToolServerGrants;
  audit?: ToolAuditSink;
  /** Receives the module's log lines. */
  log?: (level: LogLevel, message: string, server: string) => void;
  /** HTTP client for the server's requests (default: the process-wide one). */
  http?: SyncHttpClient;
  /**
   * The operator's caps (`[tools.limits]`, manifest-limits.ts): a manifest stating more is refused, and
   * calls that may run long go to a worker thread (JavaScript servers, and WebAssembly servers
   * whose fuel is above `in_thread_fuel`). Without caps (tests, benchmarks of the sandbox itself)
   * only servers granted HTTP run on a worker.
   */
  caps?: ToolLimitCaps;
}

/**
 * Budget of the in-thread instantiation that proves a worker-run module loads (deploy, start):
 * a hostile top-level loop or allocation must not hold the server thread for the call's budget.
 */
export const LOAD_CHECK_LIMITS = { timeoutMs: 1_000, fuel: 10_000_000, memoryBytes: 32 * 1024 * 1024 } as const;

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Schema errors for people, naming the field: an unknown member and the allowed values included. */
function schemaErrors(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? [])
    .map((e) => {
      const p = e.params as { additionalProperty?: unknown; allowedValues?: unknown };
      let extra = '';
      if (e.keyword === 'additionalProperties' && typeof p.additionalProperty === 'string')
        extra = `: "${p.additionalProperty}"`;
      else if (e.keyword === 'enum' && Array.isArray(p.allowedValues))
        extra = ` (${p.allowedValues.map((v) => JSON.stringify(v)).join(', ')})`;
      return `${e.instancePath || '(root)'} ${e.message ?? 'is invalid'}${extra}`;
    })
    .join('; ');
}

export interface ToolServerStats {
  calls: number;
  failures: number;
  instantiations: number;
  memory_bytes: number;
}

export class WasmToolServer {
  readonly manifest: ToolManifest;
  readonly limits: ToolLimits;
  readonly tools: readonly Tool[];
  /** Manifest warnings and grants that did not apply. */
  readonly warnings: SourceIssue[];
  /** A WebAssembly module's sandbox, or a JavaScript module's (manifest runtime "quickjs"). */
  readonly sandbox: WasmSandbox | JsSandbox;
  readonly #audit: ToolAuditSink | undefined;
  /** Set for servers granted HTTP: their calls run on a worker thread. */
  readonly #offThread: OffThreadSandbox | undefined;

  /**
   * Loads a package: `path` is its directory or its manifest file. Throws CaxtonError
   * 'validation_failed' (manifest errors, invalid or disallowed module, missing export, required
   * config not given) or 'not_found' (no manifest / module file).
   */
  static load(path: string, opts: WasmToolServerOptions = {}): WasmToolServer {
    let file = resolve(path);
    try {
      if (statSync(file).isDirectory()) file = join(file, MANIFEST_FILE);
    } catch {
      throw new CaxtonError('not_found', `tool package "${path}" does not exist`, { path });
    }
    let text: Uint8Array;
    try {
      text = readFileSync(file);
    } catch {
      throw new CaxtonError('not_found', `${file}: no tool manifest (${MANIFEST_FILE}) found`, { file });
    }
    const { manifest, warnings } = parseToolManifestOrThrow(text, file);
    const wasmFile = join(dirname(file), manifest.module);
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(wasmFile);
    } catch {
      throw new CaxtonError(
        'not_found',
        `${file}: module file "${manifest.module}" not found (${wasmFile}); build the package first`,
        { file, field: 'module' },
      );
    }
    return new WasmToolServer(manifest, bytes, opts, file, wasmFile, warnings);
  }

  /**
   * A server from a parsed manifest and module bytes (tests, benchmarks, packages from elsewhere):
   * WebAssembly, or the JavaScript source as UTF-8 when the manifest's runtime is "quickjs".
   */
  constructor(
    manifest: ToolManifest,
    wasm: Uint8Array,
    opts: WasmToolServerOptions = {},
    file = MANIFEST_FILE,
    wasmFile = manifest.module,
    warnings: SourceIssue[] = [],
  ) {
    this.manifest = manifest;
    this.warnings = [...warnings];
    this.#audit = opts.audit;
    const g = opts.grants ?? {};
    const warn = (field: string, message: string) =>
      this.warnings.push({ severity: 'warning', code: 'grant_ignored', message, file, field });
    const fail = (message: string, details: Record<string, unknown> = {}) =>
      new CaxtonError('validation_failed', `${file}: ${message}`, { file, ...details });

    // The smaller of manifest and per-server grant; the operator's caps refuse what asks for more.
    this.limits = capLimits(manifest, opts.caps, g.limits, file);

    const { mHosts, opHosts, roots, dbRoots, config } = resolveGrants(manifest, g, warn, fail);

    const sandboxLimits: SandboxLimits = {
      memoryBytes: this.limits.memory,
      fuel: this.limits.fuel,
      timeoutMs: this.limits.timeout_ms,
      maxInputBytes: this.limits.max_input,
      maxOutputBytes: this.limits.max_output,
      maxStateBytes: this.limits.max_state,
    };
    const grants: SandboxGrants = {
      httpGranted: mHosts.length > 0 && opHosts.length > 0,
      hosts: [parseHostGrants(mHosts), parseHostGrants(opHosts)],
      files: new FileAccess(roots),
      ...(dbRoots.length > 0 && { databases: new SqliteAccess(dbRoots) }),
      config,
    };
    const log = opts.log;
    const name = manifest.name;
    const checkExports = (exports: ReadonlySet<string>) =>
      manifest.tools.forEach((t, i) => {
        if (t.export.startsWith('__caxton'))
          throw fail(`tool "${t.name}" names export "${t.export}": names starting with "__caxton" are reserved`, {
            field: `tools.${i}.export`,
          });
        if (!exports.has(t.export)) {
          throw fail(
            `tool "${t.name}" names export "${t.export}", which the module does not export (exports: ${[...exports].filter((e) => !e.startsWith('__')).join(', ') || 'none'})`,
            {
              field: `tools.${i}.export`,
            },
          );
        }
      });
    const caps = opts.caps;
    const hooks = (http: boolean) => ({
      ...(log && { log: (level: LogLevel, message: string) => log(level, message, name) }),
      ...(http && { http: opts.http ?? sharedHttpClient() }),
    });
    const offInit = {
      limits: sandboxLimits,
      manifestHosts: [...mHosts],
      operatorHosts: [...opHosts],
      own: ownListeners(),
      roots,
      databases: dbRoots,
      config: [...config],
    };
    const workerLog = log && ((level: LogLevel, message: string) => log(level, message, name));
    if (manifest.runtime === 'quickjs') {
      // JavaScript in QuickJS-in-WebAssembly. HTTP blocks the thread the module runs on, and under
      // the operator's caps every JavaScript server runs on a worker: QuickJS's memory is one
      // WebAssembly memory per thread that never shrinks, so only ending the thread gives it back.
      const source = decodeJsSource(wasm, wasmFile);
      const worker = grants.httpGranted || caps !== undefined;
      // A worker-run module is proven to load here under a small budget (LOAD_CHECK_LIMITS).
      const checkLimits = worker
        ? {
            ...sandboxLimits,
            timeoutMs: Math.min(sandboxLimits.timeoutMs, LOAD_CHECK_LIMITS.timeoutMs),
            memoryBytes: Math.min(sandboxLimits.memoryBytes, LOAD_CHECK_LIMITS.memoryBytes),
          }
        : sandboxLimits;
      const js = new JsSandbox(source, wasmFile, checkLimits, grants, hooks(grants.httpGranted));
      this.sandbox = js;
      const failed = js.instantiate();
      if (failed)
        throw fail(
          `${failed.error} (${failed.outcome})${worker && failed.outcome === 'timeout' ? ` (a module's top-level code must finish within ${LOAD_CHECK_LIMITS.timeoutMs} ms)` : ''}`,
        );
      try {
        checkExports(js.exports);
      } catch (e) {
        js.reset();
        throw e;
      }
      if (worker) {
        this.#offThread = new OffThreadSandbox({ js: { source, file: wasmFile }, ...offInit }, workerLog);
        js.reset();
      }
    } else {
      const prepared = prepareModule(wasm, sandboxLimits, wasmFile);
      checkExports(prepared.exports);
      const needsHttp = prepared.imports.some((i) => i.name === 'http_request');
      // Fuel bounds how long a WebAssembly call computes: above in_thread_fuel, it runs on a worker.
      const worker =
        (needsHttp && grants.httpGranted) || (caps !== undefined && sandboxLimits.fuel > caps.in_thread_fuel);
      const checkLimits = worker
        ? {
            ...sandboxLimits,
            fuel: Math.min(sandboxLimits.fuel, LOAD_CHECK_LIMITS.fuel),
            timeoutMs: Math.min(sandboxLimits.timeoutMs, LOAD_CHECK_LIMITS.timeoutMs),
          }
        : sandboxLimits;
      const sandbox = new WasmSandbox(prepared, checkLimits, grants, hooks(needsHttp && grants.httpGranted));
      this.sandbox = sandbox;
      const failed = sandbox.instantiate();
      if (failed)
        throw fail(
          `${failed.error} (${failed.outcome})${worker && failed.outcome === 'fuel_exhausted' ? ` (a module's start code must finish within ${LOAD_CHECK_LIMITS.fuel} fuel)` : ''}`,
        );
      if (worker) {
        this.#offThread = new OffThreadSandbox({ prepared, ...offInit }, workerLog);
        sandbox.reset(); // the in-thread instance only proved the module loads
      }
    }
    this.tools = manifest.tools.map((t) => this.#tool(t));
  }

  get name(): string {
    return this.manifest.name;
  }

  get version(): string {
    return this.manifest.version;
  }

  stats(): ToolServerStats {
    if (this.#offThread) return { ...this.#offThread.stats, memory_bytes: this.#offThread.memoryBytes };
    return { ...this.sandbox.stats, memory_bytes: this.sandbox.memoryBytes + this.sandbox.kernelBytes };
  }

  /** Whether calls run on a worker thread (servers granted HTTP). */
  get offThread(): boolean {
    return this.#offThread !== undefined;
  }

  /** Registers every tool of the server (`server.tool`). */
  register(registry: ToolRegistry): void {
    const done: string[] = [];
    try {
      for (const t of this.tools) {
        registry.register(t);
        done.push(t.name);
      }
    } catch (e) {
      for (const n of done) registry.unregister(n);
      throw e;
    }
  }

  unregister(registry: ToolRegistry): void {
    for (const t of this.tools) if (registry.get(t.name) === t) registry.unregister(t.name);
  }

  /** Drops the live instance; the next call instantiates afresh. */
  close(): void {
    this.sandbox.reset();
    this.#offThread?.close();
  }

  /**
   * Runs a tool on raw input bytes in this thread, without schema checks or audit (benchmarks,
   * diagnostics). Not for a server whose calls run on a worker: its in-thread instance only proved
   * the module loads, under the load check's limits, not the server's.
   */
  callRaw(tool: string, input: Uint8Array, deadline?: number): CallResult {
    const decl = this.manifest.tools.find((t) => t.name === tool);
    if (!decl) throw new CaxtonError('not_found', `tool server "${this.name}" has no tool "${tool}"`);
    if (this.#offThread)
      throw new CaxtonError(
        'invalid_request',
        `tool server "${this.name}" runs its calls on a worker thread: call its tools through the registry, not callRaw`,
      );
    return this.sandbox.call(decl.export, input, deadline);
  }

  #tool(decl: ToolDeclaration): Tool {
    const full = `${this.manifest.name}.${decl.name}`;
    const validateIn = compileSchema(decl.input_schema);
    const validateOut: ValidateFunction | undefined = decl.output_schema
      ? compileSchema(decl.output_schema)
      : undefined;
    return {
      name: full,
      description: decl.description,
      input_schema: decl.input_schema as Tool['input_schema'],
      audits: true,
      idempotent: decl.idempotent === true,
      invoke: async (args: Record<string, unknown>, ctx: ToolContext): Promise<ToolResult> =>
        this.#invoke(full, decl, validateIn, validateOut, args, ctx),
    };
  }

  #invoke(
    full: string,
    decl: ToolDeclaration,
    validateIn: ValidateFunction,
    validateOut: ValidateFunction | undefined,
    args: Record<string, unknown>,
    ctx: ToolContext,
  ): ToolResult | Promise<ToolResult> {
    const time = Date.now();
    const input = enc.encode(JSON.stringify(args));
    if (ctx.signal.aborted)
      return this.#finish(
        full,
        ctx,
        time,
        input,
        undefined,
        'timeout',
        'the request was cancelled before the tool ran',
        '',
      );
    if (!validateIn(args))
      return this.#finish(
        full,
        ctx,
        time,
        input,
        undefined,
        'invalid_input',
        `the arguments do not match the input schema: ${schemaErrors(validateIn.errors)}`,
        '',
      );
    // Servers that make HTTP requests run off the main thread (see off-thread.ts).
    if (this.#offThread)
      return this.#offThread
        .call(decl.export, input, ctx.deadline, ctx.traceparent)
        .then((r) => this.#complete(full, ctx, time, input, r, validateOut));
    return this.#complete(
      full,
      ctx,
      time,
      input,
      this.sandbox.call(decl.export, input, ctx.deadline, ctx.traceparent),
      validateOut,
    );
  }

  /** Checks a finished call's output against the tool's output schema, then audits it. */
  #complete(
    full: string,
    ctx: ToolContext,
    time: number,
    input: Uint8Array,
    r: CallResult,
    validateOut: ValidateFunction | undefined,
  ): ToolResult {
    let outcome: CallOutcome = r.outcome;
    let error = r.error;
    const content = r.output ? dec.decode(r.output) : '';
    if (outcome === 'ok' && validateOut) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(content);
        if (!validateOut(parsed)) {
          outcome = 'error';
          error = `the tool's output does not match its output schema: ${schemaErrors(validateOut.errors)}`;
        }
      } catch {
        outcome = 'error';
        error = "the tool's output is not JSON, but the tool declares an output schema";
      }
    }
    return this.#finish(full, ctx, time, input, r, outcome, error, content);
  }

  #finish(
    full: string,
    ctx: ToolContext,
    time: number,
    input: Uint8Array,
    r: CallResult | undefined,
    outcome: CallOutcome,
    rawError: string | undefined,
    rawContent: string,
  ): ToolResult {
    // The guest's output and error are outside text: scrubbed of the configured secrets (its
    // granted config included) before the audit, the caller or the model sees them (ADR 0017).
    const content = scrubSecrets(rawContent);
    const error = rawError === undefined ? undefined : scrubSecrets(rawError);
    this.#audit?.record({
      time,
      agent: ctx.agent,
      ...(ctx.execution_id && { execution_id: ctx.execution_id }),
      ...(ctx.conversation_id && { conversation_id: ctx.conversation_id }),
      ...(ctx.principal !== undefined && { principal: ctx.principal }),
      server: this.manifest.name,
      tool: full,
      args_digest: digestArgs(input),
      outcome,
      ...(error !== undefined && { error }),
      duration_us: r?.duration_us ?? 0,
      fuel_used: r?.fuel_used ?? 0,
      memory_bytes: r?.memory_bytes ?? 0,
      input_bytes: input.byteLength,
      output_bytes: r?.output?.byteLength ?? 0,
    });
    if (outcome === 'ok') return { content };
    return { content: `tool "${full}" failed (${outcome}): ${error ?? 'unknown error'}`, is_error: true };
  }
}
