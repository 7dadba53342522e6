/**
 * Runs in flight per isolation mode while the model is slow: a stand-in OpenAI-compatible model
 * over HTTP that answers every chat completion after BENCH_MODEL_MS (500) ms, one `caxton serve`
 * child process per mode (the build in dist/, default settings but `pool_size` = BENCH_POOL, 2;
 * one agent in that mode), both up throughout, and waves of N invokes sent at once
 * (BENCH_INFLIGHT, default 10,100,300,1000), the modes alternated within each rep (BENCH_REPS, 3;
 * the order flips every rep). For each wave: p50 and p99 of its requests, and the RSS of that
 * mode's server and every process under it (its pool) at the wave's peak. RSS per run is that
 * peak over the same server's RSS after the warm-up, divided by N: heaps keep what a wave made
 * them grow to, so it is an upper bound read at the largest N. `context` is the same-run baseline.
 * BENCH_MODES (context,process) and BENCH_RUNS_PER_MEMBER (unset) change what runs.
 * Not a suite of bench/run.ts; run: `npm run build && node --import tsx bench/isolation-inflight.ts`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { processTree } from './lib/proc-cpu.js';
import { fmt, summarize } from './lib/stats.js';
import { tempDir, type TempDir } from './lib/tmp.js';

const num = (name: string, def: number): number => {
  const v = process.env[name];
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : def;
};
const MODEL_MS = num('BENCH_MODEL_MS', 500);
const POOL = num('BENCH_POOL', 2);
const REPS = num('BENCH_REPS', 3);
const IN_FLIGHT = (process.env.BENCH_INFLIGHT ?? '10,100,300,1000').split(',').map(Number);
const MODES = (process.env.BENCH_MODES ?? 'context,process').split(',');
/** `[execution] runs_per_member` of the servers when set (1: one run at a time per member, as before ADR 0134). */
const RUNS_PER_MEMBER = process.env.BENCH_RUNS_PER_MEMBER;
const MAIN = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));

/** The stand-in model: every chat completion is answered after MODEL_MS. */
function startModel(): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      setTimeout(() => {
        const body = JSON.stringify({
          id: 'chatcmpl-bench',
          object: 'chat.completion',
          created: Math.floor(Date.now() / 1000),
          model: 'bench',
          choices: [
            {
              index: 0,
              message: { role: 'assistant', content: 'ok', refusal: null },
              finish_reason: 'stop',
              logprobs: null,
            },
          ],
          usage: { prompt_tokens: 10, completion_tokens: 1, total_tokens: 11 },
        });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      }, MODEL_MS);
    });
  });
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      resolve({ server, url: `http://127.0.0.1:${port}/v1` });
    }),
  );
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** RSS in bytes of `pid` and every process under it (the pool's children), from /proc. */
function treeRss(pid: number): number {
  let sum = 0;
  for (const p of processTree(pid)) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) sum += Number(m[1]) * 1024;
    } catch {
      // exited meanwhile
    }
  }
  return sum;
}

const agentToml = (mode: string): string => `name = "bench-${mode}"
version = "1.0.0"
description = "In-flight benchmark agent (${mode} isolation)"
capabilities = ["benchmarking"]
system_prompt = "Answer briefly."

[execution]
isolation = "${mode}"
`;

