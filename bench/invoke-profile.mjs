/**
 * Where one context-mode invoke spends its time and its allocation, site by site: a probe, not a
 * suite. The build in DIR/dist (as bench/lib/invoke-inject.mjs serves it: [audit], [events] and
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
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

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
  ['inject (the harness)', /light-my-request|invoke-profile/],
  ['node:http response', /_http_|node:net|streams\//],
];

const work = mkdtempSync(join(tmpdir(), 'caxton-bench-invoke-profile-'));
const dist = (p) => import(pathToFileURL(resolve(dir, 'dist', p)).href);
const { loadServerConfig } = await dist('config/index.js');
const { createLogger } = await dist('observability/index.js');
const { startServer } = await dist('server/index.js');
const file = join(work, 'caxton.toml');
writeFileSync(join(work, 'script.toml'), `[[rules]]\nname = "text"\ncontent = "ok: {{request}}"\n`);
writeFileSync(
  file,
  `data_dir = "data"\nagents_dir = "agents"\n[server]\nhost = "127.0.0.1"\nport = 0\n[metrics]\nenabled = false\n[logging]\nlevel = "warn"\n` +
    `[llm]\ndefault_provider = "bench"\n[llm.providers.bench]\ntype = "scripted"\nscript = "script.toml"\n[events]\nenabled = true\n[audit]\nenabled = true\n`,
);
process.chdir(work);
const config = loadServerConfig({ file, env: { CAXTON_AUTH__ENABLED: 'false' } });
const server = await startServer({ config, logger: createLogger('warn'), listen: false });
const app = server.app;
const agent = `name = "text"\nversion = "1.0.0"\ndescription = "bench"\ncapabilities = ["benchmarking"]\nsystem_prompt = "Answer briefly."\n\n[execution]\nisolation = "context"\n`;
const d = await app.inject({
  method: 'POST',
  url: '/api/v1/agents',
  headers: { 'content-type': 'application/toml' },
  payload: agent,
});
if (d.statusCode !== 201) throw new Error(d.body);
const one = async () => {
  const r = await app.inject({
    method: 'POST',
    url: '/api/v1/agents/text/invoke',
    headers: { 'content-type': 'application/json', host: '127.0.0.1' },
    payload: '{"request":"hello"}',
  });
  if (r.statusCode !== 200) throw new Error(r.body);
};
const run = async (n) => {
  let i = 0;
  await Promise.all(
    Array.from({ length: 10 }, async () => {
      while (i++ < n) await one();
    }),
  );
};
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
await server.close();
rmSync(work, { recursive: true, force: true });
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
