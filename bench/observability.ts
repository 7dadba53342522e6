/**
 * What tracing and metrics cost, per mode (bench/lib/observability-node.ts): telemetry off, metrics
 * only, and metrics with every span recorded, 10 % sampled or none sampled (spans into the node's
 * span store and a batch processor whose exporter discards; `otlp` exports to a collector in this
 * process). Each mode's server is its own process; warm-up rounds are thrown away, then short reps
 * of equal size alternate between the modes, the order rotated, over BENCH_GENERATIONS sets of fresh
 * processes, with a control (a second metrics-only process) and a bootstrap interval of each median
 * ratio (ADR 0106, docs/adr/experiments.md). The figure is CPU per operation of the mode's process
 * (all its threads; the workload is driven from inside it), its ratio the median of per-rep ratios.
 * Workloads: `bus.send()` of one-way informs to an in-process handler; `executor.invoke()` in
 * context mode, scripted model, one tool call. Targets: every span ≤ 10 % over metrics only,
 * unsampled ≤ 3 %, metrics ≤ 10 % over telemetry off. BENCH_COMPARE_DIR alternates another
 * checkout's modes with these.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import {
  MODES,
  SAMPLE_RATIO,
  type Figure,
  type FromNode,
  type Mode,
  type ToNode,
  type Workload,
} from './lib/observability-node.js';
import { note } from './lib/progress.js';
import type { Row, Suite, SuiteReport } from './lib/report.js';
import { rng } from './lib/random.js';
import { envNumber, fmt, median, medianInterval, quantile } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';

const env = envNumber;

/** Sizes; the environment overrides them for quick runs (e.g. BENCH_ROUNDS=3 BENCH_MESSAGES=2000). */
const ROUNDS = env('BENCH_ROUNDS', 21);
const MESSAGES = env('BENCH_MESSAGES', 1_000);
const EXECUTIONS = env('BENCH_EXECUTIONS', 250);
/** Rounds run before the counted ones, in each generation of processes (not counted). */
const WARMUP = env('BENCH_WARMUP', 4);
/**
 * The counted rounds are split over this many generations of processes, each started fresh: a
 * process carries a bias of its own (where its heap and code landed, what its JIT decided) of a
 * few per cent, the same in every one of its reps, so one process per mode cannot resolve a 10 %
 * target however many reps it runs. Fresh processes make that bias part of the spread.
 */
const GENERATIONS = Math.max(1, Math.min(env('BENCH_GENERATIONS', 3), ROUNDS));
/**
 * A second metrics-only process beside the first (the control, BENCH_CONTROL=0 drops it): the
 * same code measured against itself, so the report shows what the method reads for no difference.
 */
const CONTROL = process.env.BENCH_CONTROL !== '0';
const CONTROL_LABEL = 'metrics#2';
const MAX_OVERHEAD = 0.1;
const MAX_UNSAMPLED_OVERHEAD = 0.03;
const DEFAULT_MODES: readonly Mode[] = ['off', 'metrics', 'on', 'sampled', 'unsampled'];
/** BENCH_MODES=metrics,on,count runs only those modes. */
const RUN_MODES: readonly Mode[] = process.env.BENCH_MODES
  ? MODES.filter((m) => process.env.BENCH_MODES!.split(',').includes(m))
  : DEFAULT_MODES;
const NODE = fileURLToPath(new URL('./lib/observability-node.ts', import.meta.url));
const COMPARE_DIR = process.env.BENCH_COMPARE_DIR;
/** The compared checkout's modes are keyed `mode@compared`. */
const COMPARED = '@compared';

interface Node {
  /** The mode, with COMPARED appended for the compared checkout's. */
  mode: string;
  child: ChildProcess;
  ask(m: ToNode): Promise<FromNode>;
}

/**
 * The OTLP collector of the `otlp` mode: in this process, so the server's process is charged for
 * building and sending the export requests and not for receiving them. It reads each body and
 * answers 200, as a collector does.
 */
let collector: { server: Server; url: string; requests: number; bytes: number } | undefined;

async function startCollector(): Promise<NonNullable<typeof collector>> {
  const c = { server: createServer(), url: '', requests: 0, bytes: 0 };
  c.server.on('request', (req, res) => {
    c.requests++;
    req.on('data', (chunk: Buffer) => (c.bytes += chunk.length));
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
  });
  await new Promise<void>((r) => c.server.listen(0, '127.0.0.1', () => r()));
  c.url = `http://127.0.0.1:${(c.server.address() as AddressInfo).port}`;
  return c;
}

