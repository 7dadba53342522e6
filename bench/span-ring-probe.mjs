/**
 * What the node's own span store costs an execution's four spans, and what a store that keeps its
 * spans off the JavaScript heap would cost instead: the smallest experiment for the span store's
 * share of tracing's overhead. Each rep is a fresh child process running one store behind the
 * server's own recorder (setupTracing, built `dist/`), with the same spans an execution records
 * (a root, two model calls and a tool call, their attributes as the execution path gives them)
 * and 120 short-lived objects and a JSON text per execution standing in for the rest of the path,
 * so the young generation turns over as it does in a server. The ring is full before measuring.
 *
 *   node bench/span-ring-probe.mjs [executions per rep] [reps]
 *
 * Stores: `count` keeps nothing (a processor that counts), `store` is SpanStore as it ships
 * (10,000 spans, 16 MB: the defaults), `bytes` writes each ended span into one preallocated
 * Buffer ring (ids and name as latin1, times as doubles, attributes as JSON), so a kept span
 * holds no object on the heap. `flat` is the store's columns with each span's attribute values in
 * one flat array and its keys shared by every span of that name, so a kept span holds no
 * attribute object of its own (only its ids and the values).
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const STORES = ['count', 'store', 'flat', 'bytes'];

if (process.argv[2] === '--child') {
  const [, , , store, nArg] = process.argv;
  const n = Number(nArg);
  const obs = await import('../dist/observability/index.js');
  const { SpanKind } = obs;
  let ended = 0;
  const count = {
    onStart() {},
    onEnd() {
      ended++;
    },
    forceFlush: async () => {},
    shutdown: async () => {},
  };
  const cap = 10_000;
  const buf = Buffer.alloc(cap * 512);
  let off = 0;
  const bytes = {
    onStart() {},
    onEnd(s) {
      if (off > buf.length - 2048) off = 0;
      const o0 = off;
      off += 4;
      off += buf.latin1Write(s.traceId, off, 32);
      off += buf.latin1Write(s.spanId, off, 16);
      off += s.parentSpanId ? buf.latin1Write(s.parentSpanId, off, 16) : 0;
      buf.writeDoubleLE(s.startMs, off);
      buf.writeDoubleLE(s.endMs - s.startMs, off + 8);
      off += 16;
      buf[off++] = s.kind;
      buf[off++] = s.status.code;
      const nl = buf.utf8Write(s.name, off + 2);
      buf.writeUInt16LE(nl, off);
      off += 2 + nl;
      const jl = buf.utf8Write(JSON.stringify(s.attributes), off + 4);
      buf.writeUInt32LE(jl, off);
      off += 4 + jl;
      buf.writeUInt32LE(off - o0, o0);
      ended++;
    },
    forceFlush: async () => {},
    shutdown: async () => {},
  };
  // Columns as SpanStore keeps them, with the attribute values flat and the keys shared per name.
  const MAX_ATTRIBUTES = 8;
  const column = () => new Array(cap).fill(undefined);
  const [traceIds, spanIds, parentIds, names, keysOf, whole] = [
    column(),
    column(),
    column(),
    column(),
    column(),
    column(),
  ];
  const values = new Array(cap * MAX_ATTRIBUTES).fill(undefined);
  const startMs = new Float64Array(cap);
  const durationMs = new Float64Array(cap);
  const kinds = new Uint8Array(cap);
  const statuses = new Uint8Array(cap);
  const keysByName = new Map();
  let head = 0;
  let size = 0;
  const flat = {
    onStart() {},
    onEnd(s) {
      if (size === cap) {
        traceIds[head] = spanIds[head] = parentIds[head] = names[head] = keysOf[head] = whole[head] = undefined;
        values.fill(undefined, head * MAX_ATTRIBUTES, (head + 1) * MAX_ATTRIBUTES);
        head = (head + 1) % cap;
        size--;
      }
      const at = (head + size) % cap;
      traceIds[at] = s.traceId;
      spanIds[at] = s.spanId;
      parentIds[at] = s.parentSpanId;
      names[at] = s.name;
      startMs[at] = s.startMs;
      durationMs[at] = s.endMs - s.startMs;
      kinds[at] = s.kind;
      statuses[at] = s.status.code;
      const attrs = s.attributes;
      let keys = keysByName.get(s.name);
      let same = keys !== undefined;
      let i = 0;
      for (const k in attrs) {
        if (i === MAX_ATTRIBUTES) break;
        if (same && keys[i] !== k) same = false;
        values[at * MAX_ATTRIBUTES + i++] = attrs[k];
      }
      if (same && keys.length === i) keysOf[at] = keys;
      else if (Object.keys(attrs).length > MAX_ATTRIBUTES) whole[at] = attrs;
      else keysByName.set(s.name, (keysOf[at] = Object.keys(attrs)));
      size++;
      ended++;
    },
    forceFlush: async () => {},
    shutdown: async () => {},
  };
  const local = store === 'store' ? new obs.SpanStore({ maxSpans: cap, maxBytes: 16 * 1024 * 1024 }) : undefined;
  const tracing = await obs.setupTracing({
    version: 'probe',
    env: {},
    processors: store === 'count' ? [count] : store === 'bytes' ? [bytes] : store === 'flat' ? [flat] : [],
    ...(local && { local }),
  });
  const t = tracing.tracer;
  let sink = 0;
  const execution = (i) => {
    const agent = `calc${i % 3}`;
    const root = obs.startSpan(t, obs.spanName('agent.execute', agent), undefined, undefined);
    const tp = obs.childTraceparent(root, undefined);
    // The rest of an execution's path, as short-lived objects.
    const rows = [];
    for (let k = 0; k < 120; k++) rows.push({ id: `r${i}-${k}`, n: k, tags: [k, i] });
    sink += JSON.stringify(rows.slice(0, 20)).length;
    for (let turn = 1; turn <= 2; turn++) {
      const llm = obs.startSpan(t, 'llm.chat', tp, undefined, SpanKind.CLIENT);
      if (turn === 1) {
        const tool = obs.startSpan(t, obs.spanName('tool.call', 'calculator'), tp);
        if (tool.isRecording()) obs.giveAttributes(tool, { 'caxton.agent': agent, 'caxton.tool': 'calculator' });
        tool.end();
      }
      if (llm.isRecording())
        obs.giveAttributes(llm, {
          'caxton.agent': agent,
          'caxton.turn': turn,
          'gen_ai.system': 'scripted',
          'gen_ai.request.model': 'bench',
          'gen_ai.usage.input_tokens': 100 + (i % 50),
          'gen_ai.usage.output_tokens': 10 + (i % 7),
          'gen_ai.response.id': `resp-${i}-${turn}`,
        });
      llm.end();
    }
    if (root.isRecording()) obs.giveAttributes(root, { 'caxton.agent': agent, 'caxton.execution_id': `ex-${i}` });
    root.end();
  };
  for (let i = 0; i < 30_000; i++) execution(i);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) execution(i);
  const c = process.cpuUsage(c0);
  const ms = performance.now() - t0;
  process.send({
    store,
    cpu: (c.user + c.system) / n,
    wall: (ms * 1000) / n,
    ended,
    heap: process.memoryUsage().heapUsed,
    sink,
  });
  await tracing.shutdown();
  process.exit(0);
}

const n = Number(process.argv[2] ?? 100_000);
const reps = Number(process.argv[3] ?? 7);
const self = fileURLToPath(import.meta.url);
const results = Object.fromEntries(STORES.map((s) => [s, []]));
for (let r = 0; r < reps; r++) {
  const order = STORES.map((_, k) => STORES[(k + r) % STORES.length]);
  for (const store of order) {
    const out = await new Promise((resolve, reject) => {
      const child = fork(self, ['--child', store, String(n)], { execArgv: [] });
      child.once('message', resolve);
      child.once('error', reject);
      child.once('exit', (code) => code !== 0 && reject(new Error(`${store} exited ${code}`)));
    });
    results[store].push(out);
  }
  process.stderr.write(`rep ${r + 1}/${reps}\n`);
}
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
console.log(
  `| store | CPU µs per execution (median, min–max) | × count (median of per-rep ratios) | heap at the end |`,
);
console.log(`| --- | --- | --- | --- |`);
for (const s of STORES) {
  const cpu = results[s].map((x) => x.cpu);
  const ratio = results[s].map((x, k) => x.cpu / results.count[k].cpu);
  console.log(
    `| ${s} | ${median(cpu).toFixed(2)} (${Math.min(...cpu).toFixed(2)}–${Math.max(...cpu).toFixed(2)}) | ${median(ratio).toFixed(3)} (${Math.min(...ratio).toFixed(3)}–${Math.max(...ratio).toFixed(3)}) | ${(median(results[s].map((x) => x.heap)) / 1048576).toFixed(1)} MB |`,
  );
}
