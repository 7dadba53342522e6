/**
 * Latency with a slow model, and what runs in flight cost: a stand-in model that answers after
 * 500 ms and then streams a word every 20 ms, behind `caxton serve` in each isolation mode and
 * behind Mastra, each server its own process, alternated in repetitions; in-process (context) is
 * the baseline of the ratios. Per server: sequential tool loops and first tokens (each first token
 * followed by one from the stand-in called directly, bench/lib/slow-model-server.mjs: the floor
 * of the added latency), then the in-flight ramp (N connections opened first, then one invoke on
 * each at once; latency per request and the server tree's peak RSS per run). The method and the
 * variables are in docs/benchmarks.md and bench/README.md.
 *
 * A Caxton server is measured once its built-in tool servers have loaded: until then each one's
 * compilation, deferred past the first requests of a start, holds up the request that arrives while
 * it runs (a cost of starting, which the startup suite measures).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnListening } from './lib/listening.js';
import { ensureMastra, MASTRA_VERSION } from './mastra.js';
import { processCpuSeconds, processTree, rssKiB } from './lib/proc-cpu.js';
import { note } from './lib/progress.js';
import type { Row, Suite } from './lib/report.js';
import { fmt, median, summarize } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';

const ROOT = resolve(import.meta.dirname, '..');
/** The build measured (BENCH_LATENCY_CLI: another build's dist/cli/main.js, e.g. one from before a change). */
const CLI = process.env.BENCH_LATENCY_CLI ?? join(ROOT, 'dist/cli/main.js');
/** Mode `base`: in-process with this build (BENCH_LATENCY_BASE_CLI), alternated with `context` in the same run. */
const BASE_CLI = process.env.BENCH_LATENCY_BASE_CLI ?? '';
/** Node options for the Caxton servers (BENCH_LATENCY_NODE_ARGS, split at spaces), e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`. */
const NODE_ARGS = (process.env.BENCH_LATENCY_NODE_ARGS ?? '').split(' ').filter(Boolean);
const MASTRA_SERVER = join(ROOT, 'bench/lib/mastra-server.mjs');
const DIRECT_MODEL = join(ROOT, 'bench/lib/slow-model-server.mjs');
const FLOOR_SERVER = join(ROOT, 'bench/lib/latency-floor.mjs');
const QUICK = process.env.BENCH_LATENCY_QUICK === '1';
const STEPS = (process.env.BENCH_LATENCY_STEPS ?? (QUICK ? '10,100,1000,2000' : '10,100,1000,2000,5000,10000'))
  .split(',')
  .map(Number);
const REPS = Number(process.env.BENCH_LATENCY_REPS ?? 2);
const SEQ = Number(process.env.BENCH_LATENCY_SEQ ?? 20);
/**
 * `floor` and `floor-node`: a bare fastify or node:http server that waits the model's whole answer
 * and answers a body of the same size (bench/lib/latency-floor.mjs), ramp only: what the machine
 * and the client allow. `base`: in-process with BENCH_LATENCY_BASE_CLI. `unrecorded`: in-process
 * with this build and its records off (`[audit]`, `[events]`, `[executions]` and `[metrics]`
 * disabled): what the request path costs without the work a run leaves behind.
 */
type Mode = 'context' | 'worker' | 'process' | 'mastra' | 'base' | 'unrecorded' | 'floor' | 'floor-node';
const MODES = (process.env.BENCH_LATENCY_MODES ?? 'context,worker,process,mastra').split(',') as Mode[];
const LABEL: Record<Mode, string> = {
  context: 'in-process',
  worker: 'worker',
  process: 'process',
  mastra: `Mastra ${MASTRA_VERSION}`,
  base: 'in-process (baseline build)',
  unrecorded: 'in-process, records off',
  floor: 'bare fastify floor',
  'floor-node': 'bare node:http floor',
};
const isFloor = (m: Mode): boolean => m === 'floor' || m === 'floor-node';

/** The stand-in model: its first piece after this long, then one piece (a word) every CHUNK_MS. */
const MODEL_MS = 500;
const CHUNK_MS = 20;
const ANSWER = 'The answer is forty two.';
/**
 * A step is skipped when the one before, scaled to its size, says its runs would take longer than
 * this (p50 × N ÷ the earlier N): its server's runs queue (a pool that runs one execution per
 * worker or process at a time) rather than wait together, and the step would take minutes.
 */
const MAX_STEP_MS = Number(process.env.BENCH_LATENCY_MAX_STEP_MS ?? 60_000);
/** Connections opened at once while a step's connections are made: well below the listen backlog (511). */
const CONNECT_BATCH = 250;

