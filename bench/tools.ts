/**
 * WebAssembly tool servers: a trivial tool call through the full sandbox path (schema
 * check, fuel-metered call over the Extism kernel ABI, audit record into SQLite), tool-server start
 * time, idle memory per loaded server and 1,000 servers loaded at once. Every figure stands beside
 * a raw WebAssembly call / instantiation measured in the same run. Targets: p99 ≤ 100 µs,
 * ≥ 100,000 calls/s, start ≤ 10 ms; documented: idle memory < 1 MB per server.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDatabase } from '../src/storage/index.js';
import type { ToolContext } from '../src/tools/index.js';
import {
  clearPreparedModules,
  DEFAULT_TOOL_CAPS,
  loadQuickJS,
  parseToolManifestOrThrow,
  WasmToolServer,
} from '../src/tools/servers/index.js';
import { ToolAuditStore } from '../src/audit/index.js';
import { WA, type WasmInstance } from '../src/tools/servers/wasm/webassembly.js';
import { MB, snapshot } from './lib/memory.js';
import { note } from './lib/progress.js';
import type { Row, Suite, SuiteReport } from './lib/report.js';
import { envNumber, fmt, fmtMs, fmtUs, summarize, verdict, type Summary } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';

const env = envNumber;

const CALLS = env('BENCH_TOOL_CALLS', 200_000);
const WARMUP = 20_000;
const STARTS = 200;
const COLD_STARTS = 20;
const SERVERS = env('BENCH_TOOL_SERVERS', 1000);

const P99_US = 100;
const CALLS_PER_S = 100_000;
const START_MS = 10;
const IDLE_MB = 1;

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const EXAMPLE = join(root, 'examples/tools/text');
/** A trivial JavaScript tool server (QuickJS-in-WebAssembly): `echo` returns its arguments. */
const JS_MANIFEST =
  'name = "js-echo"\nversion = "1.0.0"\ndescription = "echo in JavaScript"\nmodule = "tool.js"\n[[tools]]\nname = "echo"\ndescription = "returns its arguments"\n';
const JS_SOURCE = 'export function echo(input) { return input; }\n';
const JS_CALLS = env('BENCH_JS_TOOL_CALLS', 20_000);
const HOP_CALLS = env('BENCH_TOOL_HOP_CALLS', 20_000);
const us = (s: Summary) => `p50 ${fmtUs(s.p50)} / p99 ${fmtUs(s.p99)}`;

/** A trivial module for the raw baseline: `nop` returns 0 (no sandbox, no metering). */
const RAW_WASM = Buffer.from(
  // magic, version; type () -> i32; function 0: type 0; memory: 1 page; exports nop, memory; code: i32.const 0
  '0061736d010000000105016000017f030201000503010001071002036e6f700000066d656d6f727902000a0601040041000b',
  'hex',
);

/** Per-call latencies (ms) of `fn`, timed one by one, plus the throughput of a back-to-back run. */
async function measure(fn: () => unknown | Promise<unknown>, n: number): Promise<{ lat: Summary; per_s: number }> {
  for (let i = 0; i < Math.min(WARMUP, n); i++) await fn();
  const samples = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    samples[i] = Number(process.hrtime.bigint() - t0) / 1e6;
  }
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await fn();
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return { lat: summarize(samples), per_s: n / s };
}

function timeMs(fn: () => unknown): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

