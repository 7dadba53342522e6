/**
 * Agent execution overhead per isolation mode: with a zero-latency scripted provider,
 * POST /api/v1/agents/{name}/invoke in `context`, `worker` and `process` mode. Reports the latency
 * Caxton adds (p50/p99) over a fastify hello-world JSON POST and the requests per second, each
 * beside the hello-world measured in the same run. Targets: context ≤ 0.5 ms p50 added and
 * ≥ 5,000 req/s; process ≤ 20 ms p50 added on the request path.
 */
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AgentResponse } from '../src/execution/types.js';
import { createIsolation, DEFAULT_PROCESS_MAX_REQUESTS } from '../src/execution/isolation/index.js';
import type { CaxtonServer } from '../src/server/index.js';
import { startHelloWorld } from './lib/baseline.js';
import { request, sequential, type SequentialResult } from './lib/http.js';
import { load, loadLine, type LoadResult } from './lib/load.js';
import { note } from './lib/progress.js';
import type { Row, Suite, SuiteReport } from './lib/report.js';
import { startQuietServer } from './lib/scripted-server.js';
import { envNumber, fmt, fmtMs, msSince, p50p99, summarize, verdict, type Summary } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';

const SEQUENTIAL = envNumber('BENCH_QUERIES', 2000);
const LOAD_SECONDS = envNumber('BENCH_DURATION', 5);
const CONNECTIONS = envNumber('BENCH_CONNECTIONS', 10);
const WARMUP = 200;
/** Worker threads and child processes per pool (one per core on the 2-core bench machine). */
const PROCESS_POOL = 2;
const FORKS = 20;
const READY_SAMPLES = 10;

const CONTEXT_ADDED_P50_MS = 0.5;
const CONTEXT_REQ_PER_S = 5_000;
const PROCESS_ADDED_P50_MS = 20;
const PROCESS_DOC_REQ_PER_S = 1_000;
const PROCESS_DOC_COLD_START_MS = 20;

type Mode = 'context' | 'worker' | 'process';
const MODES: readonly Mode[] = ['context', 'worker', 'process'];

const signed = (ms: number) => `${ms < 0 ? '−' : '+'}${fmtMs(Math.abs(ms))}`;
/** Caxton minus the baseline at the same percentile (p99 differences of sub-ms requests are noisy, and may be negative). */
const added = (s: Summary, b: Summary) => `${signed(s.p50 - b.p50)} p50 / ${signed(s.p99 - b.p99)} p99`;

/** The script every agent talks to: a short answer, or one calculator call then an answer. */
const SCRIPT = `# bench/execution.ts: zero latency (no latency_ms anywhere)
[[rules]]
name = "calc"
match = "^calc"
[[rules.turns]]
tool_calls = [{ name = "calculator", arguments = { expression = "6*7" } }]
[[rules.turns]]
content = "The answer is {{tool_result.calculator}}."

[[rules]]
name = "text"
content = "ok: {{request}}"
`;

const agentToml = (name: string, mode: Mode, tools: string[]) => `name = "${name}"
version = "1.0.0"
description = "Execution benchmark agent (${mode} isolation)"
capabilities = ["benchmarking"]
tools = [${tools.map((t) => `"${t}"`).join(', ')}]
system_prompt = "You are a benchmark agent. Answer briefly."

[execution]
isolation = "${mode}"
`;

const TEXT_BODY = JSON.stringify({ request: 'hello' });
const TOOL_BODY = JSON.stringify({ request: 'calc 6*7' });
const JSON_HEADERS = { 'content-type': 'application/json' };
const postInit = (body: string): RequestInit => ({ method: 'POST', headers: JSON_HEADERS, body });
const loadPost = (url: string, body: string) =>
  load({ url, method: 'POST', headers: JSON_HEADERS, body, duration: LOAD_SECONDS, connections: CONNECTIONS });

async function startCaxton(dir: string): Promise<{ server: CaxtonServer; ms: number }> {
  writeFileSync(join(dir, 'script.toml'), SCRIPT);
  return startQuietServer(
    dir,
    `[llm]\ndefault_provider = "bench"\n\n[llm.providers.bench]\ntype = "scripted"\nscript = "script.toml"\n\n` +
      // Server-wide context; each agent picks its own mode. pool_size sizes both pools: 2 worker
      // threads and 2 child processes (the default on 2 cores).
      `[execution]\nisolation = "context"\npool_size = ${PROCESS_POOL}\n`,
  );
}

