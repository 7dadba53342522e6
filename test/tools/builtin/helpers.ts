/**
 * The built-in tool servers (tools/builtin/NAME), loaded from their package directories — the real
 * manifest and the real module built by `npm run build:tools` — into the real sandbox.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ToolResult } from '../../../src/tools/index.js';
import { WasmToolServer, type ToolServerGrants, type WasmToolServerOptions } from '../../../src/tools/servers/index.js';
import { MemoryToolAuditSink } from '../../../src/audit/index.js';
import { repoRoot } from '../../helpers/fixtures.js';
import { ctx } from '../wasm/helpers.js';

export const BUILTIN_DIR = join(repoRoot, 'tools/builtin');

/** The package directories that hold a manifest. */
export function builtinPackages(): string[] {
  return readdirSync(BUILTIN_DIR)
    .filter((n) => existsSync(join(BUILTIN_DIR, n, 'caxton-tool.toml')))
    .sort();
}

let built = false;
/** Builds the packages whose module is missing or older than its sources (fast when up to date). */
export function ensureBuiltinsBuilt(): void {
  if (built) return;
  execFileSync(process.execPath, [join(repoRoot, 'scripts/build-tools.mjs')], { cwd: repoRoot, stdio: 'pipe' });
  built = true;
}

export interface Loaded {
  server: WasmToolServer;
  audit: MemoryToolAuditSink;
  /** Invokes `server.tool` through its Tool (input schema, sandbox, output schema, audit). */
  call(tool: string, args: Record<string, unknown>): Promise<ToolResult>;
  /** Like call, but expects success and parses the JSON output. */
  json<T = Record<string, unknown>>(tool: string, args: Record<string, unknown>): Promise<T>;
}

export function loadBuiltin(
  name: string,
  grants: ToolServerGrants = {},
  opts: Omit<WasmToolServerOptions, 'grants' | 'audit'> = {},
): Loaded {
  ensureBuiltinsBuilt();
  const audit = new MemoryToolAuditSink();
  const server = WasmToolServer.load(join(BUILTIN_DIR, name), { ...opts, grants, audit });
  const call = (tool: string, args: Record<string, unknown>): Promise<ToolResult> => {
    const t = server.tools.find((x) => x.name === `${name}.${tool}`);
    if (!t) throw new Error(`${name} has no tool ${tool} (has ${server.tools.map((x) => x.name).join(', ')})`);
    return t.invoke(args, ctx());
  };
  return {
    server,
    audit,
    call,
    async json<T>(tool: string, args: Record<string, unknown>): Promise<T> {
      const r = await call(tool, args);
      if (r.is_error) throw new Error(`${name}.${tool} failed: ${r.content}`);
      return JSON.parse(r.content) as T;
    },
  };
}
