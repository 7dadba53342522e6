/** Shared by the JavaScript tool tests: the example package and small JS packages. */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  loadQuickJS,
  parseToolManifestOrThrow,
  WasmToolServer,
  type ToolManifest,
  type WasmToolServerOptions,
} from '../../../src/tools/servers/index.js';

export { ctx } from '../wasm/helpers.js';

// The tool servers built here directly (not by a manager) use the shared QuickJS module.
await loadQuickJS();

export const JS_EXAMPLE_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../../examples/tools/js-text');

/** The example's manifest text and tool.js bytes. */
export function jsExample(): { manifest: string; source: Buffer } {
  return {
    manifest: readFileSync(join(JS_EXAMPLE_DIR, 'caxton-tool.toml'), 'utf8'),
    source: readFileSync(join(JS_EXAMPLE_DIR, 'tool.js')),
  };
}

/** Manifest text of a JS package with `tools` (names = exports) and extra TOML. */
export function jsManifestText(name: string, tools: string[], extra = ''): string {
  return (
    `name = "${name}"\nversion = "1.0.0"\ndescription = "test server ${name}"\nmodule = "tool.js"\n` +
    tools.map((t) => `[[tools]]\nname = "${t}"\ndescription = "tool ${t}"\n`).join('') +
    extra
  );
}

export function jsManifest(name: string, tools: string[], extra = ''): ToolManifest {
  return parseToolManifestOrThrow(jsManifestText(name, tools, extra), `${name}/caxton-tool.toml`).manifest;
}

export function jsServer(
  name: string,
  tools: string[],
  source: string,
  extra = '',
  opts: WasmToolServerOptions = {},
): WasmToolServer {
  return new WasmToolServer(jsManifest(name, tools, extra), new TextEncoder().encode(source), opts);
}
