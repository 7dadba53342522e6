/**
 * Caxton beside Mastra, the agent framework users compare it with: the same zero-latency model
 * (Caxton's scripted provider; for Mastra a model object written to the AI SDK v2 interface), the
 * same calculator tool, each server in its own process started the same way, alternated in equal
 * rounds. Figures per server process only (/proc): cold start (spawn → first 200), sequential
 * latency, throughput, CPU per request and RSS, for a text answer and for one with a tool call.
 *
 * Mastra is installed on first use into a private cache directory (CAXTON_BENCH_MASTRA_DIR, by
 * default ~/.cache/caxton-bench/mastra-VERSION), never into the project's dependencies.

 */
import { spawnSync } from 'node:child_process';
import { Agent } from 'node:http';
import { cpSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { postKeptAlive } from './lib/keepalive-post.mjs';
import { spawnListening } from './lib/listening.js';
import { load } from './lib/load.js';
import { processCpuSeconds, rssKiB } from './lib/proc-cpu.js';
import { note } from './lib/progress.js';
import type { Row, Suite } from './lib/report.js';
import { fmt, median, summarize } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';

const ROOT = resolve(import.meta.dirname, '..');
const CLI = join(ROOT, 'dist/cli/main.js');
const MASTRA_SERVER = join(ROOT, 'bench/lib/mastra-server.mjs');
/** The floor of the sequential tail: a fastify hello-world started as the servers are (bench/startup.ts's floor). */
const HELLO_SERVER = join(ROOT, 'bench/lib/startup-hello.mjs');
/** The newest Mastra that runs on Node 20, and the zod it was measured with. */
export const MASTRA_VERSION = '0.24.9';
const ZOD_VERSION = '3.25.76';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const STARTS = Number(process.env.BENCH_STARTS ?? 5);
const SEQUENTIAL = Number(process.env.BENCH_QUERIES ?? 1000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
/** Unmeasured sequential requests before the measured ones. */
const WARMUP = Number(process.env.BENCH_WARMUP ?? 200);
/**
 * The client's own young generation is collected between requests, every this many, outside the
 * timed window (BENCH_CLIENT_GC=0: not): left alone, the client's scavenges (about one per 100
 * requests) landed inside 1 % of the timed requests, the very percentile measured, on both servers.
 */
const CLIENT_GC_EVERY = 50;
const clientGc = process.env.BENCH_CLIENT_GC === '0' ? undefined : globalThis.gc;

const PROJECT: Record<string, string> = {
  'caxton.toml':
    'data_dir = "data"\nagents_dir = "agents"\n[server]\nhost = "127.0.0.1"\nport = 0\n[auth]\nenabled = false\n[llm]\ndefault_provider = "fake"\n[llm.providers.fake]\ntype = "scripted"\nscript = "replies.toml"\n',
  'replies.toml':
    'fallback = "The answer is 42."\n[[rules]]\nmatch = "calculate"\n[[rules.turns]]\ntool_calls = [{ name = "calculator", arguments = { expression = "6*7" } }]\n[[rules.turns]]\ncontent = "The answer is {{tool_result.calculator}}."\n',
  'agents/echo.toml':
    'name = "echo"\ndescription = "answers, with the calculator when asked to calculate"\ntools = ["calculator"]\nsystem_prompt = "Answer."\n',
};

type Kind = 'caxton' | 'mastra';
const TEXT = JSON.stringify({ request: 'hi' });
const TOOL = JSON.stringify({ request: 'calculate 6*7' });

/** Installs Mastra into its cache directory unless it is there; returns the directory. */
export function ensureMastra(): string {
  const dir = process.env.CAXTON_BENCH_MASTRA_DIR ?? join(homedir(), '.cache/caxton-bench', `mastra-${MASTRA_VERSION}`);
  if (existsSync(join(dir, 'node_modules/@mastra/core/package.json'))) return dir;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ private: true, dependencies: { '@mastra/core': MASTRA_VERSION, zod: ZOD_VERSION } }),
  );
  note(`installing @mastra/core@${MASTRA_VERSION} into ${dir} (once; about 240 MB)`);
  const r = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error'], {
    cwd: dir,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (r.status !== 0)
    throw new Error(`npm install of @mastra/core@${MASTRA_VERSION} in ${dir} failed (exit ${r.status})`);
  return dir;
}

interface Running {
  url: string;
  pid: number;
  path: string;
  stop(): Promise<void>;
}

