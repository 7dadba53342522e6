/**
 * What tracing and metrics cost: the same workloads on a server with telemetry off ([metrics]
 * enabled = false, no span processor, [tracing] local_spans = 0), metrics only (local_spans = 0),
 * and metrics with tracing three ways: every span recorded, traces sampled at 10 %, and no trace
 * sampled (parentbased_always_off). Recorded spans go to the node's own span store (its default
 * size) and through a BatchSpanProcessor whose exporter discards the batches: span creation and
 * processing are measured, not a collector's network. Modes alternate, a fresh server each, in one run; each
 * figure is a throughput and the process CPU time per operation (steadier on a shared machine).
 *
 *  1. Messages: `bus.send()` of one-way informs to an in-process handler, accepted, delivered and
 *     acknowledged (route + deliver spans, message metrics).
 *  2. Executions: `executor.invoke()` in context mode with the zero-latency scripted provider, one
 *     tool call per execution (execute + 2 LLM + tool spans, execution/LLM/tool metrics).
 *
 * Targets: tracing with every span recorded costs at most 10 % against metrics only (throughput
 * ratio ≥ 0.90), unsampled tracing at most 3 %; metrics at most 10 % against telemetry off.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BatchSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { parseAgent } from '../src/agents/index.js';
import { loadServerConfig } from '../src/config/index.js';
import {
  newConversationId,
  newMessageId,
  type AclMessage,
  type ConversationId,
  type MessageId,
} from '../src/messaging/index.js';
import { createLogger } from '../src/observability/index.js';
import { startServer, type CaxtonServer } from '../src/server/index.js';
import { note } from './lib/progress.js';
import type { Row, Suite, SuiteReport } from './lib/report.js';
import { fmt } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';

const env = (name: string, def: number) => {
  const v = process.env[name];
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : def;
};

/** Sizes; the environment overrides them for quick runs (e.g. BENCH_ROUNDS=1 BENCH_MESSAGES=2000). */
const ROUNDS = env('BENCH_ROUNDS', 3);
const MESSAGES = env('BENCH_MESSAGES', 20_000);
const EXECUTIONS = env('BENCH_EXECUTIONS', 3_000);
const MAX_OVERHEAD = 0.1;
const MAX_UNSAMPLED_OVERHEAD = 0.03;
const SAMPLE_RATIO = 0.1;

/** Counts what it is given and drops it. */
class DiscardExporter implements SpanExporter {
  spans = 0;
  export(spans: ReadableSpan[], done: (r: { code: 0 }) => void): void {
    this.spans += spans.length;
    done({ code: 0 });
  }
  async shutdown(): Promise<void> {}
}

const SCRIPT = `[[rules]]\n[[rules.turns]]\ntool_calls = [{ name = "calculator", arguments = { expression = "6 * 7" } }]\n[[rules.turns]]\ncontent = "It is {{last_tool_result}}."\n`;

const MODES = ['off', 'metrics', 'on', 'sampled', 'unsampled'] as const;
type Mode = (typeof MODES)[number];
/** BENCH_MODES=on,off runs only those modes (profiling one of them). */
const RUN_MODES: readonly Mode[] = process.env.BENCH_MODES
  ? MODES.filter((m) => process.env.BENCH_MODES!.split(',').includes(m))
  : MODES;