async function run(): Promise<SuiteReport> {
  if (!existsSync(join(EXAMPLE, 'build/text.wasm'))) {
    note('building the example tool (npm run build:tools)');
    execFileSync(process.execPath, [join(root, 'scripts/build-tools.mjs')], { stdio: 'inherit' });
  }
  const dir = tempDir('caxton-bench-tools-');
  const db = openDatabase(dir.path);
  const audit = new ToolAuditStore(db);
  try {
    // ── calls ────────────────────────────────────────────────────────────────
    note(`raw WebAssembly call ×${CALLS}`);
    const rawModule = new WA.Module(RAW_WASM);
    const raw = new WA.Instance(rawModule, {});
    const nop = raw.exports.nop as () => number;
    const rawCall = await measure(() => nop(), CALLS);

    const server = WasmToolServer.load(EXAMPLE, { audit });
    const echo = server.tools.find((t) => t.name === 'text.echo')!;
    const ctx: ToolContext = {
      agent: 'bench',
      execution_id: 'bench-1',
      conversation_id: 'conv-1',
      deadline: Date.now() + 3_600_000,
      signal: new AbortController().signal,
    };
    const args = { text: 'hello' };
    const check = await echo.invoke(args, ctx);
    if (check.content !== '{"text":"hello"}') throw new Error(`text.echo answered ${JSON.stringify(check)}`);

    note(`full sandbox path (Tool.invoke → schema → metered call → audit in SQLite) ×${CALLS}`);
    const full = await measure(() => echo.invoke(args, ctx), CALLS);
    audit.flush();
    const audited = (db.prepare('SELECT count(*) AS n FROM tool_audit').get() as { n: number }).n;

    note(`sandbox call only (no schema, no audit) ×${CALLS}`);
    const input = new TextEncoder().encode(JSON.stringify(args));
    const sandboxOnly = await measure(() => server.callRaw('echo', input), CALLS);

    note(`JavaScript tool (QuickJS-in-WebAssembly), full sandbox path ×${JS_CALLS}`);
    // The shared QuickJS module is compiled once per process, before the first JavaScript sandbox
    // (the tool manager does the same when it loads a JavaScript tool server).
    await loadQuickJS();
    const jsServer = new WasmToolServer(
      parseToolManifestOrThrow(JS_MANIFEST).manifest,
      new TextEncoder().encode(JS_SOURCE),
      { audit },
    );
    const jsEcho = jsServer.tools[0]!;
    const jsCheck = await jsEcho.invoke(args, ctx);
    if (jsCheck.content !== '{"text":"hello"}') throw new Error(`js-echo.echo answered ${JSON.stringify(jsCheck)}`);
    const jsFull = await measure(() => jsEcho.invoke(args, ctx), JS_CALLS);
    const jsStart = summarize(
      Array.from({ length: 50 }, () =>
        timeMs(() =>
          new WasmToolServer(
            parseToolManifestOrThrow(JS_MANIFEST).manifest,
            new TextEncoder().encode(JS_SOURCE),
          ).close(),
        ),
      ),
    );
    jsServer.close();
    audit.flush();

    // ── the thread hop: the same calls on a worker thread ───────────
    note(`text.echo on a worker thread (in_thread_fuel = 0) ×${HOP_CALLS}`);
    const hopServer = WasmToolServer.load(EXAMPLE, { audit, caps: { ...DEFAULT_TOOL_CAPS, in_thread_fuel: 0 } });
    const hopEcho = hopServer.tools.find((t) => t.name === 'text.echo')!;
    if ((await hopEcho.invoke(args, ctx)).content !== '{"text":"hello"}' || !hopServer.offThread)
      throw new Error('text.echo on a worker did not answer');
    const hop = await measure(() => hopEcho.invoke(args, ctx), HOP_CALLS);
    hopServer.close();
    note(`JavaScript echo on a worker thread (the default for JavaScript servers) ×${HOP_CALLS}`);
    const jsHopServer = new WasmToolServer(
      parseToolManifestOrThrow(JS_MANIFEST).manifest,
      new TextEncoder().encode(JS_SOURCE),
      { audit, caps: DEFAULT_TOOL_CAPS },
    );
    const jsHopEcho = jsHopServer.tools[0]!;
    if ((await jsHopEcho.invoke(args, ctx)).content !== '{"text":"hello"}' || !jsHopServer.offThread)
      throw new Error('js echo on a worker did not answer');
    const jsHop = await measure(() => jsHopEcho.invoke(args, ctx), HOP_CALLS);
    jsHopServer.close();
    audit.flush();

    // ── start ────────────────────────────────────────────────────────────────
    note('start times');
    const bytes = readFileSync(join(EXAMPLE, 'build/text.wasm'));
    // Every import a stub: the raw baseline links without Caxton's host functions.
    const stubImports = new Proxy({}, { get: () => new Proxy({}, { get: () => () => 0n }) }) as Record<
      string,
      Record<string, unknown>
    >;
    const rawStart = summarize(
      Array.from({ length: STARTS }, () => timeMs(() => new WA.Instance(new WA.Module(bytes), stubImports))),
    );
    const cold = summarize(
      Array.from({ length: COLD_STARTS }, () => {
        clearPreparedModules();
        return timeMs(() => WasmToolServer.load(EXAMPLE));
      }),
    );
    const warm = summarize(Array.from({ length: STARTS }, () => timeMs(() => WasmToolServer.load(EXAMPLE))));

    // ── 1,000 servers ────────────────────────────────────────────────────────
    note(`${SERVERS} tool servers loaded at once`);
    const rawBefore = await snapshot();
    const rawInstances: WasmInstance[] = [];
    for (let i = 0; i < SERVERS; i++) rawInstances.push(new WA.Instance(rawModule, {}));
    const rawAfter = await snapshot();
    const rawPer = (rawAfter.rss - rawBefore.rss) / SERVERS;
    rawInstances.length = 0;

    const before = await snapshot();
    const servers: WasmToolServer[] = [];
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < SERVERS; i++) servers.push(WasmToolServer.load(EXAMPLE, { audit }));
    const loadAllMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const after = await snapshot();
    const perServer = {
      rss: (after.rss - before.rss) / SERVERS,
      heap: (after.heapUsed - before.heapUsed) / SERVERS,
      external: (after.external - before.external) / SERVERS,
      wasm_memory: servers.reduce((a, s) => a + s.sandbox.memoryBytes, 0) / SERVERS,
    };
    const t1 = process.hrtime.bigint();
    let answered = 0;
    for (const s of servers) if ((await s.tools[0]!.invoke(args, ctx)).content === '{"text":"hello"}') answered++;
    const callAllMs = Number(process.hrtime.bigint() - t1) / 1e6;
    audit.flush();

    const rows: Row[] = [
      {
        metric: 'trivial tool call (text.echo), full sandbox path: latency',
        value: us(full.lat),
        baseline: `raw WebAssembly call ${us(rawCall.lat)}`,
        target: `p99 ≤ ${P99_US} µs`,
        verdict: verdict(full.lat.p99 * 1000 <= P99_US),
      },
      {
        metric: 'trivial tool call, full sandbox path: calls/s (one thread, back to back)',
        value: fmt(full.per_s, 0),
        baseline: `raw WebAssembly call ${fmt(rawCall.per_s, 0)}/s`,
        target: `≥ ${fmt(CALLS_PER_S, 0)}`,
        verdict: verdict(full.per_s >= CALLS_PER_S),
      },
      {
        metric: 'trivial JavaScript tool call (QuickJS-in-WebAssembly), full sandbox path',
        value: `${us(jsFull.lat)}, ${fmt(jsFull.per_s, 0)}/s`,
        baseline: `WebAssembly tool ${us(full.lat)}, ${fmt(full.per_s, 0)}/s`,
      },
      {
        metric: 'JavaScript tool-server start (runtime + context + module evaluation)',
        value: `p50 ${fmtMs(jsStart.p50)} / p99 ${fmtMs(jsStart.p99)}`,
        baseline: `WebAssembly warm start measured below`,
      },
      {
        metric: 'trivial tool call (text.echo) on a worker thread, full path (servers above in_thread_fuel)',
        value: `${us(hop.lat)}, ${fmt(hop.per_s, 0)}/s`,
        baseline: `same call in the server thread ${us(full.lat)}`,
        target: 'p50 ≤ 100 µs',
        verdict: verdict(hop.lat.p50 * 1000 <= 100),
      },
      {
        metric: 'trivial JavaScript tool call on a worker thread, full path (every JavaScript server)',
        value: `${us(jsHop.lat)}, ${fmt(jsHop.per_s, 0)}/s`,
        baseline: `in the server thread ${us(jsFull.lat)}`,
      },
      {
        metric: 'sandbox call only (metered call over the kernel ABI, no schema/audit)',
        value: `${us(sandboxOnly.lat)}, ${fmt(sandboxOnly.per_s, 0)}/s`,
        baseline: `raw ${us(rawCall.lat)}`,
      },
      {
        metric: 'tool-server start (manifest, module cached: instance + start)',
        value: `p50 ${fmtMs(warm.p50)} / p99 ${fmtMs(warm.p99)}`,
        baseline: `raw compile + instantiate of the same .wasm p50 ${fmtMs(rawStart.p50)}`,
        target: `≤ ${START_MS} ms`,
        verdict: verdict(warm.p50 <= START_MS),
      },
      {
        metric: 'tool-server start, cold (validate + instrument + compile + instantiate)',
        value: `p50 ${fmtMs(cold.p50)} / max ${fmtMs(cold.max)}`,
        baseline: `raw p50 ${fmtMs(rawStart.p50)}`,
        target: `≤ ${START_MS} ms`,
        verdict: verdict(cold.p50 <= START_MS),
      },
      {
        metric: 'idle memory per loaded tool server (RSS delta / servers)',
        value: `${fmt(perServer.rss / 1024, 0)} KiB (heap ${fmt(perServer.heap / 1024, 0)} KiB, linear memory ${fmt(perServer.wasm_memory / 1024, 0)} KiB reserved)`,
        baseline: `raw instance ${fmt(rawPer / 1024, 0)} KiB`,
        target: `< ${IDLE_MB} MB`,
        verdict: verdict(perServer.rss < IDLE_MB * MB),
      },
      {
        metric: `${SERVERS} tool servers loaded at once: load all / one call to each`,
        value: `${fmtMs(loadAllMs)} / ${fmtMs(callAllMs)}; ${answered} of ${SERVERS} answered; RSS +${fmt((after.rss - before.rss) / MB, 0)} MB`,
        baseline: `raw: ${SERVERS} instances RSS +${fmt((rawAfter.rss - rawBefore.rss) / MB, 1)} MB`,
        target: `all answer`,
        verdict: verdict(answered === SERVERS),
      },
    ];
    return {
      rows,
      notes: [
        'Servers built here without caps run in the bench thread (no worker hop); CPU is bounded by fuel injected into the module. Under the operator caps JavaScript servers and WebAssembly servers with more fuel than [tools.limits] in_thread_fuel run on a worker thread of their own: the "worker thread" rows measure that hop.',
        `Full path = Tool.invoke: JSON-schema check (ajv), JSON encode, fuel reset, guest call over Extism's kernel ABI (input_length/input_load_*, alloc, store_*, output_set), output decode, SHA-256 of the arguments, audit record (batched SQLite insert, one transaction per event-loop turn). ${audited} audit rows written for the latency run.`,
        'Latency samples are timed one by one with hrtime (≈0.1 µs overhead); calls/s is a separate back-to-back run.',
        `Cold start builds a fresh fuel-instrumented module (cache cleared); warm start reuses the compiled module (same package loaded again, or 1,000 servers of one package).`,
      ],
      raw: {
        calls: CALLS,
        raw_call: rawCall,
        full,
        hop: { calls: HOP_CALLS, wasm: hop, js: jsHop },
        js: { calls: JS_CALLS, full: jsFull, start: jsStart },
        sandbox_only: sandboxOnly,
        start: { raw: rawStart, cold, warm },
        servers: {
          count: SERVERS,
          load_all_ms: loadAllMs,
          call_all_ms: callAllMs,
          answered,
          per_server: perServer,
          raw_per_instance_rss: rawPer,
          before,
          after,
        },
      },
    };
  } finally {
    audit.close();
    db.close();
    dir.remove();
  }
}

export const toolsSuite: Suite = {
  name: 'tools',
  description: 'WebAssembly tool servers: call latency and throughput, start time, memory per server, 1,000 servers',
  run,
};
