/**
 * One server of the observability suite in its own process (bench/observability.ts forks one per
 * mode): it starts the server for the mode named on its command line, then runs the workloads the
 * parent asks for over IPC, one rep at a time, and answers each with its throughput and the CPU
 * time this process spent per operation. A process per mode keeps each mode's heap, garbage and
 * JIT its own; the parent alternates the reps, so every mode meets the same machine load.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import {
  BatchSpanProcessor,
  type ReadableSpan,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { parseAgent } from '../../src/agents/index.js';
import { loadServerConfig } from '../../src/config/index.js';
import {
  newConversationId,
  newMessageId,
  type AclMessage,
  type ConversationId,
  type MessageId,
} from '../../src/messaging/index.js';
import { createLogger } from '../../src/observability/index.js';
import { startServer, type CaxtonServer } from '../../src/server/index.js';

/**
 * The modes. `count` records every span but hands it to a processor that only counts (no span
 * store, no exporter: what recording itself costs). `otlp` is `on` with the server's own OTLP/HTTP
 * exporter (OTEL_EXPORTER_OTLP_ENDPOINT, set by the suite to its collector) instead of the
 * discarding one: what serializing and sending the spans adds.
 */
export const MODES = ['off', 'metrics', 'on', 'sampled', 'unsampled', 'count', 'otlp'] as const;
export type Mode = (typeof MODES)[number];
export type Workload = 'messages' | 'executions';

export interface Figure {
  /** Operations per second. */
  rate: number;
  /** Process CPU time (user + system, every thread) per operation, in µs. */
  cpu: number;
  /**
   * The main thread's CPU time per operation, in µs: the server's own work, without V8's
   * background compiler and GC helper threads or libuv's pool, whose share varies from rep to rep.
   */
  main: number;
  /** Garbage collection pauses per operation, in µs. */
  gc: number;
}

export type ToNode = { type: 'run'; workload: Workload; n: number } | { type: 'close' };
export type FromNode =
  | { type: 'ready' }
  | { type: 'figure'; figure: Figure }
  | { type: 'closed'; spans: number }
  | { type: 'error'; message: string };

export const SAMPLE_RATIO = 0.1;

/** Counts what it is given and drops it. */
class DiscardExporter implements SpanExporter {
  spans = 0;
  export(spans: ReadableSpan[], done: (r: { code: 0 }) => void): void {
    this.spans += spans.length;
    done({ code: 0 });
  }
  async shutdown(): Promise<void> {}
}

/** Records that a span ended and nothing else. */
class CountingProcessor implements SpanProcessor {
  spans = 0;
  onStart(): void {}
  onEnd(): void {
    this.spans++;
  }
  async forceFlush(): Promise<void> {}
  async shutdown(): Promise<void> {}
}

const SCRIPT = `[[rules]]\n[[rules.turns]]\ntool_calls = [{ name = "calculator", arguments = { expression = "6 * 7" } }]\n[[rules.turns]]\ncontent = "It is {{last_tool_result}}."\n`;

