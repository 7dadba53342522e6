/**
 * Where one context-mode invoke spends its time and its allocation, site by site: a probe, not a
 * suite. The build in DIR/dist (as bench/lib/inject-server.mjs serves it: [audit], [events] and
 * execution records on, the audit-events suite's agent and scripted stand-in, 10 invokes in flight
 * through `app.inject`), warmed by WARM invokes (3,000), then N invokes under V8's CPU profiler
 * (50 µs interval) and N under its sampling heap profiler (every 512 bytes, objects the young and
 * old generation collections freed included). Prints the main thread's profiled time and the
 * allocation per invoke, then each site's share: every sample goes to the innermost frame that
 * names a site (SITES, by file), so a site's share holds what it calls unless that is a site too.
 * What it leaves out: the socket (inject stands in for it: its own share is printed apart).
 *
 *   npm run build && node bench/invoke-profile.mjs DIR [N] [OUT]     (N 10,000; OUT keeps the profiles)
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { startInjectServer } from './lib/inject-server.mjs';

const [dir = '.', count = '10000', out] = process.argv.slice(2);
const N = Number(count);
const INTERVAL_US = 50;

/** Innermost match wins; the order breaks ties within one frame. */
const SITES = [
  ['rows: execution record INSERT', /execution\/records\/sqlite/],
  ['rows: audit INSERT', /dist\/audit\/store/],
  ['rows: event INSERT', /observability\/events\.js:19\d/],
  ['turn writer (transaction, commit)', /storage\/turn-writer|turn-batcher|better-sqlite3/],
  ['scripted provider (the stand-in)', /llm\/scripted/],
  ['provider registry, fallbacks', /llm\/registry/],
  ['prompt building', /execution\/prompt|initialMessages/],
  ['execution record building (entryOf)', /records\/model/],
  ['audit row building', /dist\/audit\//],
  ['event row building', /observability\/events/],
  ['tracing (spans, context)', /span-recorder|trace-context|sync-context|span-store|@opentelemetry|request-trace/],
  ['metrics', /prom-client|observability\/metrics/],
  ['logging', /pino|lazy-log|observability\/logger/],
  ['auth', /dist\/auth\//],
  ['body parse', /json-body|json-text|content-type-parser\.js|shared\/utf8/],
  ['zod validation', /zod/],
  ['ids', /shared\/ids|request-id|randomUUID|crypto\/random/],
  ['deadline, AbortSignal', /abort_controller|executor\.js:\d+.*Deadline|^Deadline|^get signal .*executor/],
  ['runAgent (the model/tool loop)', /run-agent/],
  ['executor', /execution\/executor|server\/components/],
  ['invoke route handler', /routes\/invoke|api\/sse|api\/caller/],
  ['API hooks (request id, scrub, metrics)', /api\/app\.js/],
  ['fastify, router', /fastify|find-my-way/],
  ['inject (the harness)', /light-my-request|inject-server/],
  ['node:http response', /_http_|node:net|streams\//],
];

const { run, close } = await startInjectServer(dir);
await run(Number(process.env.WARM ?? 3000));

const s = new Session();
s.connect();
await s.post('Profiler.enable');
await s.post('Profiler.setSamplingInterval', { interval: INTERVAL_US });
await s.post('Profiler.start');
await run(N);
const { profile: cpu } = await s.post('Profiler.stop');
await s.post('HeapProfiler.enable');
await s.post('HeapProfiler.startSampling', {
  samplingInterval: 512,
  includeObjectsCollectedByMajorGC: true,
  includeObjectsCollectedByMinorGC: true,
});
await run(N);
const { profile: heap } = await s.post('HeapProfiler.stopSampling');
await close();
if (out) {
  writeFileSync(`${out}.cpuprofile`, JSON.stringify(cpu));
  writeFileSync(`${out}.heapprofile`, JSON.stringify(heap));
}

const frame = (cf) => `${cf.functionName} ${cf.url}:${cf.lineNumber + 1}`;
const siteOf = (chain) => {
  for (const f of chain) {
    const hit = SITES.find(([, re]) => re.test(f));
    if (hit) return hit[0];
  }
  return undefined;
};
const byId = new Map(cpu.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of cpu.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const samples = new Map();
for (const id of cpu.samples) samples.set(id, (samples.get(id) ?? 0) + 1);
const share = new Map();
for (const [id, k] of samples) {
  const chain = [];
  for (let x = id; x !== undefined; x = parent.get(x)) chain.push(frame(byId.get(x).callFrame));
  const name = byId.get(id).callFrame.functionName;
  const site =
    siteOf(chain) ??
    (name === '(garbage collector)' ? 'GC' : name === '(idle)' ? 'idle' : 'other (microtask queue, timers, VM)');
  share.set(site, (share.get(site) ?? 0) + k);
}
let bytes = 0;
const walk = (n) => {
  bytes += n.selfSize;
  n.children.forEach(walk);
};
walk(heap.head);
const total = cpu.samples.length;
const perInvoke = (total * INTERVAL_US) / N;
console.log(
  `main thread, profiled: ${perInvoke.toFixed(1)} µs per invoke; allocated ${(bytes / N / 1024).toFixed(1)} KB per invoke`,
);
for (const [site, k] of [...share].sort((a, b) => b[1] - a[1]))
  console.log(
    `${((100 * k) / total).toFixed(1).padStart(5)} %  ${((perInvoke * k) / total).toFixed(1).padStart(6)} µs  ${site}`,
  );
process.exit(0);