async function startCaxton(dir: string, mode: string, modelUrl: string) {
  mkdirSync(join(dir, 'agents'), { recursive: true });
  writeFileSync(join(dir, 'agents', `bench-${mode}.toml`), agentToml(mode));
  writeFileSync(
    join(dir, 'caxton.toml'),
    `data_dir = "data"\nagents_dir = "agents"\n\n[metrics]\nenabled = false\n\n[logging]\nlevel = "warn"\n\n[auth]\nenabled = false\n\n` +
      `[llm]\ndefault_provider = "bench"\n\n[llm.providers.bench]\ntype = "openai"\nbase_url = "${modelUrl}"\nmodel = "bench"\n\n` +
      `[execution]\npool_size = ${POOL}\n${RUNS_PER_MEMBER ? `runs_per_member = ${Number(RUNS_PER_MEMBER)}\n` : ''}`,
  );
  const port = await freePort();
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CAXTON_')));
  const child = spawn(process.execPath, [MAIN, 'serve', '--config', join(dir, 'caxton.toml'), '--port', String(port)], {
    env,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  for (const t0 = Date.now(); ; await sleep(100)) {
    if (child.exitCode !== null) throw new Error(`caxton serve exited with ${child.exitCode}`);
    if (Date.now() - t0 > 60_000) throw new Error('caxton serve was not ready within 60 s');
    const ok = await fetch(`${url}/ready`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) break;
  }
  return { child, url };
}

interface Wave {
  mode: string;
  inFlight: number;
  p50: number;
  p99: number;
  failed: number;
  peakMiB: number;
  rssPerRunMiB: number;
}

async function wave(pool: Pool, pid: number, mode: string, n: number, base: number): Promise<Wave> {
  let peak = treeRss(pid);
  const sampler = setInterval(() => (peak = Math.max(peak, treeRss(pid))), 50);
  const body = JSON.stringify({ request: 'hello' });
  const ms = new Float64Array(n);
  let failed = 0;
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const t0 = performance.now();
      const r = await pool.request({
        method: 'POST',
        path: `/api/v1/agents/bench-${mode}/invoke`,
        headers: { 'content-type': 'application/json' },
        body,
        headersTimeout: 600_000,
        bodyTimeout: 600_000,
      });
      const text = await r.body.text();
      ms[i] = performance.now() - t0;
      if (r.statusCode !== 200) {
        if (failed++ === 0) process.stderr.write(`[bench] ${mode} ${r.statusCode}: ${text.slice(0, 300)}\n`);
      }
    }),
  );
  clearInterval(sampler);
  const s = summarize(ms);
  return {
    mode,
    inFlight: n,
    p50: s.p50,
    p99: s.p99,
    failed,
    peakMiB: peak / 2 ** 20,
    rssPerRunMiB: Math.max(0, peak - base) / n / 2 ** 20,
  };
}

const model = await startModel();
const servers = new Map<string, { child: ChildProcess; pool: Pool; dir: TempDir; base: number }>();
const load0 = loadavg()[0]!;
const waves: Wave[] = [];
try {
  for (const mode of MODES) {
    const dir = tempDir('caxton-inflight-');
    const { child, url } = await startCaxton(dir.path, mode, model.url);
    const pool = new Pool(url, { connections: Math.max(...IN_FLIGHT) + 10, pipelining: 1 });
    servers.set(mode, { child, pool, dir, base: 0 });
  }
  // Warm-up: the pool started and the code paths run, then the RSS every wave is measured against.
  for (const [mode, s] of servers) await wave(s.pool, s.child.pid!, mode, 20, 0);
  await sleep(1_000);
  for (const [mode, s] of servers) {
    s.base = treeRss(s.child.pid!);
    process.stderr.write(`[bench] ${mode}: RSS after warm-up (server and pool) ${fmt(s.base / 2 ** 20, 0)} MiB\n`);
  }
  for (let rep = 0; rep < REPS; rep++) {
    const order = rep % 2 === 0 ? MODES : [...MODES].reverse();
    for (const n of IN_FLIGHT) {
      for (const mode of order) {
        const s = servers.get(mode)!;
        const w = await wave(s.pool, s.child.pid!, mode, n, s.base);
        waves.push(w);
        process.stderr.write(
          `[bench] rep ${rep + 1} ${mode} ${n}: p50 ${fmt(w.p50, 0)} ms p99 ${fmt(w.p99, 0)} ms, peak ${fmt(w.peakMiB, 0)} MiB, ${fmt(w.rssPerRunMiB, 2)} MiB/run${w.failed ? `, ${w.failed} failed` : ''}\n`,
        );
        await sleep(500);
      }
    }
  }
} finally {
  for (const s of servers.values()) {
    await s.pool.close();
    s.child.kill('SIGTERM');
    if (s.child.exitCode === null) await new Promise((r) => s.child.once('exit', r));
    s.dir.remove();
  }
  model.server.close();
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};
console.log(
  `model ${MODEL_MS} ms, pool_size ${POOL}${RUNS_PER_MEMBER ? `, runs_per_member ${RUNS_PER_MEMBER}` : ''}, ${REPS} reps (medians), load ${fmt(load0, 2)} → ${fmt(loadavg()[0]!, 2)}`,
);
console.log('| mode | in flight | p50 ms | p99 ms | peak RSS MiB (server + pool) | RSS MiB per run (max) | failed |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const n of IN_FLIGHT) {
  for (const mode of MODES) {
    const ws = waves.filter((w) => w.mode === mode && w.inFlight === n);
    console.log(
      `| ${mode} | ${n} | ${fmt(median(ws.map((w) => w.p50)), 0)} | ${fmt(median(ws.map((w) => w.p99)), 0)} | ${fmt(median(ws.map((w) => w.peakMiB)), 0)} | ${fmt(Math.max(...ws.map((w) => w.rssPerRunMiB)), 2)} | ${ws.reduce((a, w) => a + w.failed, 0)} |`,
    );
  }
}
