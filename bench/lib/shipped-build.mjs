/**
 * `node --import ./bench/lib/shipped-build.mjs` (after tsx): the modules of `src/` a benchmark
 * imports are loaded from their build in `dist/` (shipped-build-hooks.mjs says why).
 * `BENCH_SOURCE=1` keeps the source.
 */
import { register } from 'node:module';

if (process.env.BENCH_SOURCE !== '1') register('./shipped-build-hooks.mjs', import.meta.url);