/** Starts one server; resolves once it answered its first request (the cold-start figure). */
async function start(kind: Kind, mastraDir: string, project: string): Promise<{ server: Running; coldMs: number }> {
  const t0 = performance.now();
  const args = kind === 'caxton' ? [CLI, 'serve'] : [MASTRA_SERVER];
  const { url, pid, stop } = await spawnListening(args, kind, {
    cwd: project,
    env: { ...process.env, MASTRA_DIR: mastraDir },
  });
  const path = kind === 'caxton' ? '/api/v1/agents/echo/invoke' : '/';
  const first = await ask(url + path, TEXT);
  if (!first.includes('42')) throw new Error(`${kind}: the first answer was ${first.slice(0, 300)}`);
  const coldMs = performance.now() - t0;
  return { server: { url, pid, path, stop }, coldMs };
}

async function ask(url: string, body: string): Promise<string> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const text = await r.text();
  if (r.status !== 200) throw new Error(`POST ${url} answered ${r.status}: ${text.slice(0, 300)}`);
  return text;
}

/** SEQUENTIAL requests one after another on one kept-alive connection, after WARMUP to warm up. */
async function sequential(url: string, body: string): Promise<{ p50: number; p99: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const target = new URL(url);
  const bytes = Buffer.from(body);
  for (let i = 0; i < WARMUP; i++) await postKeptAlive(agent, target, bytes);
  const lat = new Float64Array(SEQUENTIAL);
  for (let i = 0; i < SEQUENTIAL; i++) {
    if (clientGc && i % CLIENT_GC_EVERY === 0) clientGc({ type: 'minor' });
    const t0 = performance.now();
    await postKeptAlive(agent, target, bytes);
    lat[i] = performance.now() - t0;
  }
  agent.destroy();
  const s = summarize(lat);
  return { p50: s.p50, p99: s.p99 };
}

/**
 * The tail this machine gives any server under the same client: a fastify hello-world in a fresh
 * process answering the same POST, measured with the same sequential loop. A p99 ÷ p50 below the
 * floor's is out of any server's reach here (scheduling, the loopback stack, the client).
 */
async function floorTail(): Promise<{ p50: number; p99: number }> {
  const hello = await spawnListening([HELLO_SERVER], 'the fastify hello-world');
  try {
    return await sequential(hello.url + '/api/v1/agents/echo/invoke', TEXT);
  } finally {
    await hello.stop();
  }
}

interface Figures {
  cold_ms: number[];
  text_p50: number[];
  text_p99: number[];
  tool_p50: number[];
  tool_p99: number[];
  text_rps: number[];
  tool_rps: number[];
  text_cpu_us: number[];
  tool_cpu_us: number[];
  rss_mib: number[];
}

const empty = (): Figures => ({
  cold_ms: [],
  text_p50: [],
  text_p99: [],
  tool_p50: [],
  tool_p99: [],
  text_rps: [],
  tool_rps: [],
  text_cpu_us: [],
  tool_cpu_us: [],
  rss_mib: [],
});

/** One round for one server: cold starts, then sequential latency, then load with CPU counted. */
async function round(kind: Kind, mastraDir: string, template: string, scratch: string, f: Figures): Promise<void> {
  for (let i = 0; i < STARTS; i++) {
    const project = join(scratch, `${kind}-cold-${f.cold_ms.length}`);
    cpSync(template, project, { recursive: true });
    const { server, coldMs } = await start(kind, mastraDir, project);
    f.cold_ms.push(coldMs);
    await server.stop();
  }
  const project = join(scratch, `${kind}-load-${f.text_rps.length}`);
  cpSync(template, project, { recursive: true });
  const { server } = await start(kind, mastraDir, project);
  try {
    const url = server.url + server.path;
    for (const [body, p50, p99, rps, cpu] of [
      [TEXT, f.text_p50, f.text_p99, f.text_rps, f.text_cpu_us],
      [TOOL, f.tool_p50, f.tool_p99, f.tool_rps, f.tool_cpu_us],
    ] as const) {
      const s = await sequential(url, body);
      p50.push(s.p50);
      p99.push(s.p99);
      const cpu0 = processCpuSeconds(server.pid);
      const r = await load({
        url,
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json' },
        duration: SECONDS,
        connections: 10,
      });
      const cpu1 = processCpuSeconds(server.pid);
      if (r.non2xx > 0 || r.errors > 0)
        throw new Error(`${kind}: ${r.non2xx} non-2xx and ${r.errors} errors under load`);
      rps.push(r.req_per_s);
      cpu.push(((cpu1 - cpu0) * 1e6) / r.requests);
    }
    f.rss_mib.push(rssKiB(server.pid) / 1024);
  } finally {
    await server.stop();
  }
}

const med = median;

