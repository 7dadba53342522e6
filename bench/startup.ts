/**
 * Cold start: spawn → first 200 on an agent request for `caxton serve` (a scripted-model agent, a
 * fresh data dir each time), beside a fastify hello-world started the same way (the floor, same
 * run, reps alternated); and `caxton --version` beside `node -e 0`.
 *
 * `caxton serve` is measured as shipped: the CommonJS serve bundle with V8's code cache (ADR 0073).
 * A restart is the second start of a fresh project: an unmeasured first start writes its cache
 * and the record of what it checked after its first answer, and the timed start must report
 * having used that cache. The ES module path (`CAXTON_CODE_CACHE=off`, what a start without a usable cache
 * runs) is alternated in the same reps, and so is the floor of the cached path
 * (bench/lib/startup-floor.mjs: the same bundle loaded from the same cache, then a bare node:http
 * server answering the POST), which shows how much of a start is Caxton's own work. The cached
 * starts run with `CAXTON_STARTUP_TRACE=1`: their phase marks (src/server/startup-marks.ts) give
 * the breakdown, as medians of each phase's time since the process started and CPU so far.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { note } from './lib/progress.js';
import type { Row, Suite } from './lib/report.js';
import { fmt, summarize } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';
import { firstAnswer, FIRST_CPU, PROJECT } from './lib/startup-project.js';

const ROOT = resolve(import.meta.dirname, '..');
const CLI = join(ROOT, 'dist/cli/main.js');
const HELLO = join(ROOT, 'bench/lib/startup-hello.mjs');
const FLOOR = join(ROOT, 'bench/lib/startup-floor.mjs');
const SERVE_CJS = join(ROOT, 'dist/cli/serve.cjs');
const REPS = Number(process.env.CAXTON_BENCH_STARTUP_REPS ?? 7);

function exitTime(args: string[]): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}`);
  return performance.now() - t0;
}

export const startupSuite: Suite = {
  name: 'startup',
  description:
    'cold start (spawn → first 200 on an agent request) and `caxton --version`, beside fastify and `node -e 0`',
  async run() {
    const tmp = tempDir('caxton-bench-startup-');
    try {
      const template = join(tmp.path, 'template');
      for (const [f, text] of Object.entries(PROJECT)) {
        mkdirSync(join(template, f, '..'), { recursive: true });
        writeFileSync(join(template, f), text);
      }
      const hooks = join(tmp.path, 'hooks');
      mkdirSync(hooks);
      const preload = join(hooks, 'first-cpu.mjs');
      writeFileSync(preload, FIRST_CPU);

      const caxton: number[] = [];
      const fastify: number[] = [];
      const esm: number[] = [];
      const caxtonCpu: number[] = [];
      const fastifyCpu: number[] = [];
      const esmCpu: number[] = [];
      const floor: number[] = [];
      const firstStart: number[] = [];
      const firstCpu: number[] = [];
      const floorCpu: number[] = [];
      /** Per phase mark: its times since the process started and CPU so far, one per cached rep. */
      const phases = new Map<string, { wall: number[]; cpu: number[] }>();
      const version: number[] = [];
      const bare: number[] = [];
      // One unmeasured start of each warms the OS file cache, as every later start finds it.
      const fresh = (i: number) => {
        const dir = join(tmp.path, `run-${i}`);
        cpSync(template, dir, { recursive: true });
        return dir;
      };
      const LOG = { CAXTON_CODE_CACHE_LOG: '1' };
      const TRACED = { ...LOG, CAXTON_STARTUP_TRACE: '1' };
      const WROTE = /caxton code cache: (wrote|not written)/;
      const first = await firstAnswer([CLI, 'serve'], fresh(-1), preload, { env: LOG, until: WROTE });
      if (!/caxton code cache: wrote /.test(first.err)) throw new Error(`no code cache written:\n${first.err}`);
      const cacheDir = join(tmp.path, 'run--1/data/code-cache');
      const cacheKiB = statSync(join(cacheDir, 'serve.bin')).size / 1024;
      /**
       * A project that ran once before: a fresh one, started once unmeasured, which writes its
       * cache and the record of what it checked (src/cli/code-cache-check.ts) after its first
       * answer. A copy of another project's cache would be another file, which a start hashes.
       */
      const ranBefore = async (i: number) => {
        const dir = fresh(i);
        const r = await firstAnswer([CLI, 'serve'], dir, preload, { env: LOG, until: WROTE });
        if (!/caxton code cache: wrote /.test(r.err)) throw new Error(`no code cache written:\n${r.err}`);
        return dir;
      };
      await firstAnswer([CLI, 'serve'], fresh(-2), preload, { env: { CAXTON_CODE_CACHE: 'off' } });
      await firstAnswer([HELLO], template, preload);
      const floorArgs = [FLOOR, SERVE_CJS, join(cacheDir, 'serve.bin')];
      await firstAnswer(floorArgs, template, preload);
      for (let i = 0; i < REPS; i++) {
        note(`startup rep ${i + 1}/${REPS}`);
        // Alternated, each first in turn, so a busy moment of the machine falls on both.
        const kinds = [
          async () => {
            const r = await firstAnswer([CLI, 'serve'], await ranBefore(i), preload, { env: TRACED });
            if (!/caxton code cache: used /.test(r.err)) throw new Error(`the code cache was not used:\n${r.err}`);
            caxton.push(r.wall);
            caxtonCpu.push(r.cpu);
            for (const m of r.err.matchAll(/^caxton startup: (.+) (\S+) (\S+)$/gm)) {
              const p = phases.get(m[1]!) ?? { wall: [], cpu: [] };
              p.wall.push(Number(m[2]));
              p.cpu.push(Number(m[3]));
              phases.set(m[1]!, p);
            }
          },
          async () => {
            const r = await firstAnswer(floorArgs, template, preload);
            floor.push(r.wall);
            floorCpu.push(r.cpu);
          },
          async () => {
            // A project's first start: no data directory yet, the cache the build shipped.
            const r = await firstAnswer([CLI, 'serve'], fresh(2 * REPS + 2 + i), preload, { env: LOG });
            if (!/caxton code cache: used .*dist\/cli\/serve\.bin/.test(r.err))
              throw new Error(`the shipped code cache was not used (run "npm run build"):\n${r.err}`);
            firstStart.push(r.wall);
            firstCpu.push(r.cpu);
          },
          async () => {
            const r = await firstAnswer([HELLO], template, preload);
            fastify.push(r.wall);
            fastifyCpu.push(r.cpu);
          },
          async () => {
            const r = await firstAnswer([CLI, 'serve'], fresh(REPS + 1 + i), preload, {
              env: { CAXTON_CODE_CACHE: 'off' },
            });
            esm.push(r.wall);
            esmCpu.push(r.cpu);
          },
        ];
        // Rotated, each first in turn, so a busy moment of the machine falls on all of them.
        for (let j = 0; j < kinds.length; j++) await kinds[(i + j) % kinds.length]!();
        for (let j = 0; j < 3; j++) {
          const two = [() => version.push(exitTime([CLI, '--version'])), () => bare.push(exitTime(['-e', '0']))];
          if ((i + j) % 2) two.reverse();
          for (const f of two) f();
        }
      }

      const c = summarize(caxton);
      const f = summarize(fastify);
      const cc = summarize(caxtonCpu);
      const fc = summarize(fastifyCpu);
      const e = summarize(esm);
      const ec = summarize(esmCpu);
      const fl = summarize(floor);
      const fs = summarize(firstStart);
      const fsc = summarize(firstCpu);
      const flc = summarize(floorCpu);
      const v = summarize(version);
      const b = summarize(bare);
      const rows: Row[] = [
        {
          metric: `cold start: spawn → first 200 on POST /api/v1/agents/echo/invoke, \`caxton serve\` as shipped, from the code cache (the second start of a fresh project, from the ${fmt(cacheKiB, 0)} KiB cache its unmeasured first start wrote, ${REPS} reps)`,
          value: `p50 ${fmt(c.p50, 1)} ms (min ${fmt(c.min, 1)}, max ${fmt(c.max, 1)})`,
          baseline: `fastify hello-world, same way: p50 ${fmt(f.p50, 1)} ms (min ${fmt(f.min, 1)})`,
          target: '≤ 300 ms and ≤ 2× fastify',
          verdict: c.p50 <= 300 && c.p50 <= 2 * f.p50 ? 'pass' : 'fail',
        },
        {
          metric: 'restart ratio (p50): the start above, as a project that ran before starts',
          value: `${fmt(c.p50 / f.p50)} ×`,
          baseline: 'fastify = 1',
          target: '≤ 1.3×',
          verdict: c.p50 <= 1.3 * f.p50 ? 'pass' : 'fail',
        },
        {
          metric: `first start: a fresh project (no data directory), from the cache the build ships (dist/cli/serve.bin), ${REPS} reps: spawn → first 200 / CPU`,
          value: `p50 ${fmt(fs.p50, 1)} ms (min ${fmt(fs.min, 1)}) / ${fmt(fsc.p50, 1)} ms (min ${fmt(fsc.min, 1)})`,
          baseline: `ratios to fastify ${fmt(fs.p50 / f.p50)} × / ${fmt(fsc.p50 / fc.p50)} ×`,
          target: '≤ 1.6× fastify',
          verdict: fs.p50 <= 1.6 * f.p50 ? 'pass' : 'fail',
        },
        {
          metric: `cold start: CPU time (user + system) up to the first 200, \`caxton serve\` from the code cache (${REPS} reps)`,
          value: `p50 ${fmt(cc.p50, 1)} ms (min ${fmt(cc.min, 1)})`,
          baseline: `fastify hello-world: p50 ${fmt(fc.p50, 1)} ms (min ${fmt(fc.min, 1)})`,
        },
        { metric: 'cold start CPU ratio (p50)', value: `${fmt(cc.p50 / fc.p50)} ×`, baseline: 'fastify = 1' },
        {
          metric: `floor of the cached path: the same bundle from the same cache, then a bare node:http answer (bench/lib/startup-floor.mjs, ${REPS} reps): spawn → first 200 / CPU`,
          value: `p50 ${fmt(fl.p50, 1)} ms (min ${fmt(fl.min, 1)}) / ${fmt(flc.p50, 1)} ms (min ${fmt(flc.min, 1)})`,
          baseline: `Caxton's own work above it: ${fmt(c.p50 - fl.p50, 1)} ms / ${fmt(cc.p50 - flc.p50, 1)} ms of CPU`,
        },
        {
          metric: `phases of \`caxton serve\` from the code cache (CAXTON_STARTUP_TRACE marks, p50 of ${REPS}): ms since the process started / CPU ms so far`,
          value: [...phases]
            .map(([name, p]) => `${name} ${fmt(summarize(p.wall).p50, 1)} / ${fmt(summarize(p.cpu).p50, 1)}`)
            .join('; '),
          baseline: '—',
        },
        {
          metric: `cold start without the code cache (ES module path, \`CAXTON_CODE_CACHE=off\`, ${REPS} reps): spawn → first 200 / CPU`,
          value: `p50 ${fmt(e.p50, 1)} ms (min ${fmt(e.min, 1)}) / ${fmt(ec.p50, 1)} ms (min ${fmt(ec.min, 1)})`,
          baseline: `ratios to fastify ${fmt(e.p50 / f.p50)} × / ${fmt(ec.p50 / fc.p50)} ×`,
        },
        {
          metric: `\`caxton --version\`, spawn → exit (${version.length} runs)`,
          value: `p50 ${fmt(v.p50, 1)} ms (min ${fmt(v.min, 1)})`,
          baseline: `\`node -e 0\`: p50 ${fmt(b.p50, 1)} ms (min ${fmt(b.min, 1)})`,
          target: '≤ 1.5× node -e 0',
          verdict: v.p50 <= 1.5 * b.p50 ? 'pass' : 'fail',
        },
        { metric: '`caxton --version` ratio (p50)', value: `${fmt(v.p50 / b.p50)} ×`, baseline: '`node -e 0` = 1' },
      ];
      return {
        rows,
        raw: {
          reps: REPS,
          caxton,
          fastify,
          esm,
          caxtonCpu,
          fastifyCpu,
          esmCpu,
          floor,
          floorCpu,
          firstStart,
          firstCpu,
          phases: Object.fromEntries(phases),
          cacheKiB,
          version,
          bare,
        },
      };
    } finally {
      tmp.remove();
    }
  },
};
