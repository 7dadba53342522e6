/**
 * Benchmark entry point: `npm run bench` runs every suite, `npm run bench -- startup` one (or
 * several, space-separated). Tables go to stdout as markdown; progress goes to stderr; raw
 * figures go to bench/results/<suite>-<timestamp>.json.
 */
import { loadavg } from 'node:os';
import { note } from './lib/progress.js';
import { machine, machineLine, markdownTable, writeResults, type Suite } from './lib/report.js';

/** Suites by name, loaded on demand: one per table of docs/benchmarks.md. */
const SUITES: Record<string, () => Promise<Suite>> = {
  executions: async () => (await import('./recording.js')).executionsSuite,
  runs: async () => (await import('./recording.js')).runsSuite,
  messaging: async () => (await import('./messaging.js')).messagingSuite,
  observability: async () => (await import('./observability.js')).observabilitySuite,
  memory: async () => (await import('./memory.js')).memorySuite,
  'memory-postgres': async () => (await import('./memory.js')).memoryPostgresSuite,
  'audit-events': async () => (await import('./audit-events.js')).auditEventsSuite,
  hostile: async () => (await import('./hostile.js')).hostileSuite,
  auth: async () => (await import('./auth.js')).authSuite,
  cluster: async () => (await import('./cluster.js')).clusterSuite,
  'cluster-rows': async () => (await import('./cluster-rows.js')).clusterRowsSuite,
  startup: async () => (await import('./startup.js')).startupSuite,
  mastra: async () => (await import('./mastra.js')).mastraSuite,
  latency: async () => (await import('./latency.js')).latencySuite,
  'model-http': async () => (await import('./model-http.js')).modelHttpSuite,
};

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h') || argv.includes('--list')) {
    console.log(`usage: npm run bench [-- SUITE...]\n\nsuites: ${Object.keys(SUITES).join(', ')} (default: all)`);
    return 0;
  }
  const unknown = argv.filter((a) => !(a in SUITES));
  if (unknown.length > 0) {
    console.error(
      `unknown suite${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}; available: ${Object.keys(SUITES).join(', ')}`,
    );
    return 2;
  }
  const selected = argv.length > 0 ? [...new Set(argv)] : Object.keys(SUITES);
  const m = machine();
  if (m.load_avg[0]! > m.cpu_count)
    note(
      `the machine is busy (1-minute load average ${m.load_avg[0]} on ${m.cpu_count} cores): expect noisy, pessimistic figures`,
    );
  if (!m.gc_exposed)
    note('global.gc is not available: run through `npm run bench` (node --expose-gc) for meaningful memory figures');
  console.log(`# Caxton benchmarks\n\n${machineLine(m)}\n`);

  let failed = 0;
  for (const name of selected) {
    const suite = await SUITES[name]!();
    note(`suite ${name}: ${suite.description}`);
    const startedAt = new Date();
    const t0 = Date.now();
    const loadBefore = loadavg()[0]!;
    try {
      const report = await suite.run();
      const load = { before: loadBefore, after: loadavg()[0]! };
      const file = writeResults(
        name,
        {
          suite: name,
          started_at: startedAt.toISOString(),
          duration_s: (Date.now() - t0) / 1000,
          machine: m,
          load_avg_1m: load,
          command: `npm run bench -- ${name}`,
          rows: report.rows,
          raw: report.raw,
        },
        startedAt,
      );
      console.log(`## ${name}\n\n${markdownTable(report.rows)}\n`);
      console.log(
        `- 1-minute load average: ${load.before.toFixed(2)} before, ${load.after.toFixed(2)} after (${m.cpu_count} cores).`,
      );
      for (const n of report.notes ?? []) console.log(`- ${n}`);
      console.log(`\nRaw results: ${file} (suite took ${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
      const missed = report.rows.filter((r) => r.verdict === 'fail').map((r) => r.metric);
      if (missed.length > 0) note(`suite ${name}: target missed: ${missed.join('; ')}`);
    } catch (e) {
      failed++;
      console.error(`suite ${name} failed:`, e);
    }
  }
  return failed > 0 ? 1 : 0;
}

// A missed target is a finding, not an error: the exit code is non-zero only when a suite crashes.
// Exit explicitly: load-generator workers and keep-alive sockets must not keep the process up.
process.exit(await main(process.argv.slice(2)));