async function start(dir: string, mode: Mode, exporter: DiscardExporter): Promise<CaxtonServer> {
  const on = mode !== 'off';
  const tracing = mode === 'on' || mode === 'sampled' || mode === 'unsampled';
  // The SDK reads the sampler from the environment (the standard OTEL_TRACES_SAMPLER variables).
  if (mode === 'sampled')
    Object.assign(process.env, {
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: String(SAMPLE_RATIO),
    });
  else if (mode === 'unsampled') Object.assign(process.env, { OTEL_TRACES_SAMPLER: 'parentbased_always_off' });
  else for (const k of ['OTEL_TRACES_SAMPLER', 'OTEL_TRACES_SAMPLER_ARG']) delete process.env[k];
  writeFileSync(join(dir, 'script.toml'), SCRIPT);
  // Without tracing nothing records, not even the node's own span store (on by default): with
  // tracing, spans go both to that store and to the exporter, as on a server with an OTLP endpoint.
  const localSpans = tracing ? '' : '[tracing]\nlocal_spans = 0\n';
  const file = join(dir, 'caxton.toml');
  writeFileSync(
    file,
    `data_dir = "data-${mode}-${Date.now()}"\nagents_dir = "agents"\n[server]\nport = 0\n[metrics]\nenabled = ${on}\nport = 0\n[logging]\nlevel = "warn"\n` +
      `[messaging]\nmax_queue = 10000000\n[llm]\ndefault_provider = "bench"\n[llm.providers.bench]\ntype = "scripted"\nscript = "script.toml"\n${localSpans}`,
  );
  const config = loadServerConfig({
    file,
    env: { CAXTON_AUTH__ENABLED: 'false' } /* auth has its own suite (auth) */,
    cwd: dir,
  });
  const server = await startServer({
    config,
    logger: createLogger('warn'),
    ...(tracing && {
      spanProcessors: [new BatchSpanProcessor(exporter, { maxQueueSize: 100_000, maxExportBatchSize: 2_048 })],
    }),
  });
  const now = new Date().toISOString();
  const parsed = parseAgent(
    `name = "calc"\ncapabilities = ["calc"]\nsystem_prompt = "bench"\ntools = ["calculator"]\n[messaging]\nmax_concurrency = 64\n`,
    { format: 'toml' },
  );
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  server.registry.upsert({
    definition: parsed.definition,
    format: 'toml',
    origin: { kind: 'api' },
    revision: 1,
    deployed_at: now,
    updated_at: now,
  });
  return server;
}

function inform(i: number): AclMessage {
  return {
    id: newMessageId() as MessageId,
    performative: 'inform',
    sender: 'bench',
    receivers: ['calc'],
    content: `message ${i}`,
    conversation_id: newConversationId() as ConversationId,
    params: {},
    timestamp: new Date().toISOString(),
    chain: [],
  };
}

/** User + system CPU time of this process, in µs. */
function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

interface Figure {
  /** Operations per second. */
  rate: number;
  /** Process CPU time per operation, in µs. */
  cpu: number;
}

async function messages(server: CaxtonServer): Promise<Figure> {
  let delivered = 0;
  let resolve!: () => void;
  const all = new Promise<void>((r) => (resolve = r));
  server.bus.registerHandler('calc', () => {
    if (++delivered === MESSAGES) resolve();
    return undefined;
  });
  const batch = Array.from({ length: MESSAGES }, (_, i) => inform(i));
  const c0 = cpuUs();
  const t0 = performance.now();
  await Promise.all(batch.map((m) => server.bus.send(m, { newId: true, newConversation: true })));
  await all;
  await server.bus.settled();
  const ms = performance.now() - t0;
  const cpu = (cpuUs() - c0) / MESSAGES;
  server.bus.unregisterHandler('calc');
  return { rate: (MESSAGES / ms) * 1000, cpu };
}

