/**
 * Where a traced operation's extra cost goes: one server of the observability suite in this
 * process (bench/lib/observability-node.ts), warmed up, then a CPU profile and a sampling heap
 * profile (every object counted, also those the next collection frees) over a fixed workload.
 * Prints the bytes allocated per operation and the top allocation and CPU sites, and writes the
 * raw profiles beside them.
 *
 *   node --expose-gc --import tsx --import ./bench/lib/shipped-build.mjs bench/trace-profile.ts <mode> <messages|executions> [n] [outdir]
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { Session } from 'node:inspector/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { executions, messages, start, type Mode, type Workload } from './lib/observability-node.js';

interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: HeapNode[];
}

interface CpuNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

const [mode, workload, nArg, outArg] = process.argv.slice(2) as [Mode, Workload, string?, string?];
const n = Number(nArg ?? (workload === 'messages' ? 12000 : 3000));
const out = outArg ?? '/tmp';
mkdirSync(out, { recursive: true });
const dir = mkdtempSync(join(tmpdir(), 'caxton-trace-profile-'));
// The `otlp` mode's collector, in this process (its share shows in the profile under node:http).
if (mode === 'otlp') {
  const sink = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
  });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', () => r()));
  sink.unref();
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = `http://127.0.0.1:${(sink.address() as AddressInfo).port}`;
}
const { server } = await start(dir, mode);
const run = (k: number) => (workload === 'messages' ? messages(server, k) : executions(server, k));
for (let i = 0; i < 4; i++) await run(Math.min(n, workload === 'messages' ? 3000 : 750));

const session = new Session();
session.connect();
const site = (f: HeapNode['callFrame']) =>
  `${f.functionName || '(anon)'} ${f.url.replace(/^.*\/(dist|node_modules)\//, '$1/')}:${f.lineNumber + 1}`;

await session.post('HeapProfiler.startSampling', {
  samplingInterval: 256,
  includeObjectsCollectedByMajorGC: true,
  includeObjectsCollectedByMinorGC: true,
});
await run(n);
const { profile: heap } = (await session.post('HeapProfiler.stopSampling')) as { profile: { head: HeapNode } };
const bySite = new Map<string, number>();
let total = 0;
const walk = (node: HeapNode) => {
  if (node.selfSize > 0) {
    const k = site(node.callFrame);
    bySite.set(k, (bySite.get(k) ?? 0) + node.selfSize);
    total += node.selfSize;
  }
  for (const c of node.children) walk(c);
};
walk(heap.head);
writeFileSync(join(out, `${mode}-${workload}.heapprofile`), JSON.stringify(heap));
console.log(`${mode} ${workload}: ${(total / n).toFixed(0)} B allocated per op (${n} ops)`);
for (const [k, v] of [...bySite].sort((a, b) => b[1] - a[1]).slice(0, 45))
  console.log(`  ${(v / n).toFixed(0).padStart(6)} B  ${k}`);

await session.post('Profiler.enable');
await session.post('Profiler.setSamplingInterval', { interval: 100 });
await session.post('Profiler.start');
await run(n);
const { profile: cpu } = (await session.post('Profiler.stop')) as {
  profile: { nodes: CpuNode[]; samples: number[] };
};
writeFileSync(join(out, `${mode}-${workload}.cpuprofile`), JSON.stringify(cpu));
const self = new Map<number, number>();
for (const s of cpu.samples) self.set(s, (self.get(s) ?? 0) + 1);
const cpuBySite = new Map<string, number>();
for (const node of cpu.nodes) {
  const c = self.get(node.id) ?? 0;
  if (c === 0) continue;
  const k = site(node.callFrame);
  cpuBySite.set(k, (cpuBySite.get(k) ?? 0) + c);
}
console.log(`${mode} ${workload}: ${cpu.samples.length} CPU samples; top self:`);
for (const [k, v] of [...cpuBySite].sort((a, b) => b[1] - a[1]).slice(0, 30))
  console.log(`  ${((v / cpu.samples.length) * 100).toFixed(1).padStart(5)} %  ${k}`);

await server.close();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
