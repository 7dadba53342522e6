#!/usr/bin/env node
/**
 * The `caxton` entry. `caxton serve` runs from the CommonJS bundle through V8's code cache when it
 * can (code-cache.ts, ADR 0073); every other command, and serve whenever the cache cannot be used
 * safely, runs the CLI of this ES module bundle, which imports only the command it runs.
 */
import { crashed, serveFromCodeCache } from './code-cache.js';

// The bundle's dynamic imports come back here: a real `import()` of this ES module, resolved from
// dist/cli/ as the bundle's own location would be, with no experimental VM module loader.
if (!serveFromCodeCache(process.argv, (specifier) => import(specifier)))
  import('./program.js').then(({ runCli }) => runCli(process.argv), crashed).catch(crashed);
