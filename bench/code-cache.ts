/**
 * Experiment: what V8's code cache buys `caxton serve`'s cold start. Four starts, alternated
 * (each rep in a rotated order) so a busy moment of the machine falls on all of them:
 *
 * - `esm`: the shipped bundle, `node dist/cli/main.js serve`;
 * - `cjs`: the same sources as one CommonJS bundle (bench/lib/code-cache-build.mjs), compiled
 *   through `vm.Script` without a cache;
 * - `cjs+cache`: the same, with the code cache a previous start wrote after its first answer;
 * - `cjs+early`: the same, with a code cache written right after the compile, before anything
 *   ran (what V8 compiles eagerly only: the functions compiled as they first run are not in it);
 * - `fastify`: the hello-world floor of bench/startup.ts.
 *
 * Each: spawn → the first 200 on POST /api/v1/agents/echo/invoke (fresh project each time) and
 * the process's CPU time (user + system) when that answer is sent.
 *
 *   npm run build && node bench/lib/code-cache-build.mjs && \
 *     CAXTON_BENCH_CC_REPS=10 node --import tsx bench/code-cache.ts
 */
import { cpSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fmt, summarize } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';
import { firstAnswer, FIRST_CPU, PROJECT } from './lib/startup-project.js';

const ROOT = resolve(import.meta.dirname, '..');
const CLI = join(ROOT, 'dist/cli/main.js');
const LAUNCH = join(ROOT, 'dist/cli/serve-cjs-launch.cjs');
const HELLO = join(ROOT, 'bench/lib/startup-hello.mjs');
const REPS = Number(process.env.CAXTON_BENCH_CC_REPS ?? 10);
/** The CommonJS launcher's dynamic import() warns that it is experimental; every start runs with the same flags. */
const NODE_ARGS = ['--no-warnings'];

const tmp = tempDir('caxton-bench-cc-');
try {
  const template = join(tmp.path, 'template');
  for (const [f, text] of Object.entries(PROJECT)) {
    mkdirSync(join(template, f, '..'), { recursive: true });
    writeFileSync(join(template, f), text);
  }
  const preload = join(tmp.path, 'first-cpu.mjs');
  writeFileSync(preload, FIRST_CPU);
  const cacheFile = join(tmp.path, 'code-cache.bin');
  let n = 0;
  const fresh = () => {
    const dir = join(tmp.path, `run-${n++}`);
    cpSync(template, dir, { recursive: true });
    return dir;
  };
  const kinds = {
    esm: () => firstAnswer([CLI, 'serve'], fresh(), preload, { nodeArgs: NODE_ARGS }),
    cjs: () => firstAnswer([LAUNCH, 'serve'], fresh(), preload, { nodeArgs: NODE_ARGS, env: { CAXTON_CC: 'off' } }),
    'cjs+cache': () =>
      firstAnswer([LAUNCH, 'serve'], fresh(), preload, {
        nodeArgs: NODE_ARGS,
        env: { CAXTON_CC: 'on', CAXTON_CC_FILE: cacheFile },
        // A start that writes the cache does so just after its first answer.
        linger: 300,
      }),
    'cjs+early': () =>
      firstAnswer([LAUNCH, 'serve'], fresh(), preload, {
        nodeArgs: NODE_ARGS,
        env: { CAXTON_CC: 'early', CAXTON_CC_FILE: `${cacheFile}.early` },
      }),
    fastify: () => firstAnswer([HELLO], template, preload, { nodeArgs: NODE_ARGS }),
  } as const;
  type Kind = keyof typeof kinds;
  const names = Object.keys(kinds) as Kind[];
  // Unmeasured: warms the OS file cache and writes the code cache.
  for (const k of names) {
    const s = await kinds[k]();
    if (k.startsWith('cjs+') && !/code-cache-written/.test(s.err)) throw new Error(`${k}: no code cache written`);
  }
  const wall: Record<Kind, number[]> = { esm: [], cjs: [], 'cjs+cache': [], 'cjs+early': [], fastify: [] };
  const cpu: Record<Kind, number[]> = { esm: [], cjs: [], 'cjs+cache': [], 'cjs+early': [], fastify: [] };
  for (let i = 0; i < REPS; i++) {
    process.stderr.write(`rep ${i + 1}/${REPS}\n`);
    for (let j = 0; j < names.length; j++) {
      const k = names[(i + j) % names.length]!;
      const s = await kinds[k]();
      if (k.startsWith('cjs+') && /code-cache-written/.test(s.err))
        throw new Error(`${k}: the code cache was rejected`);
      wall[k].push(s.wall);
      cpu[k].push(s.cpu);
    }
  }
  const f = summarize(cpu.fastify);
  const fw = summarize(wall.fastify);
  console.log(`| p50 of ${REPS} (min) | CPU to first 200 | ratio to fastify | spawn → first 200 | ratio |`);
  console.log('| --- | --- | --- | --- | --- |');
  for (const k of names) {
    const c = summarize(cpu[k]);
    const w = summarize(wall[k]);
    console.log(
      `| ${k} | ${fmt(c.p50, 1)} ms (${fmt(c.min, 1)}) | ${fmt(c.p50 / f.p50)} × | ${fmt(w.p50, 1)} ms (${fmt(w.min, 1)}) | ${fmt(w.p50 / fw.p50)} × |`,
    );
  }
  const kib = (f: string) => `${(statSync(f).size / 1024).toFixed(0)} KiB`;
  const bundle = join(ROOT, 'dist/cli/serve-cjs.cjs');
  console.log(
    `bundle ${kib(bundle)}; code cache after the first answer ${kib(cacheFile)}, before running ${kib(`${cacheFile}.early`)}`,
  );
  console.log(JSON.stringify({ reps: REPS, cpu, wall }));
} finally {
  tmp.remove();
}