/** The mode a label runs: `on@compared` and the control's `metrics#2` run `on` and `metrics`. */
const modeOf = (label: string) => label.replace(COMPARED, '').replace(/#\d+$/, '') as Mode;

async function spawn(mode: string, dir: string): Promise<Node> {
  const compared = mode.endsWith(COMPARED);
  const script = compared ? `${COMPARE_DIR}/bench/lib/observability-node.ts` : NODE;
  const otlp = modeOf(mode) === 'otlp';
  if (otlp) collector ??= await startCollector();
  const child = fork(script, [modeOf(mode), dir], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    ...(compared && { cwd: COMPARE_DIR }),
    // The server's own OTLP exporter (tracing.ts), as OTEL_EXPORTER_OTLP_ENDPOINT configures it.
    ...(otlp && { env: { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: collector!.url } }),
  });
  let pending: ((m: FromNode) => void) | undefined;
  let failed: ((e: Error) => void) | undefined;
  child.on('message', (m: FromNode) => {
    const p = pending;
    pending = undefined;
    if (m.type === 'error') failed?.(new Error(`${mode}: ${m.message}`));
    else p?.(m);
  });
  child.on('exit', (code) => failed?.(new Error(`the ${mode} server exited with ${code}`)));
  const next = () =>
    new Promise<FromNode>((resolve, reject) => {
      pending = resolve;
      failed = reject;
    });
  const ready = next();
  await ready;
  return {
    mode,
    child,
    ask: (m) => {
      const answer = next();
      child.send(m);
      return answer;
    },
  };
}

type Results = Record<string, Record<Workload, Figure[]>>;

async function run(): Promise<SuiteReport> {
  const modes = COMPARE_DIR ? RUN_MODES.flatMap((m) => [m, `${m}${COMPARED}`]) : [...RUN_MODES];
  // The control needs the metrics-only mode it is measured against.
  const control = CONTROL && RUN_MODES.includes('metrics');
  const labels = control ? [...modes, CONTROL_LABEL] : modes;
  const results: Results = Object.fromEntries(labels.map((m) => [m, { messages: [], executions: [] }]));
  const sizes: Record<Workload, number> = { messages: MESSAGES, executions: EXECUTIONS };
  let spans = 0;
  let round = 0;
  try {
    for (let g = 0; g < GENERATIONS; g++) {
      // This generation's share of the counted rounds, the remainder to the first ones.
      const counted = Math.floor(ROUNDS / GENERATIONS) + (g < ROUNDS % GENERATIONS ? 1 : 0);
      const dirs = labels.map(() => tempDir('caxton-bench-obs-'));
      const nodes: Node[] = [];
      try {
        for (let i = 0; i < labels.length; i++) nodes.push(await spawn(labels[i]!, dirs[i]!.path));
        for (let r = 1 - WARMUP; r <= counted; r++) {
          // Rounds up to 0 warm this generation's processes up and are not counted.
          if (r > 0) round++;
          note(
            r <= 0
              ? `generation ${g + 1}/${GENERATIONS}: warm-up round ${r + WARMUP}/${WARMUP} of ${labels.join(', ')}`
              : `rep ${round}/${ROUNDS} (generation ${g + 1}/${GENERATIONS}): ${MESSAGES.toLocaleString('en')} messages, ${EXECUTIONS.toLocaleString('en')} executions per mode`,
          );
          for (const workload of ['messages', 'executions'] as const) {
            for (let k = 0; k < nodes.length; k++) {
              const node = nodes[(k + r + WARMUP + g) % nodes.length]!;
              const a = await node.ask({ type: 'run', workload, n: sizes[workload] });
              if (a.type !== 'figure') throw new Error(`${node.mode}: unexpected answer ${a.type}`);
              if (r > 0) results[node.mode]![workload].push(a.figure);
            }
          }
        }
        for (const node of nodes) {
          const a = await node.ask({ type: 'close' });
          if (a.type === 'closed') spans += a.spans;
        }
      } finally {
        for (const n of nodes) if (n.child.exitCode === null) n.child.kill();
        for (const d of dirs) d.remove();
      }
    }
  } finally {
    collector?.server.close();
  }
  const rows: Row[] = [];
  const has = (m: Mode) => RUN_MODES.includes(m);
  for (const side of COMPARE_DIR ? ['', COMPARED] : ['']) {
    for (const workload of ['messages', 'executions'] as const) {
      const row = (mode: string, base: Mode, max?: number) =>
        rows.push(rowOf(results, workload, mode, base, side, max));
      if (!has('metrics')) continue;
      if (control && !side) row(CONTROL_LABEL, 'metrics');
      if (has('on')) row('on', 'metrics', MAX_OVERHEAD);
      if (has('sampled')) row('sampled', 'metrics');
      if (has('unsampled')) row('unsampled', 'metrics', MAX_UNSAMPLED_OVERHEAD);
      if (has('otlp')) row('otlp', 'metrics', MAX_OVERHEAD);
      if (has('count')) row('count', 'metrics');
      if (has('off')) row('metrics', 'off', MAX_OVERHEAD);
    }
  }
  return {
    rows,
    notes: [
      `Telemetry off: [metrics] enabled = false, no span processor and [tracing] local_spans = 0 (the tracer is the no-op one; trace context still passes through); metrics only has local_spans = 0 too, the tracing modes the default span store plus the exporter. Tracing rows are measured against metrics only. Spans recorded in all reps (exported or counted): ${spans.toLocaleString('en')}.`,
      ...(collector
        ? [
            `The otlp mode's collector (in the suite's process) received ${collector.requests.toLocaleString('en')} export requests, ${(collector.bytes / 1e6).toFixed(1)} MB.`,
          ]
        : []),
      `${GENERATIONS} generation${GENERATIONS === 1 ? '' : 's'} of processes, one process per mode in each, all started first; ${WARMUP} warm-up rounds per generation (not counted), then ${ROUNDS} reps in all alternating the modes, order rotated each rep; per rep and mode ${MESSAGES.toLocaleString('en')} one-way informs to an in-process handler (each its own conversation) and ${EXECUTIONS.toLocaleString('en')} sequential executor.invoke() calls with the zero-latency scripted provider. CPU is the server process's (user + system, all threads: V8's GC helpers do part of what tracing adds) per operation; the raw results also hold the main thread's alone (main). Ratios are the median of per-rep ratios to the baseline's rep of the same round, with their interquartile range and a 95 % bootstrap interval of the median (CI).${control ? ' The control is a second metrics-only process measured against the first: what the method reads for identical code.' : ''}`,
    ],
    raw: results,
  };
}

