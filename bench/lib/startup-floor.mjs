// The floor of `caxton serve` from the code cache (bench/startup.ts): what the entry does before
// the CLI runs, and nothing after. It reads dist/cli/serve.cjs and the cache file as
// src/cli/code-cache.ts does on a restart (which hashes neither: their record says they have not
// changed), compiles the bundle with the cache (it must be accepted), runs its top level (every
// module is initialised only when first asked for), then answers the agent POST
// from a bare node:http server. The rest of a start is Caxton's own work: configuration, modules,
// components, routes.
//
// Usage: node startup-floor.mjs BUNDLE CACHE_FILE
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { Script } from 'node:vm';

const [bundle, cacheFile] = process.argv.slice(2);
const bytes = readFileSync(bundle);
const file = readFileSync(cacheFile);
// The cache file's header: a 10-byte magic, the key and the data's SHA-256 (code-cache.ts).
const data = file.subarray(10 + 64);
// The build writes the bundle wrapped in the function it runs as.
const script = new Script(bytes.toString('latin1'), { filename: bundle, cachedData: data });
if (script.cachedDataRejected) throw new Error(`${cacheFile}: rejected by V8`);
const module = { exports: {} };
script
  .runInThisContext()
  .call(module.exports, module.exports, createRequire(bundle), module, bundle, dirname(bundle), (s) => import(s));
if (typeof module.exports.runCli !== 'function') throw new Error('the bundle exports no runCli');

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = JSON.stringify({ content: 'hello', request: JSON.parse(Buffer.concat(chunks).toString() || 'null') });
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  });
});
server.listen(0, '127.0.0.1', () => process.stderr.write(`listening on http://127.0.0.1:${server.address().port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