const SCRIPT = `latency_ms = ${MODEL_MS}
chunk_ms = ${CHUNK_MS}
fallback = "${ANSWER}"
[[rules]]
match = "calculate"
[[rules.turns]]
tool_calls = [{ name = "calculator", arguments = { expression = "6*7" } }]
[[rules.turns]]
tool_calls = [{ name = "calculator", arguments = { expression = "42*1" } }]
[[rules.turns]]
content = "The answer is {{tool_result.calculator}}."
`;

function caxtonProject(dir: string, isolation: 'context' | 'worker' | 'process', unrecorded = false): void {
  mkdirSync(join(dir, 'agents'), { recursive: true });
  writeFileSync(join(dir, 'replies.toml'), SCRIPT);
  writeFileSync(
    join(dir, 'caxton.toml'),
    `data_dir = "data"\nagents_dir = "agents"\n[server]\nhost = "127.0.0.1"\nport = 0\n[metrics]\nport = 0\n${unrecorded ? 'enabled = false\n' : ''}[auth]\nenabled = false\n[logging]\nlevel = "warn"\n` +
      `[execution]\nisolation = "${isolation}"\n` +
      (unrecorded ? '[audit]\nenabled = false\n[events]\nenabled = false\n[executions]\nenabled = false\n' : '') +
      `[llm]\ndefault_provider = "slow"\n[llm.providers.slow]\ntype = "scripted"\nscript = "replies.toml"\n`,
  );
  writeFileSync(
    join(dir, 'agents/slow.toml'),
    'name = "slow"\ndescription = "answers slowly, with the calculator when asked to calculate"\ntools = ["calculator"]\nsystem_prompt = "Answer."\n',
  );
}

interface Server {
  host: string;
  port: number;
  pid: number;
  invokePath: string;
  streamPath: string;
  stop(): Promise<void>;
}

function serverArgs(mode: Mode): string[] {
  if (mode === 'mastra') return [MASTRA_SERVER];
  if (isFloor(mode)) return [FLOOR_SERVER];
  return [...NODE_ARGS, mode === 'base' ? BASE_CLI : CLI, 'serve'];
}

async function startServer(mode: Mode, dir: string, mastraDir: string): Promise<Server> {
  const isMastra = mode === 'mastra';
  const isCaxton = !isMastra && !isFloor(mode);
  mkdirSync(dir, { recursive: true });
  if (isCaxton)
    caxtonProject(
      dir,
      mode === 'base' || mode === 'unrecorded' ? 'context' : (mode as 'context' | 'worker' | 'process'),
      mode === 'unrecorded',
    );
  const server = await spawnListening(serverArgs(mode), LABEL[mode], {
    cwd: dir,
    env: {
      ...process.env,
      FLOOR_HTTP: mode === 'floor-node' ? 'node' : 'fastify',
      FLOOR_WAIT_MS: String(MODEL_MS + 4 * CHUNK_MS),
      FLOOR_ANSWER: ANSWER,
      MASTRA_DIR: mastraDir,
      MASTRA_MODEL_LATENCY_MS: String(MODEL_MS),
      MASTRA_MODEL_CHUNK_MS: String(CHUNK_MS),
      MASTRA_TOOL_TURNS: '2',
      MASTRA_ANSWER: ANSWER,
    },
  });
  server.child.stderr?.on('data', (d: Buffer) => {
    const s = d.toString();
    if (/error|warn/i.test(s)) process.stderr.write(`[${mode}] ${s.slice(0, 500)}`);
  });
  const url = new URL(server.url);
  if (isCaxton) await toolServersLoaded(url.origin);
  return {
    host: url.hostname,
    port: Number(url.port),
    pid: server.pid,
    invokePath: isMastra ? '/' : '/api/v1/agents/slow/invoke',
    streamPath: isMastra ? '/stream' : '/api/v1/agents/slow/invoke',
    stop: server.stop,
  };
}

/** Waits until none of the server's tool servers is still loading (GET /api/v1/tools). */
async function toolServersLoaded(origin: string): Promise<void> {
  const until = Date.now() + 60_000;
  for (;;) {
    const r = await fetch(`${origin}/api/v1/tools`);
    const text = await r.text();
    if (r.status !== 200) throw new Error(`GET /api/v1/tools → ${r.status}: ${text.slice(0, 300)}`);
    if (!text.includes('"state":"loading"')) return;
    if (Date.now() > until) throw new Error('the tool servers were still loading after 60 s');
    await sleep(100);
  }
}