async function start(dir: string, mode: Mode): Promise<{ server: CaxtonServer; spans: () => number }> {
  const tracing = mode !== 'off' && mode !== 'metrics';
  // The recorder reads the sampler from the environment (the standard OTEL_TRACES_SAMPLER variables).
  if (mode === 'sampled')
    Object.assign(process.env, {
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: String(SAMPLE_RATIO),
    });
  else if (mode === 'unsampled') Object.assign(process.env, { OTEL_TRACES_SAMPLER: 'parentbased_always_off' });
  else for (const k of ['OTEL_TRACES_SAMPLER', 'OTEL_TRACES_SAMPLER_ARG']) delete process.env[k];
  writeFileSync(join(dir, 'script.toml'), SCRIPT);
  // The node's own span store is on by default: modes without tracing, and `count`, turn it off;
  // the others record into it as a server does.
  const store = tracing && mode !== 'count';
  // The batch processor as the server builds it for OTLP (tracing.ts): the SDK's batch settings,
  // so a finished span waits in the export queue as long as it would in production.
  const exporter = new DiscardExporter();
  const counter = new CountingProcessor();
  const processors: SpanProcessor[] =
    mode === 'count' ? [counter] : tracing && mode !== 'otlp' ? [new BatchSpanProcessor(exporter)] : [];
  const file = join(dir, 'caxton.toml');
  writeFileSync(
    file,
    `data_dir = "data"\nagents_dir = "agents"\n[server]\nport = 0\n[metrics]\nenabled = ${mode !== 'off'}\nport = 0\n[logging]\nlevel = "warn"\n` +
      `[messaging]\nmax_queue = 10000000\n[llm]\ndefault_provider = "bench"\n[llm.providers.bench]\ntype = "scripted"\nscript = "script.toml"\n` +
      (store ? '' : '[tracing]\nlocal_spans = 0\n'),
  );
  const config = loadServerConfig({
    file,
    env: { CAXTON_AUTH__ENABLED: 'false' } /* auth has its own suite (auth) */,
    cwd: dir,
  });
  const server = await startServer({
    config,
    logger: createLogger('error'),
    ...(processors.length > 0 && { spanProcessors: processors }),
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
  return { server, spans: () => exporter.spans + counter.spans };
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

function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** This thread's CPU time in µs (Linux schedstat, ns precision); NaN where there is none. */
function threadCpuUs(): number {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ', 1)[0]) / 1000;
  } catch {
    return Number.NaN;
  }
}

let gcMs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcMs += e.duration;
}).observe({ entryTypes: ['gc'] });

async function measure(n: number, work: () => Promise<void>): Promise<Figure> {
  const gc0 = gcMs;
  const m0 = threadCpuUs();
  const c0 = cpuUs();
  const t0 = performance.now();
  await work();
  const ms = performance.now() - t0;
  const cpu = (cpuUs() - c0) / n;
  const main = (threadCpuUs() - m0) / n;
  // GC entries arrive on a later turn.
  await new Promise((r) => setImmediate(r));
  return { rate: (n / ms) * 1000, cpu, main, gc: ((gcMs - gc0) * 1000) / n };
}

function messages(server: CaxtonServer, n: number): Promise<Figure> {
  const batch = Array.from({ length: n }, (_, i) => inform(i));
  return measure(n, async () => {
    let delivered = 0;
    let resolve!: () => void;
    const all = new Promise<void>((r) => (resolve = r));
    server.bus.registerHandler('calc', () => {
      if (++delivered === n) resolve();
      return undefined;
    });
    await Promise.all(batch.map((m) => server.bus.send(m, { newId: true, newConversation: true })));
    await all;
    await server.bus.settled();
    server.bus.unregisterHandler('calc');
  });
}

function executions(server: CaxtonServer, n: number): Promise<Figure> {
  return measure(n, async () => {
    for (let i = 0; i < n; i++) {
      const r = await server.executor.invoke('calc', { request: `what is 6 * 7? (${i})` });
      if (r.tool_calls.length !== 1) throw new Error(`expected one tool call, got ${r.tool_calls.length}`);
    }
  });
}

async function main(): Promise<void> {
  const [mode, dir] = process.argv.slice(2) as [Mode, string];
  const send = (m: FromNode) => process.send!(m);
  const { server, spans } = await start(dir, mode);
  process.on('message', (m: ToNode) => {
    if (m.type === 'close') {
      void server.close().then(() => {
        send({ type: 'closed', spans: spans() });
        process.disconnect();
      });
      return;
    }
    void (m.workload === 'messages' ? messages(server, m.n) : executions(server, m.n)).then(
      (figure) => send({ type: 'figure', figure }),
      (e: unknown) => send({ type: 'error', message: e instanceof Error ? e.message : String(e) }),
    );
  });
  send({ type: 'ready' });
}

// Imported by the suite for its types and modes; run only as the forked process.
if (process.send && process.argv[1] === fileURLToPath(import.meta.url))
  main().catch((e: unknown) => process.send!({ type: 'error', message: String(e) }));
