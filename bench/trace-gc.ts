/**
 * What a traced operation costs the garbage collector: one server of the observability suite in
 * this process (bench/lib/observability-node.ts), warmed up, then a fixed workload between two
 * markers, run under `--trace-gc-nvp`. Prints, per 1,000 operations, the scavenges, the
 * mark-compacts, the bytes scavenges promoted to the old generation and their pause time, with
 * the process's CPU per operation. Run it for two modes (or two builds) alternately.
 *
 *   node --trace-gc-nvp --import tsx --import ./bench/lib/shipped-build.mjs bench/trace-gc.ts <mode> <messages|executions> [n] [reps]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { executions, messages, start, type Mode, type Workload } from './lib/observability-node.js';

const [mode, workload, nArg, repsArg] = process.argv.slice(2) as [Mode, Workload, string?, string?];
const n = Number(nArg ?? (workload === 'messages' ? 8000 : 2000));
const reps = Number(repsArg ?? 1);
const dir = mkdtempSync(join(tmpdir(), 'caxton-trace-gc-'));
const { server } = await start(dir, mode);
const run = (k: number) => (workload === 'messages' ? messages(server, k) : executions(server, k));
// Warm-up long enough for the span store's ring (10,000 spans) to fill, so what is measured is
// its steady state, where every kept span pushes an old one out.
for (let i = 0; i < 6; i++) await run(n);
for (let r = 0; r < reps; r++) {
  console.log(`@@begin ${mode} ${workload} ${n}`);
  const f = await run(n);
  console.log(`@@end cpu=${f.cpu.toFixed(2)} main=${f.main.toFixed(2)} gc=${f.gc.toFixed(2)}`);
}
await server.close();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
