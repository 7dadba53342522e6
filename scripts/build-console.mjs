#!/usr/bin/env node
/**
 * Builds the web console (console/) into dist/console: one entry chunk for the shell,
 * one chunk per page (loaded when the page is opened), one stylesheet; content-hashed names
 * under assets/, index.html naming them, and a .br and .gz copy of each text file for the
 * server to send (src/api/routes/console-routes.ts). No source maps ship. docs/console.md.
 */
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist/console');
const BASE = '/ui';

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'assets'), { recursive: true });

const result = await build({
  absWorkingDir: root,
  entryPoints: { main: 'console/src/main.tsx' },
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022', 'chrome110', 'firefox110', 'safari16'],
  minify: true,
  sourcemap: false,
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outdir: join(out, 'assets'),
  entryNames: '[name]-[hash]',
  chunkNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  metafile: true,
  legalComments: 'none',
  define: { 'process.env.NODE_ENV': '"production"' },
  logLevel: 'warning',
});

// The entry's script and stylesheet, by their hashed names, go into index.html.
const outputs = Object.entries(result.metafile.outputs);
const entry = outputs.find(([, o]) => o.entryPoint === 'console/src/main.tsx');
if (!entry) throw new Error('build-console: the entry chunk is missing from the metafile');
const [entryJs, entryMeta] = entry;
const url = (p) => `${BASE}/${relative(out, join(root, p)).split('\\').join('/')}`;
const cssTag = entryMeta.cssBundle ? `<link rel="stylesheet" href="${url(entryMeta.cssBundle)}">` : '';
// The chunks the entry imports statically load with it: preload them.
const preloads = entryMeta.imports
  .filter((i) => i.kind === 'import-statement')
  .map((i) => `<link rel="modulepreload" href="${url(i.path)}">`)
  .join('');
const html = readFileSync(join(root, 'console/index.html'), 'utf8').replace(
  '<!-- assets -->',
  `${cssTag}${preloads}<script type="module" src="${url(entryJs)}"></script>`,
);
writeFileSync(join(out, 'index.html'), html);
// A favicon, so the browser's automatic request does not 404.
writeFileSync(
  join(out, 'favicon.svg'),
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#1f4e79"/><path d="M11.5 4.5a4.5 4.5 0 1 0 0 7" stroke="#fff" stroke-width="2" fill="none"/></svg>\n',
);

// Compressed copies, sent by the server when the browser accepts them.
const walk = (d) =>
  readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : [join(d, n)]));
let initial = 0;
for (const file of walk(out)) {
  if (!/\.(js|css|html|svg|json)$/.test(file)) continue;
  const body = readFileSync(file);
  const gz = gzipSync(body, { level: 9 });
  writeFileSync(`${file}.gz`, gz);
  writeFileSync(
    `${file}.br`,
    brotliCompressSync(body, {
      params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: body.length },
    }),
  );
  if (
    file === join(root, entryJs) ||
    entryMeta.imports.some((i) => i.kind === 'import-statement' && join(root, i.path) === file)
  )
    initial += gz.length;
}
console.log(`console built: dist/console (initial JavaScript ${(initial / 1024).toFixed(1)} KB gzip)`);