/** Sends one request and fails loudly unless it is a 200 AgentResponse from the expected mode. */
async function invokeOnce(url: string, body: string, mode: Mode): Promise<{ ms: number; response: AgentResponse }> {
  const r = await request(url, postInit(body));
  if (r.status !== 200) throw new Error(`invoke ${url} → ${r.status}: ${r.body.slice(0, 500)}`);
  const response = JSON.parse(r.body) as AgentResponse;
  if (response.isolation !== mode) throw new Error(`invoke ${url} ran in ${response.isolation}, expected ${mode}`);
  return { ms: r.ms, response };
}

function poolStats(server: CaxtonServer, mode: Mode) {
  return server.executor.stats().find((s) => s.mode === mode);
}

/**
 * autocannon stops with requests in flight: the server cancels them, which kills the thread or
 * process running each (ADR 0052). Waits until those jobs are over and their replacements have
 * started, so that the next measurement does not run on a pool that is still starting.
 */
async function settle(server: CaxtonServer, mode: Mode): Promise<void> {
  const start = Date.now();
  const unsettled = () => {
    const st = poolStats(server, mode);
    return st !== undefined && (st.busy + st.queued + st.starting > 0 || st.ready < st.size);
  };
  while (unsettled() && Date.now() - start < 10_000) await sleep(10);
}

interface ModeResult {
  mode: Mode;
  text: SequentialResult;
  tool: SequentialResult;
  textLoad: LoadResult;
  toolLoad: LoadResult;
  response_bytes: number;
  pool?: unknown;
}

/** Any mode: warm-up, sequential latency, autocannon; text then one tool call. */
async function measureMode(server: CaxtonServer, mode: Mode): Promise<ModeResult> {
  const api = `${server.url}/api/v1/agents`;
  const textUrl = `${api}/text-${mode}/invoke`;
  const toolUrl = `${api}/tool-${mode}/invoke`;
  const first = await invokeOnce(textUrl, TEXT_BODY, mode);
  const tool = await invokeOnce(toolUrl, TOOL_BODY, mode);
  if (tool.response.content !== 'The answer is 42.' || tool.response.tool_calls.length !== 1)
    throw new Error(`tool loop answered ${JSON.stringify(tool.response.content)}`);
  note(
    `${mode}: ${WARMUP} warm-up + ${SEQUENTIAL} sequential invokes, text then tool; autocannon ${LOAD_SECONDS}s × ${CONNECTIONS} connections each`,
  );
  const text = await sequential(SEQUENTIAL, () => textUrl, { warmup: WARMUP, init: postInit(TEXT_BODY) });
  const toolSeq = await sequential(SEQUENTIAL, () => toolUrl, { warmup: WARMUP, init: postInit(TOOL_BODY) });
  const textLoad = await loadPost(textUrl, TEXT_BODY);
  await settle(server, mode);
  const toolLoad = await loadPost(toolUrl, TOOL_BODY);
  await settle(server, mode);
  return {
    mode,
    text,
    tool: toolSeq,
    textLoad,
    toolLoad,
    response_bytes: Buffer.byteLength(JSON.stringify(first.response)),
    pool: poolStats(server, mode),
  };
}

/** Fork cost on this machine: `node -e 0`, spawn to exit (the baseline of a pool member's start). */
async function measureFork() {
  const samples = new Float64Array(FORKS);
  for (let i = 0; i < FORKS; i++) {
    const t0 = process.hrtime.bigint();
    await new Promise<void>((resolve, reject) => {
      const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
      child.once('error', reject);
      child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`node -e 0 exited with ${code}`))));
    });
    samples[i] = msSince(t0);
  }
  return { node_e0_ms: summarize(samples) };
}

/** A process pool member from fork to "ready" (Node started, task module imported), as Caxton does it. */
async function measureProcessReady() {
  const here = dirname(fileURLToPath(import.meta.url));
  const taskModule = join(here, '..', 'dist', 'execution', 'task.js');
  if (!existsSync(taskModule))
    throw new Error(`${taskModule} is missing: run through \`npm run bench\` (it builds first)`);
  const samples = new Float64Array(READY_SAMPLES);
  for (let i = 0; i < READY_SAMPLES; i++) {
    const t0 = process.hrtime.bigint();
    const iso = createIsolation('process', { taskModule, poolSize: 1 });
    await iso.warm();
    samples[i] = msSince(t0);
    // Idle pool members are unref'd and close() waits on unref'd handles only: keep the loop alive.
    const keepAlive = setInterval(() => {}, 1000);
    try {
      await iso.close();
    } finally {
      clearInterval(keepAlive);
    }
  }
  return summarize(samples);
}

