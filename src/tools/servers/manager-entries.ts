/**
 * What the tool server manager (manager.ts) holds per server name: its entry (origin, state, the
 * loaded server or why it failed), the tools that stand in for a server still loading, and the
 * views the API serves of an entry.
 */
import type { ToolGrantConfig } from '../../config/index.js';
import type { ToolRegistry } from '../tool-registry.js';
import type { Tool, ToolContext, ToolResult } from '../types.js';
import { untilSettled, type ToolServerOrigin, type ToolServerSummary, type ToolServerView } from './manager-types.js';
import type { ToolManifest } from './manifest.js';
import type { ToolServerGrants, WasmToolServer } from './tool-server.js';

export interface Entry {
  name: string;
  origin: ToolServerOrigin;
  server?: WasmToolServer;
  error?: string;
  deployed_at: string | null;
  digest: string | null;
  /** The store's revision of a deployed package (null for a built-in). */
  revision: number | null;
  module_bytes: number | null;
  path: string | null;
  manifest?: ToolManifest;
  /** While the server loads: settles when it has loaded or failed (its tools wait for it). */
  loading?: Promise<void>;
  /** While the server loads: the tools registered in its place, each waiting for it. */
  waiting?: Tool[];
}

/** A server still to be loaded at start: its manifest read, its tools registered as waiting. */
export interface StartJob {
  name: string;
  load(): Promise<void>;
  done(): void;
  /** Set once its load has begun (in the background, or sooner for a call that waits for it). */
  running?: Promise<void>;
}

/**
 * Registers on `registry` the tools of `entry`'s server, about to load, each waiting for it: a call
 * made before the server has loaded asks for it at once (`loadNow`), runs once it has (or fails,
 * naming why it could not be loaded), and gives up at its deadline or cancellation. Sets
 * `entry.loading` and `entry.waiting`; returns the function that settles `loading`. Throws (having
 * registered nothing) when a name is taken.
 */
export function registerWaiting(
  entry: Entry,
  manifest: ToolManifest,
  registry: ToolRegistry,
  manager: { loadNow(name: string): void; loaded(name: string): Entry | undefined },
): () => void {
  let done!: () => void;
  const loading = new Promise<void>((r) => (done = r));
  const name = entry.name;
  entry.loading = loading;
  entry.waiting = manifest.tools.map((t) => {
    const full = `${name}.${t.name}`;
    return {
      name: full,
      description: t.description,
      input_schema: t.input_schema as Tool['input_schema'],
      // The loaded server's tool records the call it is handed.
      audits: true,
      idempotent: t.idempotent === true,
      invoke: async (args: Record<string, unknown>, ctx: ToolContext): Promise<ToolResult> => {
        manager.loadNow(name);
        if (!(await untilSettled(loading, ctx)))
          return {
            content: `tool "${full}" failed (timeout): its server "${name}" was still loading when the call's deadline passed or it was cancelled`,
            is_error: true,
          };
        const e = manager.loaded(name);
        const tool = e?.server?.tools.find((x) => x.name === full);
        if (!tool)
          return {
            content: `tool "${full}" failed (error): tool server "${name}" is not loaded: ${e?.error ?? 'it was removed'}`,
            is_error: true,
          };
        return tool.invoke(args, ctx);
      },
    };
  });
  try {
    for (const t of entry.waiting) registry.register(t);
  } catch (e) {
    for (const t of entry.waiting) if (registry.get(t.name) === t) registry.unregister(t.name);
    entry.waiting = undefined;
    entry.loading = undefined;
    done();
    throw e;
  }
  return done;
}

export function summaryOf(e: Entry): ToolServerSummary {
  return {
    name: e.name,
    kind: e.manifest?.runtime === 'quickjs' ? 'javascript' : 'wasm',
    version: e.manifest?.version ?? null,
    description: e.manifest?.description ?? null,
    origin: e.origin,
    state: e.server ? 'loaded' : e.loading ? 'loading' : 'failed',
    error: e.error ?? null,
    tools: e.server ? e.server.tools.map((t) => t.name) : (e.waiting?.map((t) => t.name) ?? []),
    deployed_at: e.deployed_at,
  };
}

/** `e` in full: `grant` is its `[tools.NAME]` as written, `granted` the same in the sandbox's form (paths resolved). */
export function viewOf(e: Entry, grant: ToolGrantConfig | undefined, granted: ToolServerGrants): ToolServerView {
  const m = e.manifest;
  const name = e.name;
  return {
    ...summaryOf(e),
    tool_specs: (m?.tools ?? []).map((t) => ({
      name: `${name}.${t.name}`,
      description: t.description,
      input_schema: t.input_schema,
      ...(t.output_schema && { output_schema: t.output_schema }),
    })),
    limits: e.server ? { ...e.server.limits } : null,
    permissions: m
      ? {
          allowed_hosts: { requested: [...m.permissions.allowed_hosts], granted: [...(grant?.allowed_hosts ?? [])] },
          paths: { requested: { ...m.permissions.paths }, granted: { ...(granted.paths ?? {}) } },
          databases: { requested: [...m.permissions.databases], granted: { ...(granted.databases ?? {}) } },
          config: { declared: Object.keys(m.config), granted: Object.keys(grant?.config ?? {}) },
        }
      : null,
    warnings: e.server ? [...e.server.warnings] : [],
    digest: e.digest,
    module_bytes: e.module_bytes,
    stats: e.server ? e.server.stats() : null,
    path: e.path,
  };
}
