/**
 * Heap per extra agent, from files or from the API: a server with WARM agents deployed (so the
 * deploy path's code is compiled), heap after full GCs, then N more agents, heap again; the
 * difference ÷ N. Files are written into agents_dir while the server runs (the watcher loads
 * them); API agents are POSTed 8 at a time. The agents are bench/lib/generate.ts's, with two
 * built-in tools. Before the first measure the server's ring of recent spans (`[tracing]
 * local_spans`, 10,000 by default, each request's span kept there) is filled with GETs: a deploy
 * through the API then replaces an old span instead of adding one, so the figure is what the
 * agents hold, not the trace buffer filling up (unfilled, it adds ~0.6 KB per request).
 *
 *   node --expose-gc --import tsx bench/agent-heap.ts files|api|mastra [N] [snapshot-dir]
 *
 * `mastra`: the same agent files, each made into a Mastra agent held by one Mastra instance
 * (bench/lib/mastra-agent-heap.mjs, in a process of its own), measured the same way: Caxton's
 * `files` figure beside the one of the framework it is compared with.
 *
 * With a snapshot directory, a heap snapshot is written before and after (compare them by
 * constructor and property names to see which objects an agent adds).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeHeapSnapshot } from 'node:v8';
import { pino } from 'pino';
import { loadServerConfig } from '../src/config/index.js';
import { createLogger } from '../src/observability/index.js';
import { startServer } from '../src/server/index.js';
import { agentName, agentToml as generated, planAgents, type AgentPlan } from './lib/generate.js';
import { snapshot } from './lib/memory.js';
import { ensureMastra } from './mastra.js';

const [mode, nArg, snapDir] = process.argv.slice(2);
if (mode !== 'files' && mode !== 'api' && mode !== 'mastra') {
  console.error('usage: node --expose-gc --import tsx bench/agent-heap.ts files|api|mastra [N] [snapshot-dir]');
  process.exit(2);
}
const N = Number(nArg ?? 2000);
const WARM = 500;
/**
 * BENCH_AGENT_HEAP_SHORT=1: ~330-character files (no [llm] and [memory] tables, an 80-character
 * prompt), where what an agent costs besides its text shows most.
 */
const SHORT = process.env.BENCH_AGENT_HEAP_SHORT === '1';
const agentToml = (plan: AgentPlan, i: number): string => {
  const text = generated(plan, i).replace(/^tools = .*$/m, 'tools = ["calculator", "current_time"]');
  if (!SHORT) return text;
  return text
    .replace(/\n\[llm\][\s\S]*$/, '\n')
    .replace(/system_prompt = '''\n([\s\S]*?)\n'''/, (_, p: string) => `system_prompt = '''\n${p.slice(0, 79)}.\n'''`);
};

if (mode === 'mastra') {
  const files = mkdtempSync(join(tmpdir(), 'caxton-agent-heap-mastra-'));
  try {
    const plan = planAgents(WARM + N);
    for (let i = 0; i < WARM + N; i++) writeFileSync(join(files, `${agentName(i)}.toml`), agentToml(plan, i));
    const r = spawnSync(
      process.execPath,
      ['--expose-gc', join(import.meta.dirname, 'lib/mastra-agent-heap.mjs'), files, String(WARM), String(N)],
      { env: { ...process.env, MASTRA_DIR: ensureMastra() }, stdio: ['ignore', 'inherit', 'inherit'] },
    );
    process.exitCode = r.status ?? 1;
  } finally {
    rmSync(files, { recursive: true, force: true });
  }
  process.exit();
}

const dir = mkdtempSync(join(tmpdir(), 'caxton-agent-heap-'));
mkdirSync(join(dir, 'agents'));
const file = join(dir, 'caxton.toml');
writeFileSync(
  file,
  'data_dir = "data"\nagents_dir = "agents"\n\n[server]\nhost = "127.0.0.1"\nport = 0\n\n[metrics]\nenabled = false\n\n[logging]\nlevel = "error"\n',
);
const config = loadServerConfig({ file, env: { CAXTON_AUTH__ENABLED: 'false' } });
const server = await startServer({ config, logger: createLogger('error', pino.destination({ dest: 2, sync: true })) });
const api = `${server.url}/api/v1`;
const plan = planAgents(WARM + N);

async function post(i: number): Promise<void> {
  const r = await fetch(`${api}/agents`, {
    method: 'POST',
    headers: { 'content-type': 'application/toml' },
    body: agentToml(plan, i),
  });
  if (r.status !== 201) throw new Error(`deploy ${agentName(i)}: ${r.status} ${await r.text()}`);
  await r.arrayBuffer();
}

async function add(from: number, to: number): Promise<void> {
  if (mode === 'api') {
    for (let i = from; i < to; i += 8)
      await Promise.all(Array.from({ length: Math.min(8, to - i) }, (_, k) => post(i + k)));
    return;
  }
  for (let i = from; i < to; i++) writeFileSync(join(dir, 'agents', `${agentName(i)}.toml`), agentToml(plan, i));
  const t0 = Date.now();
  while (server.registry.size < to) {
    if (Date.now() - t0 > 300_000) throw new Error(`the watcher loaded ${server.registry.size} of ${to} agents`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Fills the ring of recent spans: sequential GETs, 8 in flight, one span each. */
async function fillSpans(requests: number): Promise<void> {
  const one = async (): Promise<void> => {
    const r = await fetch(`${api}/agents/${agentName(0)}`);
    if (r.status !== 200) throw new Error(`GET ${agentName(0)}: ${r.status}`);
    await r.arrayBuffer();
  };
  for (let i = 0; i < requests; i += 8) await Promise.all(Array.from({ length: 8 }, one));
}

try {
  await add(0, WARM);
  await fillSpans(Number(process.env.BENCH_FILL_SPANS ?? 12_000));
  const before = await snapshot();
  if (snapDir) writeHeapSnapshot(join(snapDir, `${mode}-before.heapsnapshot`));
  await add(WARM, WARM + N);
  const after = await snapshot();
  if (snapDir) writeHeapSnapshot(join(snapDir, `${mode}-after.heapsnapshot`));
  console.log(
    JSON.stringify({
      mode,
      agents: N,
      file_chars: agentToml(plan, WARM).length,
      heap_per_agent_bytes: Math.round((after.heapUsed - before.heapUsed) / N),
      load: loadavg()[0],
    }),
  );
} finally {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
}