function rowOf(results: Results, workload: Workload, mode: string, base: Mode, side: string, max?: number): Row {
  const [metric, unit, op] =
    workload === 'messages'
      ? ['messages accepted, delivered and acknowledged', 'msg/s', 'msg']
      : ['executions (context mode, 1 tool call, 2 model turns)', 'exec/s', 'exec'];
  const mine = results[mode + side]![workload];
  const theirs = results[base + side]![workload];
  const cpuRatios = mine.map((f, i) => f.cpu / theirs[i]!.cpu);
  const rateRatios = mine.map((f, i) => f.rate / theirs[i]!.rate);
  const cpuRatio = median(cpuRatios);
  const [lo, hi] = medianInterval(cpuRatios, rng(0x0b5));
  // The interquartile range: on a shared machine a rep or two always lands on a burst of other
  // work, and min–max then says more about the neighbours than about the mode.
  const spread = (xs: number[]) => `${fmt(quantile(xs, 0.25), 2)}–${fmt(quantile(xs, 0.75), 2)}`;
  const figure = (fs: Figure[]) =>
    `CPU ${fmt(median(fs.map((f) => f.cpu)), 1)} µs/${op}, ${fmt(median(fs.map((f) => f.rate)), 0)} ${unit}`;
  return {
    metric: `${side ? `[${COMPARE_DIR}] ` : ''}${metric}, ${mode === CONTROL_LABEL ? 'control: metrics only, a second process' : LABELS[modeOf(mode)]} (median of ${mine.length} reps)`,
    value: `${figure(mine)}; CPU ${fmt(cpuRatio, 2)} × (${spread(cpuRatios)}; CI ${fmt(lo, 2)}–${fmt(hi, 2)}), rate ${fmt(median(rateRatios), 2)} × (${spread(rateRatios)})`,
    baseline: `${LABELS[base]}: ${figure(theirs)}`,
    ...(max !== undefined && {
      target: `overhead ≤ ${max * 100} %`,
      verdict: cpuRatio <= 1 + max ? ('pass' as const) : ('fail' as const),
    }),
  };
}

const LABELS: Record<Mode, string> = {
  off: 'telemetry off',
  metrics: 'metrics only',
  on: 'metrics and tracing, every span recorded',
  sampled: `metrics and tracing, traces sampled at ${SAMPLE_RATIO * 100} %`,
  unsampled: 'metrics and tracing, no trace sampled',
  count: 'every span recorded, only counted (no span store, no exporter)',
  otlp: 'metrics and tracing, every span recorded and exported over OTLP/HTTP to a collector on 127.0.0.1',
};

export const observabilitySuite: Suite = {
  name: 'observability',
  description:
    'the cost of tracing (all spans, 10 % sampled, unsampled) and metrics on message delivery and agent execution, same run',
  run,
};