/** The stand-in model served on its own, called directly. */
async function startDirectModel(): Promise<Server> {
  const server = await spawnListening(
    [DIRECT_MODEL],
    'the model called directly',
    {
      env: {
        ...process.env,
        MODEL_LATENCY_MS: String(MODEL_MS),
        MODEL_CHUNK_MS: String(CHUNK_MS),
        MODEL_ANSWER: ANSWER,
      },
    },
    5_000,
  );
  const url = new URL(server.url);
  return {
    host: url.hostname,
    port: Number(url.port),
    pid: server.pid,
    invokePath: '/',
    streamPath: '/',
    stop: server.stop,
  };
}

/** One POST on its own connection; resolves with the status and the time to the whole answer, or to the first token. */
function post(
  s: Server,
  path: string,
  body: string,
  firstToken = false,
): Promise<{ status: number; ms: number; text: string }> {
  return new Promise((res, rej) => {
    const t0 = performance.now();
    const r = request(
      {
        host: s.host,
        port: s.port,
        path,
        method: 'POST',
        agent: false,
        headers: {
          'content-type': 'application/json',
          ...(firstToken && { accept: 'text/event-stream' }),
        },
      },
      (rs) => {
        let text = '';
        rs.setEncoding('utf8');
        rs.on('data', (d: string) => {
          text += d;
          if (firstToken && text.includes('event: token')) {
            const ms = performance.now() - t0;
            rs.destroy();
            res({ status: rs.statusCode ?? 0, ms, text });
          }
        });
        rs.on('end', () => res({ status: rs.statusCode ?? 0, ms: performance.now() - t0, text }));
        rs.on('error', rej);
      },
    );
    r.on('error', rej);
    r.end(body);
  });
}

const TEXT = JSON.stringify({ request: 'hi' });
const TOOL = JSON.stringify({ request: 'calculate 6*7' });

interface Step {
  n: number;
  p50: number;
  p99: number;
  max: number;
  /** Requests not answered 200, by status ('error' for a connection that failed). */
  statuses: Record<string, number>;
  rss_before_kib: number;
  rss_peak_kib: number;
  kib_per_run: number;
  /** The server process's CPU (user and system) from the sends to the last answer, per request: less noisy than the latency on a shared machine. */
  cpu_ms_per_run: number;
}

/** Opens n connections to the server, CONNECT_BATCH at a time. */
async function openConnections(s: Server, n: number): Promise<Socket[]> {
  const out: Socket[] = [];
  for (let i = 0; i < n; i += CONNECT_BATCH) {
    const batch = Array.from(
      { length: Math.min(CONNECT_BATCH, n - i) },
      () =>
        new Promise<Socket>((res, rej) => {
          const c = connect({ host: s.host, port: s.port, noDelay: true });
          c.once('connect', () => res(c));
          c.once('error', rej);
        }),
    );
    out.push(...(await Promise.all(batch)));
  }
  return out;
}

/**
 * One HTTP/1.1 request on an open socket, its answer read until complete (Content-Length or the
 * chunked encoding's last chunk). A minimal client: node:http's per-request objects for 10,000
 * requests at once would cost the client more than the server's share of the two cores.
 */
function rawPost(c: Socket, bytes: Buffer): Promise<{ status: number; ms: number }> {
  return new Promise((res) => {
    let buf = '';
    let status = 0;
    let need = -1;
    let headerEnd = -1;
    const t0 = performance.now();
    const done = (st: number) => {
      c.removeAllListeners('data');
      res({ status: st, ms: performance.now() - t0 });
    };
    c.setEncoding('latin1');
    c.on('data', (d: string) => {
      buf += d;
      if (headerEnd < 0) {
        headerEnd = buf.indexOf('\r\n\r\n');
        if (headerEnd < 0) return;
        status = Number(buf.slice(9, 12));
        const cl = /\r\ncontent-length:\s*(\d+)/i.exec(buf.slice(0, headerEnd));
        need = cl ? headerEnd + 4 + Number(cl[1]) : -1;
      }
      if (need >= 0 ? buf.length >= need : buf.endsWith('\r\n0\r\n\r\n')) done(status);
    });
    c.once('error', () => done(0));
    c.once('close', () => {
      if (headerEnd < 0 || status === 0) done(0);
    });
    c.write(bytes);
  });
}