async function executions(server: CaxtonServer): Promise<Figure> {
  for (let i = 0; i < 300; i++) await server.executor.invoke('calc', { request: 'warm up' });
  const c0 = cpuUs();
  const t0 = performance.now();
  for (let i = 0; i < EXECUTIONS; i++) {
    const r = await server.executor.invoke('calc', { request: `what is 6 * 7? (${i})` });
    if (r.tool_calls.length !== 1) throw new Error(`expected one tool call, got ${r.tool_calls.length}`);
  }
  return { rate: (EXECUTIONS / (performance.now() - t0)) * 1000, cpu: (cpuUs() - c0) / EXECUTIONS };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function run(): Promise<SuiteReport> {
  const dir = tempDir('caxton-bench-obs-');
  const empty = () => ({ messages: [] as Figure[], executions: [] as Figure[] });
  const results: Record<Mode, { messages: Figure[]; executions: Figure[] }> = {
    off: empty(),
    metrics: empty(),
    on: empty(),
    sampled: empty(),
    unsampled: empty(),
  };
  let spans = 0;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const mode of RUN_MODES) {
        const exporter = new DiscardExporter();
        const server = await start(dir.path, mode, exporter);
        try {
          note(
            `round ${round + 1}/${ROUNDS}, telemetry ${mode}: ${MESSAGES.toLocaleString('en')} messages, ${EXECUTIONS.toLocaleString('en')} executions`,
          );
          results[mode].messages.push(await messages(server));
          results[mode].executions.push(await executions(server));
        } finally {
          await server.close();
        }
        spans += exporter.spans;
      }
    }
  } finally {
    dir.remove();
  }
  const MESSAGES_METRIC = 'messages accepted, delivered and acknowledged';
  const EXECUTIONS_METRIC = 'executions (context mode, 1 tool call, 2 model turns)';
  const row = (workload: 'messages' | 'executions', mode: Mode, base: Mode, max: number): Row => {
    const [metric, unit, op] =
      workload === 'messages' ? [MESSAGES_METRIC, 'msg/s', 'msg'] : [EXECUTIONS_METRIC, 'exec/s', 'exec'];
    const rate = median(results[mode][workload].map((f) => f.rate));
    const baseRate = median(results[base][workload].map((f) => f.rate));
    const cpu = median(results[mode][workload].map((f) => f.cpu));
    const baseCpu = median(results[base][workload].map((f) => f.cpu));
    const ratio = rate / baseRate;
    return {
      metric: `${metric}, ${LABELS[mode]} (median of ${ROUNDS})`,
      value: `${fmt(rate, 0)} ${unit} (${fmt(ratio, 2)} ×, overhead ${fmt((1 - ratio) * 100, 1)} %); CPU ${fmt(cpu, 1)} µs/${op} (${fmt(cpu / baseCpu, 2)} ×)`,
      baseline: `${fmt(baseRate, 0)} ${unit}, CPU ${fmt(baseCpu, 1)} µs/${op}: ${LABELS[base]}`,
      target: `overhead ≤ ${max * 100} %`,
      verdict: ratio >= 1 - max ? 'pass' : 'fail',
    };
  };
  const rows: Row[] = [];
  const has = (m: Mode) => results[m].messages.length > 0;
  for (const workload of ['messages', 'executions'] as const) {
    if (has('metrics')) {
      if (has('on')) rows.push(row(workload, 'on', 'metrics', MAX_OVERHEAD));
      if (has('sampled')) rows.push(row(workload, 'sampled', 'metrics', MAX_OVERHEAD));
      if (has('unsampled')) rows.push(row(workload, 'unsampled', 'metrics', MAX_UNSAMPLED_OVERHEAD));
      if (has('off')) rows.push(row(workload, 'metrics', 'off', MAX_OVERHEAD));
    }
  }
  return {
    rows,
    notes: [
      `Telemetry off: [metrics] enabled = false, no span processor and [tracing] local_spans = 0 (the tracer is the no-op one; trace context still passes through); metrics only has local_spans = 0 too, the tracing modes the default span store plus the exporter. Tracing rows are measured against metrics only, so they show what tracing adds; every tracing mode has metrics on. All spans recorded: ${spans.toLocaleString('en')} spans reached the discarding exporter in all rounds.`,
      `Rounds alternate the modes with a fresh server each; per round ${MESSAGES.toLocaleString('en')} one-way informs to an in-process handler (each its own conversation) and ${EXECUTIONS.toLocaleString('en')} sequential executor.invoke() calls with the zero-latency scripted provider.`,
    ],
    raw: results,
  };
}

const LABELS: Record<Mode, string> = {
  off: 'telemetry off',
  metrics: 'metrics only',
  on: 'metrics and tracing, every span recorded',
  sampled: `metrics and tracing, traces sampled at ${SAMPLE_RATIO * 100} %`,
  unsampled: 'metrics and tracing, no trace sampled',
};

export const observabilitySuite: Suite = {
  name: 'observability',
  description:
    'the cost of tracing (all spans, 10 % sampled, unsampled) and metrics on message delivery and agent execution, same run',
  run,
};
