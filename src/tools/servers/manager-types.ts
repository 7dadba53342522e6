/**
 * What the tool server manager (manager.ts) takes and answers: its options, the views of its
 * servers and calls, and the operator's grants and caps in the form the sandbox takes.
 */
import { isAbsolute, resolve } from 'node:path';
import type { ToolCapsConfig, ToolGrantConfig } from '../../config/index.js';
import type { Logger } from '../../observability/index.js';
import type { SourceIssue } from '../../shared/issues.js';
import { requestedWasmLimits } from '../../shared/wasm-limits.js';
import type { Db } from '../../storage/index.js';
import type { ToolRegistry } from '../tool-registry.js';
import type { ToolContext } from '../types.js';
import type { ToolAuditSink } from '../../audit/index.js';
import type { SyncHttpClient } from './host-http.js';
import { DEFAULT_TOOL_CAPS, type ToolLimitCaps } from './manifest-limits.js';
import type { ToolLimits } from './manifest.js';
import type { ToolPackageStorePort } from './package-store.js';
import type { ToolServerGrants, ToolServerStats } from './tool-server.js';

export type ToolServerOrigin = 'builtin' | 'api';

export interface ToolServerManagerOptions {
  /** Where deployed packages are kept; default: a ToolPackageStore on `db`. */
  store?: ToolPackageStorePort;
  /** The data dir's database, for the default store (one of `store` and `db` is required). */
  db?: Db;
  /** Where tools are registered: the executor's host tools. */
  tools: ToolRegistry;
  /** `[tools.NAME]` of caxton.toml. */
  grants?: Record<string, ToolGrantConfig>;
  /** `[tools.limits]` of caxton.toml: caps over every manifest (default DEFAULT_TOOL_CAPS). */
  caps?: ToolCapsConfig | ToolLimitCaps;
  /** Receives one record per call. */
  audit?: ToolAuditSink;
  logger?: Logger;
  /** Relative granted paths and databases are resolved against this (caxton.toml's folder; default: cwd). */
  baseDir?: string;
  /** Where built-in packages are looked for (default DEFAULT_BUILTIN_DIR); false: none. */
  builtinDir?: string | false;
  http?: SyncHttpClient;
}

export interface ToolSummary {
  name: string;
  description: string;
}

export interface ToolServerSummary {
  name: string;
  /** `javascript`: a QuickJS package (runtime "quickjs"); `wasm`: a WebAssembly module. */
  kind: 'wasm' | 'javascript';
  version: string | null;
  description: string | null;
  origin: ToolServerOrigin;
  /**
   * `loading`: its tools are registered and a call waits until the server has loaded; `loaded`:
   * its tools run; `failed`: it could not be loaded (see `error`), no tools.
   */
  state: 'loading' | 'loaded' | 'failed';
  error: string | null;
  tools: string[];
  deployed_at: string | null;
}

export interface ToolServerView extends ToolServerSummary {
  tool_specs: {
    name: string;
    description: string;
    input_schema: Record<string, unknown>;
    output_schema?: Record<string, unknown>;
  }[];
  /** The effective limits: the smaller of the manifest's and the operator's. */
  limits: ToolLimits | null;
  /** What the manifest asks for and what the operator grants; only the intersection is usable. */
  permissions: {
    allowed_hosts: { requested: string[]; granted: string[] };
    paths: { requested: Record<string, string>; granted: Record<string, string> };
    databases: { requested: string[]; granted: Record<string, string> };
    config: { declared: string[]; granted: string[] };
  } | null;
  warnings: SourceIssue[];
  /** SHA-256 of the module bytes. */
  digest: string | null;
  module_bytes: number | null;
  stats: ToolServerStats | null;
  /** Where a built-in package was loaded from. */
  path: string | null;
}

export interface ToolCallOptions {
  agent?: string;
  conversation_id?: string;
  /** The authenticated caller (Principal.id): recorded in the tool audit. */
  principal?: string;
  /** Longest the call may take, ms (default: the server's timeout limit plus a second). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface ToolCallResult {
  tool: string;
  content: string;
  is_error: boolean;
  /** From the audit record of the call. */
  outcome: string;
  duration_us: number;
  fuel_used: number;
  memory_bytes: number;
  execution_id: string;
}

export interface DeployResult {
  created: boolean;
  server: ToolServerView;
}

/** A change this node made to the stored packages (deploy or remove through its API). */
export type ToolPackageChange =
  { type: 'deployed'; name: string; digest: string; revision: number } | { type: 'removed'; name: string };

/** What `refresh` did to one name: loaded (new or replaced), failed to load, unloaded, or nothing. */
export type RefreshOutcome = 'loaded' | 'failed' | 'removed' | 'unchanged';

/** Operator grants in the form WasmToolServer takes, relative paths resolved against `baseDir`. */
export function toServerGrants(g: ToolGrantConfig | undefined, baseDir: string): ToolServerGrants {
  if (!g) return {};
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  return {
    allowed_hosts: [...g.allowed_hosts],
    paths: Object.fromEntries(Object.entries(g.paths).map(([k, v]) => [k, abs(v)])),
    databases: Object.fromEntries(Object.entries(g.databases).map(([k, v]) => [k, abs(v)])),
    config: { ...g.config },
    limits: requestedWasmLimits(g.limits),
  };
}

/** `[tools.limits]` as the sandbox takes it. */
export function toLimitCaps(c: ToolCapsConfig | ToolLimitCaps | undefined): ToolLimitCaps {
  if (!c) return { ...DEFAULT_TOOL_CAPS };
  if ('timeout_ms' in c) return { ...c };
  return {
    memory: c.memory,
    fuel: c.fuel,
    timeout_ms: c.timeout,
    max_input: c.max_input,
    max_output: c.max_output,
    max_state: c.max_state,
    in_thread_fuel: c.in_thread_fuel,
  };
}

/** Resolves true once `loading` settles, false if the call's deadline passes or it is cancelled first. */
export function untilSettled(loading: Promise<void>, ctx: ToolContext): Promise<boolean> {
  if (ctx.signal.aborted) return Promise.resolve(false);
  return new Promise<boolean>((resolve) => {
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      ctx.signal.removeEventListener('abort', abort);
      resolve(ok);
    };
    const abort = () => finish(false);
    const timer = setTimeout(abort, Math.max(0, ctx.deadline - Date.now()));
    ctx.signal.addEventListener('abort', abort, { once: true });
    void loading.then(() => finish(true));
  });
}