async function rampStep(s: Server, n: number): Promise<Step> {
  const conns = await openConnections(s, n);
  const head = `POST ${s.invokePath} HTTP/1.1\r\nHost: ${s.host}:${s.port}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(TEXT)}\r\n\r\n${TEXT}`;
  const bytes = Buffer.from(head, 'latin1');
  await sleep(300);
  let pids = processTree(s.pid);
  const before = rssKiB(...pids);
  let peak = before;
  let ticks = 0;
  const sampler = setInterval(() => {
    if (++ticks % 40 === 0) pids = processTree(s.pid);
    peak = Math.max(peak, rssKiB(...pids));
  }, 25);
  const cpu0 = processCpuSeconds(s.pid);
  const results = await Promise.all(conns.map((c) => rawPost(c, bytes)));
  const cpu = processCpuSeconds(s.pid) - cpu0;
  clearInterval(sampler);
  peak = Math.max(peak, rssKiB(...pids));
  for (const c of conns) c.destroy();
  const statuses: Record<string, number> = {};
  for (const r of results) {
    if (r.status !== 200) {
      const k = r.status === 0 ? 'error' : String(r.status);
      statuses[k] = (statuses[k] ?? 0) + 1;
    }
  }
  const sm = summarize(results.map((r) => r.ms));
  // The connections' close and the run records' writes settle before the next step.
  await sleep(1500);
  return {
    n,
    p50: sm.p50,
    p99: sm.p99,
    max: sm.max,
    statuses,
    rss_before_kib: before,
    rss_peak_kib: peak,
    kib_per_run: (peak - before) / n,
    cpu_ms_per_run: (cpu * 1000) / n,
  };
}

interface Figures {
  tool_ms: number[];
  ttft_ms: number[];
  /** The model called directly, right after each of ttft_ms. */
  direct_ms: number[];
  steps: Step[][];
}

async function runServer(mode: Mode, dir: string, mastraDir: string, direct: Server, f: Figures): Promise<void> {
  const s = await startServer(mode, dir, mastraDir);
  try {
    if (!isFloor(mode)) await sequential(mode, s, direct, f);
    const steps: Step[] = [];
    for (const n of STEPS) {
      const last = steps.at(-1);
      if (last && (last.p50 * n) / last.n > MAX_STEP_MS) {
        note(`${LABEL[mode]}: ${n} in flight skipped: at ${last.n} the p50 was ${fmt(last.p50, 0)} ms, runs queue`);
        continue;
      }
      note(`${LABEL[mode]}: ${n} in flight`);
      const st = await rampStep(s, n);
      note(
        `${LABEL[mode]}: ${n} in flight: p50 ${fmt(st.p50)} ms, p99 ${fmt(st.p99)} ms, ${fmt(st.cpu_ms_per_run, 3)} ms of server CPU/run, ${fmt(st.kib_per_run, 0)} KiB/run${Object.keys(st.statuses).length ? `, not 200: ${JSON.stringify(st.statuses)}` : ''}`,
      );
      steps.push(st);
    }
    f.steps.push(steps);
  } finally {
    await s.stop();
  }
}

/** The sequential phase: tool loops and first tokens, each first token followed by the model's called directly. */
async function sequential(mode: Mode, s: Server, direct: Server, f: Figures): Promise<void> {
  const first = await post(s, s.invokePath, TOOL);
  if (first.status !== 200 || !first.text.includes('answer is'))
    throw new Error(`${LABEL[mode]}: the tool loop answered ${first.status}: ${first.text.slice(0, 300)}`);
  for (let i = 0; i < 3; i++) await post(s, s.invokePath, TEXT);
  for (let i = 0; i < SEQ; i++) {
    const t = await post(s, s.invokePath, TOOL);
    if (t.status !== 200) throw new Error(`${LABEL[mode]}: tool loop → ${t.status}: ${t.text.slice(0, 300)}`);
    f.tool_ms.push(t.ms);
    const tt = await post(s, s.streamPath, TEXT, true);
    if (tt.status !== 200 || !tt.text.includes('event: token'))
      throw new Error(`${LABEL[mode]}: stream → ${tt.status}: ${tt.text.slice(0, 300)}`);
    f.ttft_ms.push(tt.ms);
    const d = await post(direct, direct.streamPath, TEXT, true);
    if (d.status !== 200 || !d.text.includes('event: token'))
      throw new Error(`the model called directly → ${d.status}: ${d.text.slice(0, 300)}`);
    f.direct_ms.push(d.ms);
  }
}

const med = median;

