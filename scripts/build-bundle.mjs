#!/usr/bin/env node
/**
 * Bundles the CLI (and with it the server `caxton serve` starts) into dist/cli/main.js with
 * esbuild: one file and its lazily loaded chunks instead of ~1,000 modules resolved and read one
 * by one at every start (ADR 0055). Runs after `tsc`, over its output of the same entry; the rest
 * of dist/ (the library export, worker threads, the process-isolation child) stays as tsc wrote it.
 *
 * - ESM, platform node, target node20, source maps (dist/cli/*.js.map; not packed, like the rest of
 *   dist/'s), whitespace and syntax minified, identifiers kept.
 * - Dynamic `import()`s stay lazy: each becomes a chunk (dist/cli/chunk-*.js), loaded when the
 *   configuration or the command asks for it (cluster, OTLP, MCP, memory embeddings, each CLI command).
 * - External: packages with native addons or WebAssembly and data files located next to their
 *   own modules (EXTERNAL, scripts/bundle-externals.mjs), and optional peers that are not installed.
 * - Every `import.meta.url` in Caxton's sources is rewritten to the URL of the module's own file
 *   under dist/, so the paths found from it (package.json, templates/, tools/builtin/, dist/console,
 *   worker and child entry scripts) are the ones the unbundled build finds.
 *
 * The task module of `worker` and `process` isolation (dist/execution/task.js) and the entries that
 * load it in a child process and a worker thread are bundled too, each over tsc's file: a child
 * that starts reads and compiles a few files instead of resolving its ~40 modules one by one. The
 * task shares no module instance with the entry that loads it (it imports only types from
 * src/execution/isolation), so separate bundles behave as the separate files did.
 */
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { EXTERNAL } from './bundle-externals.mjs';
import { findMyWayPlugin } from './bundle-find-my-way.mjs';
import { promClientPlugin } from './bundle-prom-client.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');
const outdir = join(root, 'dist');

/** `import.meta.url` of a source file as the URL of its compiled file in dist/ (chunks and entry are in dist/cli/). */
const metaUrlPlugin = {
  name: 'caxton-import-meta-url',
  setup(b) {
    b.onLoad({ filter: /[\\/]src[\\/].*\.ts$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      if (!text.includes('import.meta.url')) return undefined;
      const rel = relative(src, args.path).replace(/\.ts$/, '.js').split('\\').join('/');
      const own = `new URL(${JSON.stringify(`../${rel}`)}, import.meta.url).href`;
      return { contents: text.replaceAll('import.meta.url', own), loader: 'ts' };
    });
  },
};

/**
 * zod's `locales` namespace holds the error messages of every language zod ships (about 290 KiB
 * of the bundle, all of it compiled by every start, as `z` re-exports the namespace). Caxton's
 * messages are English (`z.locales.en`, src/shared/zod-issues.ts, and zod's own default), so in
 * the bundle the namespace has `en` only.
 */
const zodEnglishOnlyPlugin = {
  name: 'caxton-zod-english-only',
  setup(b) {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) => {
      if (!/[\\/]node_modules[\\/]zod[\\/]v4[\\/]/.test(args.importer)) return undefined;
      return { path: join(dirname(args.importer), '../locales/en.js'), namespace: 'caxton-zod-locales' };
    });
    b.onLoad({ filter: /.*/, namespace: 'caxton-zod-locales' }, (args) => ({
      contents: `export { default as en } from ${JSON.stringify(args.path)};`,
      resolveDir: dirname(args.path),
      loader: 'js',
    }));
  },
};

// The previous build's chunks go first: their names change with their contents.
for (const d of ['cli', 'execution']) {
  for (const f of readdirSync(join(outdir, d))) {
    if (/^chunk-[A-Z0-9]+\.js(\.map)?$/.test(f)) rmSync(join(outdir, d, f));
  }
}

/** What both bundles share; each adds its entries and where its lazy chunks go. */
const common = {
  absWorkingDir: root,
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  sourcesContent: false,
  // Whitespace and syntax only: the names stay, so a stack trace reads without the source map
  // (the package ships no .map files). Not keepNames: with identifiers unminified it only pins
  // the `.name` of the few functions the bundler renames apart (`parse2`), and costs a
  // defineProperty call per function of every module as the module loads (3 % of a start's CPU)
  // and per closure made while serving (about 6.5 KB of garbage per invoke).
  minifyWhitespace: true,
  minifySyntax: true,
  // A package's ES module build first where it ships one (its "module" field), as bundlers for
  // the browser do: esbuild can drop what is not used from it, not from a CommonJS build. Only
  // the OpenTelemetry packages differ, and the CommonJS build of their semantic conventions is
  // all of its 250 KiB, loaded by every start that keeps local spans.
  mainFields: ['module', 'main'],
  external: EXTERNAL,
  plugins: [metaUrlPlugin, zodEnglishOnlyPlugin, findMyWayPlugin, promClientPlugin],
  // CommonJS packages bundled into ES modules still call require() (node built-ins, externals).
  banner: {
    js: "import { createRequire as __caxtonCreateRequire } from 'node:module';\nconst require = __caxtonCreateRequire(import.meta.url);",
  },
  metafile: true,
  logLevel: 'warning',
};

const result = await build({
  ...common,
  entryPoints: { 'cli/main': 'src/cli/main.ts' },
  chunkNames: 'cli/chunk-[hash]',
});