interface FloorTail {
  p50: number[];
  p99: number[];
}

const pushTail = (f: FloorTail, s: { p50: number; p99: number }) => {
  f.p50.push(s.p50);
  f.p99.push(s.p99);
};

/** The tail target's row: Caxton's p99 ÷ p50 (medians of the rounds) beside the floor's of the same rounds. */
function tailRow(p50: number[], p99: number[], floor: FloorTail, more = ''): Row {
  const ratio = med(p99) / med(p50);
  return {
    metric: 'text answer, sequential p99 ÷ p50',
    value: `${fmt(ratio)} ×`,
    baseline: `fastify hello-world, same client: p50 ${fmt(med(floor.p50))} / p99 ${fmt(med(floor.p99))} ms (${fmt(med(floor.p99) / med(floor.p50))} ×)${more}`,
    target: 'p99 ≤ 2.5 × p50',
    verdict: ratio <= 2.5 ? 'pass' : 'fail',
  };
}

export const mastraSuite: Suite = {
  name: 'mastra',
  description: `Caxton beside Mastra ${MASTRA_VERSION}: same zero-latency model and tool, alternated rounds, per-process figures`,
  async run() {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
    const tmp = tempDir('caxton-bench-mastra-');
    try {
      const template = join(tmp.path, 'template');
      for (const [file, text] of Object.entries(PROJECT)) {
        mkdirSync(join(template, file, '..'), { recursive: true });
        writeFileSync(join(template, file), text);
      }
      const mastraDir = ensureMastra();
      const figures: Record<Kind, Figures> = { caxton: empty(), mastra: empty() };
      const floor: FloorTail = { p50: [], p99: [] };
      for (let r = 0; r < ROUNDS; r++) {
        const order: Kind[] = r % 2 === 0 ? ['caxton', 'mastra'] : ['mastra', 'caxton'];
        for (const kind of order) {
          note(`round ${r + 1}/${ROUNDS}: ${kind}`);
          await round(kind, mastraDir, template, tmp.path, figures[kind]);
        }
        note(`round ${r + 1}/${ROUNDS}: the floor (fastify hello-world, sequential)`);
        pushTail(floor, await floorTail());
      }
      const c = figures.caxton;
      const m = figures.mastra;
      const ratio = (a: number[], b: number[]) => med(a) / med(b);
      const row = (metric: string, a: number[], b: number[], unit: string, target?: string, pass?: boolean): Row => ({
        metric,
        value: `${fmt(med(a))} ${unit} (${fmt(ratio(a, b))} ×)`,
        baseline: `Mastra ${fmt(med(b))} ${unit}`,
        ...(target !== undefined && { target, verdict: pass ? 'pass' : 'fail' }),
      });
      const rows: Row[] = [
        row('cold start, spawn → first 200', c.cold_ms, m.cold_ms, 'ms'),
        row('text answer, sequential p50', c.text_p50, m.text_p50, 'ms'),
        row('text answer, sequential p99', c.text_p99, m.text_p99, 'ms'),
        tailRow(c.text_p50, c.text_p99, floor, `; Mastra ${fmt(med(m.text_p99) / med(m.text_p50))} ×`),
        row('one tool call, sequential p50', c.tool_p50, m.tool_p50, 'ms'),
        row(
          'text answer, throughput (10 connections)',
          c.text_rps,
          m.text_rps,
          'req/s',
          '≥ 5 × Mastra',
          ratio(c.text_rps, m.text_rps) >= 5,
        ),
        row('one tool call, throughput (10 connections)', c.tool_rps, m.tool_rps, 'req/s'),
        row(
          'text answer, server CPU per request',
          c.text_cpu_us,
          m.text_cpu_us,
          'µs',
          '≤ 0.2 × Mastra',
          ratio(c.text_cpu_us, m.text_cpu_us) <= 0.2,
        ),
        row('one tool call, server CPU per request', c.tool_cpu_us, m.tool_cpu_us, 'µs'),
        row('RSS after the load', c.rss_mib, m.rss_mib, 'MiB'),
      ];
      const notes = [
        `Medians of ${ROUNDS} alternated rounds; each round: ${STARTS} cold starts, ${SEQUENTIAL} sequential requests (node:http, one kept-alive connection) and ${SECONDS} s × 10 connections per workload.`,
        'Caxton runs with its defaults (audit, events, execution records and local spans on); Mastra keeps nothing (no storage configured).',
      ];
      return { rows, notes, raw: { rounds: ROUNDS, caxton: c, mastra: m, floor, mastra_version: MASTRA_VERSION } };
    } finally {
      tmp.remove();
    }
  },
};