export const latencySuite: Suite = {
  name: 'latency',
  description: `a 500 ms model streaming a word every 20 ms: tool loop, first token and the in-flight ramp (${STEPS.join(', ')}) for ${MODES.map((m) => LABEL[m]).join(', ')}, ${REPS} alternated reps`,
  async run() {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
    if (MODES.includes('base') && !existsSync(BASE_CLI))
      throw new Error(
        `BENCH_LATENCY_BASE_CLI: ${BASE_CLI || '(unset)'} is missing: mode base needs another build's dist/cli/main.js`,
      );
    const mastraDir = MODES.includes('mastra') ? ensureMastra() : '';
    const tmp = tempDir('caxton-bench-latency-');
    const figures = Object.fromEntries(
      MODES.map((m): [Mode, Figures] => [m, { tool_ms: [], ttft_ms: [], direct_ms: [], steps: [] }]),
    ) as Record<Mode, Figures>;
    const direct = await startDirectModel();
    try {
      for (let r = 0; r < REPS; r++) {
        const order = r % 2 === 0 ? MODES : [...MODES].reverse();
        for (const mode of order) {
          note(`rep ${r + 1}/${REPS}: ${LABEL[mode]}`);
          await runServer(mode, join(tmp.path, `${mode}-${r}`), mastraDir, direct, figures[mode]);
        }
      }
    } finally {
      await direct.stop();
      tmp.remove();
    }
    return report(figures);
  },
};

/** The median over the reps of one figure at step `n`; NaN when the server skipped that step. */
function stepMed(f: Figures, n: number, k: 'p50' | 'p99' | 'kib_per_run' | 'cpu_ms_per_run'): number {
  const xs = f.steps.flatMap((s) => s.filter((x) => x.n === n).map((x) => x[k]));
  return xs.length === 0 ? Number.NaN : med(xs);
}

/** Requests at step `n` not answered 200, all reps. */
function failures(f: Figures, n: number): number {
  let k = 0;
  for (const s of f.steps) for (const x of s) if (x.n === n) for (const v of Object.values(x.statuses)) k += v;
  return k;
}

const num = (v: number, unit: string): string => (Number.isNaN(v) ? 'not run (runs queued)' : `${fmt(v, 0)} ${unit}`);

/** Each first token less the model's called directly right after it: the median of those differences. */
const added = (f: Figures): number => med(f.ttft_ms.map((t, i) => t - f.direct_ms[i]!));

function ttftRow(figures: Record<Mode, Figures>, lead: Mode, others: Mode[]): Row {
  const one = (m: Mode): string => {
    const f = figures[m];
    const a = added(f);
    return `${LABEL[m]} ${fmt(med(f.ttft_ms), 0)} ms (${a < 0 ? '−' : '+'}${fmt(Math.abs(a), 1)} ms)`;
  };
  const all = MODES.flatMap((m) => figures[m].direct_ms);
  const r: Row = {
    metric: 'time to the first streamed token, sequential p50 (added over the model called directly)',
    value: one(lead),
    baseline: [`the model called directly ${fmt(med(all), 0)} ms`, ...others.map(one)].join('; '),
  };
  if (lead === 'context') {
    r.target = '≤ the model called directly + 5 ms (in-process)';
    r.verdict = added(figures.context) <= 5 ? 'pass' : 'fail';
  }
  return r;
}