/**
 * The same CLI as one CommonJS file, dist/cli/serve.cjs, for `caxton serve` through V8's code
 * cache (src/cli/code-cache.ts, ADR 0073): `vm.Script` `cachedData` takes classic scripts only.
 * CommonJS output has no code splitting: every lazy chunk is in the file, initialised when asked
 * for and compiled by V8 as it first runs. Its entry is program.ts (main.ts is the ES module entry
 * that runs it). `import.meta.url` is the URL of the module's own file under dist/, computed from
 * the bundle's `__filename`. The dynamic `import()`s left (externals, file URLs) call
 * `_cxImp` (as long as `import`, so the source map's columns hold), the ES module entry's
 * `import()`, which code-cache.ts passes to the function the file is wrapped in (its first line):
 * a `vm.Script`'s own `import()` needs Node's experimental VM modules.
 */
/** The serve bundle's first line (src/cli/code-cache.ts): CommonJS's parameters and the entry's `import()`. */
const SERVE_WRAP_HEAD = '(function (exports, require, module, __filename, __dirname, _cxImp) {\n';
const CJS_META_URL = 'var __caxtonMetaUrl = require("node:url").pathToFileURL(__filename).href;';
const cjsMetaUrlPlugin = {
  name: 'caxton-cjs-import-meta-url',
  setup(b) {
    b.onLoad({ filter: /[\\/]src[\\/].*\.ts$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      if (!text.includes('import.meta.url')) return undefined;
      const rel = relative(src, args.path).replace(/\.ts$/, '.js').split('\\').join('/');
      const own = `new URL(${JSON.stringify(`../${rel}`)}, __caxtonMetaUrl).href`;
      return { contents: text.replaceAll('import.meta.url', own), loader: 'ts' };
    });
  },
};
const cjs = await build({
  ...common,
  entryPoints: { 'cli/serve': 'src/cli/program.ts' },
  outExtension: { '.js': '.cjs' },
  splitting: false,
  format: 'cjs',
  plugins: [cjsMetaUrlPlugin, zodEnglishOnlyPlugin, findMyWayPlugin, promClientPlugin],
  banner: { js: CJS_META_URL },
  write: false,
});
for (const out of cjs.outputFiles) {
  let text = out.text;
  if (out.path.endsWith('.cjs')) {
    // esbuild's metafile lists the dynamic imports of a string it left: as many `import("` as
    // that, so none of the rewritten is inside a string. (An `import(` of a variable, such as the
    // task module's URL, is not listed.)
    const left = Object.values(cjs.metafile.outputs)
      .flatMap((o) => o.imports)
      .filter((i) => i.kind === 'dynamic-import').length;
    const literal = text.match(/(?<![\w$.])import\("/g)?.length ?? 0;
    if (literal !== left) throw new Error(`serve.cjs: ${literal} import(" found, esbuild left ${left} dynamic imports`);
    if (text.includes('_cxImp')) throw new Error('serve.cjs: the name _cxImp is taken');
    text = text.replace(/(?<![\w$.])import\(/g, '_cxImp(');
    // ASCII only, so the entry reads it as latin1: a file with any other character decodes as
    // UTF-8 (~20 ms for these 4 MiB) into a two-byte string. esbuild escapes strings and
    // templates itself; what it leaves (a regular expression's character, a licence comment's
    // name) means the same as a \u escape.
    text = text.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
    if (/\bimport\.meta\b|\bawait import\b/.test(text)) throw new Error('serve.cjs: import.meta left');
    // Written wrapped in the function the entry runs it as (src/cli/code-cache.ts), so the file's
    // text is the script's source: V8 compiles the string read from it as it is, without copying.
    text = `${SERVE_WRAP_HEAD}${text}\n})`;
  } else if (out.path.endsWith('.cjs.map')) {
    // One line more at the top: the wrapper's.
    const map = JSON.parse(out.text);
    map.mappings = `;${map.mappings}`;
    text = JSON.stringify(map);
  }
  writeFileSync(out.path, text);
}

// One level below dist/ like cli/main.js, so the `import.meta.url` rewrite gives the same paths.
// What the task imports only when asked (a script file's reader: zod, TOML) stays a lazy chunk.
const task = await build({
  ...common,
  entryPoints: {
    'execution/task': 'src/execution/task.ts',
    'execution/isolation/process-runner': 'src/execution/isolation/process-runner.ts',
    'execution/isolation/worker-entry': 'src/execution/isolation/worker-entry.ts',
  },
  chunkNames: 'execution/chunk-[hash]',
});
const taskInputs = Object.keys(task.metafile.inputs).length;
// esbuild's account of which inputs went into which output, for finding what a start loads.
if (process.env.CAXTON_BUNDLE_METAFILE)
  writeFileSync(process.env.CAXTON_BUNDLE_METAFILE, JSON.stringify(result.metafile));

const outputs = Object.entries(result.metafile.outputs).filter(([f]) => f.endsWith('.js'));
const entry = outputs.find(([f]) => f.endsWith('cli/main.js'));
const kib = (n) => `${(n / 1024).toFixed(0)} KiB`;
console.log(
  `bundle built: dist/cli/main.js ${kib(entry?.[1].bytes ?? 0)} + ${outputs.length - 1} lazy chunks (${kib(
    outputs.reduce((s, [, o]) => s + o.bytes, 0),
  )} in all); dist/execution/task.js ${kib(Object.values(task.metafile.outputs).find((o) => o.entryPoint)?.bytes ?? 0)} (${taskInputs} modules with the child entries and lazy chunks)`,
);
