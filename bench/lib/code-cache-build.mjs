#!/usr/bin/env node
/**
 * Experiment only (bench/code-cache.ts): a CommonJS bundle of the CLI, dist/cli/serve-cjs.cjs,
 * that a launcher (dist/cli/serve-cjs-launch.cjs) compiles through `vm.Script` with or without
 * V8's code cache. Node 20 has no compile cache for ES modules; `vm.Script` `cachedData` needs
 * classic script source, so the bundle is CommonJS:
 *
 * - src/cli/main.ts has top-level `await`s: its body after the imports runs in an async function.
 * - `import.meta.url` becomes the URL of the module's own file under dist/, computed from
 *   `__filename`, so the paths found from it are the ones the ES module bundle finds.
 * - The tool server module (and QuickJS with its top-level `await`) is not bundled: it is loaded
 *   from tsc's output by a dynamic `import()`, after the first answer.
 * - CommonJS output has no code splitting: every lazy chunk folds into the one file, loaded by
 *   `require`-like wrappers as it is asked for, but compiled (lazily, by V8) with the rest.
 *
 * Run after `npm run build`. Writes the bundle and the launcher; prints their sizes.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { EXTERNAL } from '../../scripts/bundle-externals.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const src = join(root, 'src');
const outfile = join(root, 'dist/cli/serve-cjs.cjs');

const sourcePlugin = {
  name: 'caxton-cjs-source',
  setup(b) {
    b.onResolve({ filter: /(^|\/)(server|js-sandbox)\.js$/ }, (args) => {
      const abs = resolve(args.resolveDir, args.path);
      if (!/[\\/]src[\\/]tools[\\/]wasm[\\/](server|js-sandbox)\.js$/.test(abs)) return undefined;
      const dist = join(root, 'dist', relative(src, abs));
      return { path: dist, external: true };
    });
    b.onLoad({ filter: /[\\/]src[\\/].*\.ts$/ }, (args) => {
      let text = readFileSync(args.path, 'utf8');
      const rel = relative(src, args.path).replace(/\.ts$/, '.js').split('\\').join('/');
      if (text.includes('import.meta.url'))
        text = text.replaceAll('import.meta.url', `new URL(${JSON.stringify(`../${rel}`)}, __caxtonMetaUrl).href`);
      if (rel === 'cli/main.js') {
        const at = text.indexOf('const program = new Command();');
        text = `${text.slice(0, at)}void (async () => {\n${text.slice(at)}\n})();\n`;
      }
      return { contents: text, loader: 'ts' };
    });
  },
};

const result = await build({
  absWorkingDir: root,
  entryPoints: ['src/cli/main.ts'],
  outfile,
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  minifyWhitespace: true,
  minifySyntax: true,
  mainFields: ['module', 'main'],
  external: EXTERNAL,
  plugins: [sourcePlugin],
  banner: { js: "var __caxtonMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
  metafile: true,
  logLevel: 'warning',
});

/**
 * Runs the bundle as Node's CommonJS loader would, compiled by `vm.Script`. CAXTON_CC:
 * `off` compiles without a cache; `on` reads the cache file if there is one and, once the first
 * POST has been answered (so the functions compiled lazily up to then are in it), writes a new
 * one when there was none or V8 rejected it; `early` writes it right after the compile, before
 * the bundle runs (only what V8 compiled eagerly). CAXTON_CC_FILE: the cache file.
 *
 * The bundle's dynamic `import()`s go to Node's loader through
 * `vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER`, which on Node 20 prints an ExperimentalWarning
 * at the first one (the bench starts it with --no-warnings); a callback there would need
 * --experimental-vm-modules.
 */
const LAUNCHER = `'use strict';
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const Module = require('node:module');
const http = require('node:http');
const file = path.join(__dirname, 'serve-cjs.cjs');
const source = fs.readFileSync(file, 'utf8').replace(/^#!.*/, '');
const mode = process.env.CAXTON_CC;
const use = mode === 'on' || mode === 'early';
const cacheFile = process.env.CAXTON_CC_FILE;
let cachedData;
if (use) try { cachedData = fs.readFileSync(cacheFile); } catch {}
const script = new vm.Script(Module.wrap(source), {
  filename: file,
  cachedData,
  importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
});
if (mode === 'early' && (!cachedData || script.cachedDataRejected)) {
  const data = script.createCachedData();
  fs.writeFileSync(cacheFile, data, { mode: 0o600 });
  process.stderr.write('code-cache-written ' + data.length + (cachedData ? ' (rejected)' : '') + '\\n');
} else if (use && (!cachedData || script.cachedDataRejected)) {
  const end = http.ServerResponse.prototype.end;
  let done = false;
  http.ServerResponse.prototype.end = function (...a) {
    const r = end.apply(this, a);
    if (!done && this.req && this.req.method === 'POST') {
      done = true;
      setImmediate(() => {
        const data = script.createCachedData();
        fs.writeFileSync(cacheFile, data, { mode: 0o600 });
        process.stderr.write('code-cache-written ' + data.length + (cachedData ? ' (rejected)' : '') + '\\n');
      });
    }
    return r;
  };
}
const fn = script.runInThisContext();
const m = new Module(file, module);
m.filename = file;
m.paths = Module._nodeModulePaths(__dirname);
fn.call(m.exports, m.exports, Module.createRequire(file), m, file, __dirname);
`;
writeFileSync(join(root, 'dist/cli/serve-cjs-launch.cjs'), LAUNCHER);

const bytes = Object.values(result.metafile.outputs).reduce((s, o) => s + o.bytes, 0);
console.log(`code-cache experiment: dist/cli/serve-cjs.cjs ${(bytes / 1024).toFixed(0)} KiB`);