export function report(figures: Record<Mode, Figures>): { rows: Row[]; notes: string[]; raw: unknown } {
  const lead: Mode = MODES.includes('context') ? 'context' : MODES[0]!;
  const others = MODES.filter((m) => m !== lead);
  const base = lead === 'context' ? figures.context : undefined;
  const row = (metric: string, v: (f: Figures) => number, unit: string): Row => ({
    metric,
    value: `${LABEL[lead]} ${num(v(figures[lead]), unit)}`,
    baseline: others.map((m) => `${LABEL[m]} ${num(v(figures[m]), unit)}`).join('; '),
  });
  // The floors have no sequential phase.
  const seqOthers = others.filter((m) => !isFloor(m));
  const seqRow = (metric: string, v: (f: Figures) => number): Row => ({
    ...row(metric, v, 'ms'),
    baseline: seqOthers.map((m) => `${LABEL[m]} ${num(v(figures[m]), 'ms')}`).join('; '),
  });
  const rows: Row[] = [
    seqRow('three-turn tool loop (2 calculator calls, then the answer), sequential p50', (f) => med(f.tool_ms)),
    ttftRow(figures, lead, seqOthers),
  ];
  const at10 = base ? stepMed(base, 10, 'p99') : Number.NaN;
  for (const n of STEPS) {
    const both = (f: Figures, own = false) => {
      const p50 = stepMed(f, n, 'p50');
      if (Number.isNaN(p50)) return 'not run (runs queued)';
      const own10 = own && n > 10 ? stepMed(f, n, 'p99') / stepMed(f, 10, 'p99') : Number.NaN;
      return `${fmt(p50, 0)} / ${fmt(stepMed(f, n, 'p99'), 0)} ms${Number.isNaN(own10) ? '' : ` (${fmt(own10)} ×)`}`;
    };
    const failed = MODES.filter((m) => failures(figures[m], n) > 0).map(
      (m) => `${LABEL[m]} ${failures(figures[m], n)}`,
    );
    const ratio = n > 10 && base ? stepMed(base, n, 'p99') / at10 : Number.NaN;
    const r: Row = {
      metric: `${n.toLocaleString('en-US')} in flight, p50 / p99`,
      value: `${LABEL[lead]} ${both(figures[lead])}${Number.isNaN(ratio) ? '' : ` (p99 ${fmt(ratio)} × its p99 at 10)`}`,
      baseline:
        others
          .map((m) => `${LABEL[m]} ${both(figures[m], m === 'base' || m === 'unrecorded' || isFloor(m))}`)
          .join('; ') + (failed.length ? `; not answered 200: ${failed.join(', ')}` : ''),
    };
    if (!Number.isNaN(ratio) && (n === 5000 || n === 10000)) {
      const limit = n === 5000 ? 2 : 3;
      r.target = `p99 ≤ ${limit} × p99 at 10 (in-process)`;
      r.verdict = ratio <= limit ? 'pass' : 'fail';
    }
    rows.push(r);
    if (n >= 1000) {
      const cpuOf = (m: Mode): string => {
        const v = stepMed(figures[m], n, 'cpu_ms_per_run');
        return `${LABEL[m]} ${Number.isNaN(v) ? 'not run' : `${fmt(v, 3)} ms`}`;
      };
      rows.push({
        metric: `${n.toLocaleString('en-US')} in flight, server CPU per request (user + system, from the sends to the last answer)`,
        value: cpuOf(lead),
        baseline: others.map(cpuOf).join('; '),
      });
      const kib = row(
        `${n.toLocaleString('en-US')} in flight, server RSS per run in flight`,
        (f) => stepMed(f, n, 'kib_per_run'),
        'KiB',
      );
      const kibRun = base ? stepMed(base, n, 'kib_per_run') : Number.NaN;
      if (!Number.isNaN(kibRun)) {
        kib.target = '≤ 150 KiB (in-process)';
        kib.verdict = kibRun <= 150 ? 'pass' : 'fail';
      }
      rows.push(kib);
    }
  }
  const notes = [
    `The stand-in model: first piece after ${MODEL_MS} ms, then a word every ${CHUNK_MS} ms (a five-word answer: ${MODEL_MS + 4 * CHUNK_MS} ms; a tool-call turn: ${MODEL_MS} ms), inside each server (Caxton's scripted provider, Mastra's model object).`,
    'First token: each request to a server is followed by one to the stand-in model served on its own (bench/lib/slow-model-server.mjs), by the same client; "added" is the median of the differences of those pairs.',
    'A Caxton server is measured once its built-in tool servers have loaded (GET /api/v1/tools): their compilation is deferred past the first requests of a start.',
    `Medians of ${REPS} repetitions, the servers in alternated order; per repetition a fresh server per mode: ${SEQ} sequential tool loops and first tokens, then the ramp ${STEPS.join(', ')}.`,
    `Floors (when measured): a bare fastify or node:http server (bench/lib/latency-floor.mjs) that waits ${MODEL_MS + 4 * CHUNK_MS} ms per request and answers a JSON body the size of Caxton's, ramp only; "(r ×)" after a floor or the baseline build is its own p99 over its own p99 at 10.`,
    'A ramp step opens its N connections first, then sends one non-streamed invoke on each at once; latency is per request, from its send to its whole answer.',
    "RSS is the server's process tree (a process pool's children included): its peak during the step, sampled every 25 ms, above its level with the connections open just before, divided by N.",
    `"not run": the server's p50 at the step before, scaled to this step's N, passed ${fmt(MAX_STEP_MS / 1000, 0)} s: its runs queue (for the pool) instead of waiting together.`,
  ];
  return { rows, notes, raw: { steps: STEPS, reps: REPS, modes: MODES, figures } };
}