async function run(): Promise<SuiteReport> {
  // ---- Baseline: fastify hello-world, same process, same client code --------------------------
  note(
    `baseline: fastify hello-world (${SEQUENTIAL} sequential GETs and JSON POSTs, autocannon ${LOAD_SECONDS}s × ${CONNECTIONS} connections, GET and POST)`,
  );
  const hw = await startHelloWorld();
  let base;
  try {
    const echo = `${hw.url}echo`;
    // Warm the client (fetch/undici, this thread) before anything is measured.
    await sequential(2000, () => hw.url, { warmup: 0 });
    const get = await sequential(SEQUENTIAL, () => hw.url);
    const post = await sequential(SEQUENTIAL, () => echo, { init: postInit(TEXT_BODY) });
    const getLoad = await load({ url: hw.url, duration: LOAD_SECONDS, connections: CONNECTIONS });
    const postLoad = await loadPost(echo, TEXT_BODY);
    base = { start_ms: hw.start_ms, get, post, getLoad, postLoad };
  } finally {
    await hw.close();
  }

  const dir = tempDir();
  try {
    const { server, ms: startMs } = await startCaxton(dir.path);
    const results: Partial<Record<Mode, ModeResult>> = {};
    let proc: ModeResult | undefined;
    let health, fork, ready;
    try {
      note(`caxton listening on ${server.url} (started in ${fmtMs(startMs)}), data in ${dir.path}`);
      for (const mode of MODES) {
        for (const [kind, tools] of [
          ['text', []],
          ['tool', ['calculator']],
        ] as const) {
          const r = await request(`${server.url}/api/v1/agents`, {
            method: 'POST',
            headers: { 'content-type': 'application/toml' },
            body: agentToml(`${kind}-${mode}`, mode, [...tools]),
          });
          if (r.status !== 201) throw new Error(`deploy ${kind}-${mode} → ${r.status}: ${r.body.slice(0, 500)}`);
        }
      }
      // Caxton's own floor: the cheapest route, through the same hooks (request id, span).
      note(
        `caxton floor: ${SEQUENTIAL} sequential GET /health, autocannon ${LOAD_SECONDS}s × ${CONNECTIONS} connections`,
      );
      const healthUrl = `${server.url}/health`;
      health = {
        sequential: await sequential(SEQUENTIAL, () => healthUrl),
        load: await load({ url: healthUrl, duration: LOAD_SECONDS, connections: CONNECTIONS }),
      };
      results.context = await measureMode(server, 'context');
      note(
        `context: ${SEQUENTIAL} sequential invokes p50 ${fmtMs(results.context.text.latency_ms.p50)}, ${fmt(results.context.textLoad.req_per_s, 0)} req/s`,
      );
      results.worker = await measureMode(server, 'worker');
      note(
        `worker: ${SEQUENTIAL} sequential invokes p50 ${fmtMs(results.worker.text.latency_ms.p50)}, ${fmt(results.worker.textLoad.req_per_s, 0)} req/s`,
      );
      // Measured here, in the bench process as it now is (Caxton loaded, RSS grown): spawn() forks it.
      note(
        `fork cost: ${FORKS} × \`node -e 0\`; process pool member start (fork + task module) ${READY_SAMPLES} times`,
      );
      fork = await measureFork();
      ready = await measureProcessReady();
      proc = await measureMode(server, 'process');
      results.process = proc;
      note(
        `process: ${SEQUENTIAL} sequential invokes p50 ${fmtMs(proc.text.latency_ms.p50)}, ${fmt(proc.textLoad.req_per_s, 0)} req/s; pool ${JSON.stringify(proc.pool)}`,
      );
    } finally {
      await server.close();
    }

    // ---- Report --------------------------------------------------------------------------------
    if (!health || !fork || !ready || !proc) throw new Error('a measurement is missing');
    const ctx = results.context!;
    const wrk = results.worker!;
    const bp = base.post.latency_ms;
    const ctxAdded = ctx.text.latency_ms.p50 - bp.p50;
    const procAdded = proc.text.latency_ms.p50 - bp.p50;
    const pct = (l: LoadResult) => `${fmt((l.req_per_s / base.postLoad.req_per_s) * 100, 0)} % of baseline`;
    const target = (text: string, ok: boolean) => ({ target: text, verdict: verdict(ok) });
    /** Per mode: latency and throughput, short text then one calculator call; targets on the text rows. */
    const modeRows = (r: ModeResult, latency?: Partial<Row>, rate?: Partial<Row>): Row[] =>
      (['text', 'tool'] as const).flatMap((kind) => {
        const what = kind === 'text' ? 'short text' : 'one calculator call (2 model turns)';
        const seq = r[kind].latency_ms;
        const l = kind === 'text' ? r.textLoad : r.toolLoad;
        return [
          {
            metric: `${r.mode}: invoke latency, ${what} (${SEQUENTIAL} sequential${r.mode === 'process' ? ', warm pool' : ''})`,
            value: `${p50p99(seq)} (added ${added(seq, bp)})`,
            baseline: `POST /echo ${p50p99(bp)}`,
            ...(kind === 'text' && latency),
          },
          {
            metric: `${r.mode}: throughput, ${what} (autocannon ${LOAD_SECONDS}s × ${CONNECTIONS} conn)`,
            value: `${loadLine(l)} (${pct(l)})`,
            baseline: `POST /echo ${loadLine(base.postLoad)}`,
            ...(kind === 'text' && rate),
          },
        ];
      });
    const rows: Row[] = [
      {
        metric: 'Caxton floor: GET /health (same hooks, no execution)',
        value: `sequential ${p50p99(health.sequential.latency_ms)}; ${loadLine(health.load)}`,
        baseline: `GET / sequential ${p50p99(base.get.latency_ms)}; ${loadLine(base.getLoad)}`,
      },
      ...modeRows(
        ctx,
        target(`≤ ${CONTEXT_ADDED_P50_MS} ms p50 added`, ctxAdded <= CONTEXT_ADDED_P50_MS),
        target(`≥ ${CONTEXT_REQ_PER_S} req/s`, ctx.textLoad.req_per_s >= CONTEXT_REQ_PER_S),
      ),
      ...modeRows(wrk),
      ...modeRows(
        proc,
        {
          ...target(`≤ ${PROCESS_ADDED_P50_MS} ms p50 added`, procAdded <= PROCESS_ADDED_P50_MS),
          value: `${p50p99(proc.text.latency_ms)} (${signed(procAdded - ctxAdded)} p50 over context)`,
        },
        target(`≥ ${PROCESS_DOC_REQ_PER_S} req/s`, proc.textLoad.req_per_s >= PROCESS_DOC_REQ_PER_S),
      ),
      {
        metric: `process: pool member start, fork → task module loaded (${READY_SAMPLES} starts)`,
        value: `p50 ${fmtMs(ready.p50)} / max ${fmtMs(ready.max)}`,
        baseline: `\`node -e 0\` spawn → exit p50 ${fmtMs(fork.node_e0_ms.p50)} / max ${fmtMs(fork.node_e0_ms.max)} (${FORKS} runs)`,
        ...target(
          `10–${PROCESS_DOC_COLD_START_MS} ms cold start (design documents)`,
          ready.p50 <= PROCESS_DOC_COLD_START_MS,
        ),
      },
    ];
    const notes = [
      `Zero-latency scripted provider (no \`latency_ms\`); one agent per mode and scenario (\`[execution] isolation\` per agent) on a context server with \`[execution] pool_size = ${PROCESS_POOL}\` (2 worker threads, 2 child processes). Request body ${TEXT_BODY} (${Buffer.byteLength(TEXT_BODY)} bytes); the AgentResponse is ~${fmt(ctx.response_bytes, 0)} bytes of JSON, the echo ${Buffer.byteLength(TEXT_BODY)} bytes.`,
      `"Added" = Caxton's invoke latency minus the hello-world's POST /echo latency (same body, same client, same run), at the same percentile. Hello-world GET in the same run: sequential ${p50p99(base.get.latency_ms)}; ${loadLine(base.getLoad)}.`,
      `Process mode: a warm pool of ${PROCESS_POOL} child processes reused across requests (each replaced after \`process_max_requests\`, default ${DEFAULT_PROCESS_MAX_REQUESTS.toLocaleString('en-US')}, or after a request that touched process state: ADR 0052); pool at the end ${JSON.stringify(proc.pool)}.`,
      `Server, client and (for autocannon) one load-generator worker thread share ${cpus().length} cores; sequential latencies are client-observed (fetch/undici keep-alive). Caxton started in ${fmtMs(startMs)}; hello-world in ${fmtMs(base.start_ms)}.`,
    ];
    return {
      rows,
      notes,
      raw: {
        baseline: base,
        fork,
        process_member_ready_ms: ready,
        caxton: { start_ms: startMs, health, modes: results },
      },
    };
  } finally {
    dir.remove();
  }
}

export const executionSuite: Suite = {
  name: 'execution',
  description:
    'invoke overhead and throughput per isolation mode (context, worker, process) with a zero-latency scripted provider',
  run,
};
