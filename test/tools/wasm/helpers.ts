import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import wabtInit from 'wabt';
import type { ToolContext } from '../../../src/tools/index.js';
import {
  parseToolManifestOrThrow,
  WasmToolServer,
  type ToolManifest,
  type WasmToolServerOptions,
} from '../../../src/tools/servers/index.js';
import { repoRoot } from '../../helpers/fixtures.js';

let wabt: Awaited<ReturnType<typeof wabtInit>> | undefined;

/** Compiles WebAssembly text to a binary with wabt (the hostile fixtures are written in WAT). */
export async function wat(source: string): Promise<Uint8Array> {
  wabt ??= await wabtInit();
  const m = wabt.parseWat('fixture.wat', source, {
    bulk_memory: true,
    mutable_globals: true,
    sign_extension: true,
    sat_float_to_int: true,
    multi_value: true,
  });
  try {
    return new Uint8Array(m.toBinary({}).buffer);
  } finally {
    m.destroy();
  }
}

/** The Extism kernel imports a WAT fixture may use (declare them in the module text). */
export const EXTISM_IMPORTS = `
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "load_u8" (func $load_u8 (param i64) (result i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
`;

/** A WAT function body that writes `text` (ASCII) as the output. */
export function outputText(text: string): string {
  const stores = [...text]
    .map((c, i) => `(call $store_u8 (i64.add (local.get $p) (i64.const ${i})) (i32.const ${c.charCodeAt(0)}))`)
    .join('\n    ');
  return `(local.set $p (call $alloc (i64.const ${text.length})))
    ${stores}
    (call $output_set (local.get $p) (i64.const ${text.length}))`;
}

/** A manifest for `tools` (names = exports), with optional extra TOML (limits, permissions...). */
export function manifest(name: string, tools: string[], extra = ''): ToolManifest {
  const toml =
    `name = "${name}"\nversion = "1.0.0"\ndescription = "test server ${name}"\n` +
    tools.map((t) => `[[tools]]\nname = "${t}"\ndescription = "tool ${t}"\n`).join('') +
    extra;
  return parseToolManifestOrThrow(toml, `${name}/caxton-tool.toml`).manifest;
}

export async function server(
  name: string,
  tools: string[],
  watSource: string,
  extra = '',
  opts: WasmToolServerOptions = {},
): Promise<WasmToolServer> {
  return new WasmToolServer(manifest(name, tools, extra), await wat(watSource), opts);
}

export function ctx(over: Partial<ToolContext> = {}): ToolContext {
  return {
    agent: 'tester',
    execution_id: 'exec-1',
    deadline: Date.now() + 30_000,
    signal: new AbortController().signal,
    ...over,
  };
}

/** The example and template packages, built on demand (`npm run build:tools` builds them in CI). */
export const EXAMPLE_DIR = join(repoRoot, 'examples/tools/text');
export const TEMPLATE_DIR = join(repoRoot, 'templates/tool-assemblyscript');

export function ensureToolsBuilt(): void {
  if (existsSync(join(EXAMPLE_DIR, 'build/text.wasm')) && existsSync(join(TEMPLATE_DIR, 'build/hello.wasm'))) return;
  execFileSync(process.execPath, [join(repoRoot, 'scripts/build-tools.mjs')], { cwd: repoRoot, stdio: 'pipe' });
}

/** A server that answers "ok": the bystander every hostile test checks is unaffected. */
export const OK_WAT = `(module ${EXTISM_IMPORTS}
  (memory (export "memory") 1)
  (func (export "ok") (result i32) (local $p i64)
    ${outputText('ok')}
    (i32.const 0)))`;
