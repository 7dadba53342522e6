/**
 * The agent registry at scale: deploy 10,000 generated agents through the REST API,
 * then query them by capability. Reports deploy time, query latency (target < 50 ms at 10,000
 * agents), idle memory per deployed agent (documents: < 100 KB; aim: 10 KB) and restart time,
 * each beside a fastify hello-world measured in the same run.
 */
import { cpus } from 'node:os';
import { measureBaseline } from './lib/baseline.js';
import { agentName, agentToml, CAPABILITY_POOL, planAgents, type AgentPlan } from './lib/generate.js';
import { pool, request, sequential } from './lib/http.js';
import { load, loadLine } from './lib/load.js';
import { KB, MB, snapshot, type MemorySnapshot } from './lib/memory.js';
import { note, progress } from './lib/progress.js';
import { rng } from './lib/random.js';
import type { Row, Suite, SuiteReport } from './lib/report.js';
import { startQuietServer } from './lib/scripted-server.js';
import { envNumber, fmt, fmtMs, fmtUs, msSince, p50p99, summarize, verdict } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';

const env = envNumber;

/** Sizes; the environment overrides them for quick runs (e.g. BENCH_AGENTS=1000). */
const AGENTS = env('BENCH_AGENTS', 10_000);
const CONCURRENCY = env('BENCH_CONCURRENCY', 8);
const QUERIES = env('BENCH_QUERIES', 2000);
const LOAD_SECONDS = env('BENCH_DURATION', 5);
const CONNECTIONS = env('BENCH_CONNECTIONS', 10);

const QUERY_TARGET_MS = 50;
const MEMORY_TARGET_KB = 100;
const MEMORY_AIM_KB = 10;

const kb = (bytes: number) => `${fmt(bytes / KB, 1)} KB`;
const mb = (bytes: number) => `${fmt(bytes / MB, 1)} MB`;

const startCaxton = (dir: string) => startQuietServer(dir);

interface Dataset {
  plan: AgentPlan;
  busiest: number;
  busiestCap: string;
}

/**
 * Phase 1: a fresh server — warm up, measure memory empty, deploy, measure memory idle, query —
 * then close it. The server lives only in this function's frame: once it returns, nothing the
 * suite holds can keep the closed instance alive (an async function's frame can keep stale
 * references until it completes), so the restart phase measures one registry, not two.
 */
async function deployAndQuery(dir: string, { plan, busiestCap }: Dataset) {
  const { server, ms: firstStartMs } = await startCaxton(dir);
  try {
    const api = `${server.url}/api/v1`;
    note(`caxton listening on ${server.url} (started in ${fmtMs(firstStartMs)}), data in ${dir}`);

    // Warm up the paths measured later (parser, schemas, serializers) without deploying anything.
    for (let i = 0; i < 50; i++) {
      const v = await request(`${api}/agents/validate`, {
        method: 'POST',
        headers: { 'content-type': 'application/toml' },
        body: agentToml(plan, i),
      });
      if (v.status !== 200 || !v.body.includes('"valid":true'))
        throw new Error(`generated agent ${agentName(i)} does not validate: ${v.body.slice(0, 500)}`);
      await request(`${api}/agents?capability=${CAPABILITY_POOL[i]}`);
    }
    const memEmpty = await snapshot();

    // ---- Deploy --------------------------------------------------------------------------------
    note(`deploying ${AGENTS} agents via POST ${api}/agents, ${CONCURRENCY} in flight, in shuffled name order`);
    const bar = progress('deploy', AGENTS);
    const deploy = await pool(
      AGENTS,
      CONCURRENCY,
      (i) => ({
        url: `${api}/agents`,
        init: {
          method: 'POST',
          headers: { 'content-type': 'application/toml' },
          body: agentToml(plan, plan.order[i]!),
        },
        expectStatus: 201,
      }),
      (d) => bar.update(d),
    );
    bar.end();
    if (deploy.failures.length > 0)
      throw new Error(`${deploy.failures.length}+ deploys failed; first: ${JSON.stringify(deploy.failures[0])}`);
    if (server.registry.size !== AGENTS)
      throw new Error(`registry holds ${server.registry.size} agents, expected ${AGENTS}`);

    // ---- Idle memory ---------------------------------------------------------------------------
    const memFull = await snapshot();

    // ---- Queries -------------------------------------------------------------------------------
    for (const c of [busiestCap, CAPABILITY_POOL[0]!]) {
      const r = await request(`${api}/agents?capability=${c}&limit=1`);
      const total = (JSON.parse(r.body) as { total: number }).total;
      const expected = plan.providers[CAPABILITY_POOL.indexOf(c)]!;
      if (total !== expected) throw new Error(`capability ${c}: API reports ${total} providers, generated ${expected}`);
    }
    note(`querying: ${QUERIES} sequential GET /agents?capability=<random>`);
    const qrand = rng(7);
    const queryUrls = Array.from(
      { length: QUERIES + 100 },
      () => `${api}/agents?capability=${CAPABILITY_POOL[Math.floor(qrand() * CAPABILITY_POOL.length)]}`,
    );
    const query = await sequential(QUERIES, (i) => queryUrls[i % queryUrls.length]!);
    const sampleBytes = Buffer.byteLength((await request(queryUrls[0]!)).body);
    const busiestUrl = `${api}/agents?capability=${busiestCap}`;
    const busiestFirstMs = (await request(busiestUrl)).ms;
    const busiestSeq = await sequential(200, () => busiestUrl, { warmup: 10 });
    const listAll = await sequential(50, () => `${api}/agents?limit=1000`, { warmup: 5 });

    // The registry lookup alone, without HTTP: what the route costs beyond the framework.
    const lookups = new Float64Array(10_000);
    for (let i = 0; i < lookups.length; i++) {
      const t0 = process.hrtime.bigint();
      server.registry.list({ capability: CAPABILITY_POOL[i % CAPABILITY_POOL.length]!, limit: 1000, offset: 0 });
      lookups[i] = msSince(t0);
    }
    const lookup = summarize(lookups);

    note(`autocannon: ${LOAD_SECONDS}s × ${CONNECTIONS} connections on ${busiestUrl}`);
    const queryLoad = await load({ url: busiestUrl, duration: LOAD_SECONDS, connections: CONNECTIONS });
    // Caxton's own floor: the cheapest route, through the same hooks (request id, span, metrics).
    const healthUrl = `${server.url}/health`;
    const healthSeq = await sequential(QUERIES, () => healthUrl);
    const healthLoad = await load({ url: healthUrl, duration: LOAD_SECONDS, connections: CONNECTIONS });

    return {
      firstStartMs,
      memEmpty,
      memFull,
      deploy,
      query,
      sampleBytes,
      busiestFirstMs,
      busiestSeq,
      listAll,
      lookup,
      queryLoad,
      healthSeq,
      healthLoad,
      registry: new WeakRef(server.registry),
    };
  } finally {
    await server.close();
  }
}

/** Phase 2: start again on the same data_dir (10,000 agents in SQLite) and time it. */
async function restart(dir: string, { plan, busiest, busiestCap }: Dataset) {
  note('restarting on the same data_dir');
  const { server, ms } = await startCaxton(dir);
  try {
    const reloaded = server.registry.size;
    const mem = await snapshot();
    const check = await request(`${server.url}/api/v1/agents?capability=${busiestCap}&limit=1`);
    const total = (JSON.parse(check.body) as { total: number }).total;
    if (reloaded !== AGENTS || total !== plan.providers[busiest])
      throw new Error(`after restart: ${reloaded} agents, ${total} providers of ${busiestCap}`);
    return { ms, mem };
  } finally {
    await server.close();
  }
}

async function run(): Promise<SuiteReport> {
  const plan = planAgents(AGENTS);
  const providerCounts = [...plan.providers].filter((n) => n > 0).sort((a, b) => a - b);
  let busiest = 0;
  plan.providers.forEach((n, i) => {
    if (n > plan.providers[busiest]!) busiest = i;
  });
  const busiestCap = CAPABILITY_POOL[busiest]!;
  const data: Dataset = { plan, busiest, busiestCap };
  let sourceBytes = 0;
  for (let i = 0; i < AGENTS; i++) sourceBytes += Buffer.byteLength(agentToml(plan, i));
  note(
    `${AGENTS} agents, ${providerCounts.length} capabilities, ${providerCounts[0]}–${providerCounts[providerCounts.length - 1]} providers each, TOML ${fmt(sourceBytes / AGENTS, 0)} bytes/agent on average`,
  );

  // ---- Baseline: fastify hello-world, same process, same client code --------------------------
  note(
    `baseline: fastify hello-world (${QUERIES} sequential GETs, ${AGENTS} POSTs with ${CONCURRENCY} in flight, autocannon ${LOAD_SECONDS}s × ${CONNECTIONS} connections)`,
  );
  const baseline = await measureBaseline({
    duration: LOAD_SECONDS,
    connections: CONNECTIONS,
    sequential: QUERIES,
    posts: { n: AGENTS, concurrency: CONCURRENCY, body: (i) => agentToml(plan, plan.order[i]!) },
  });
  const basePosts = baseline.posts!;

  const dir = tempDir();
  try {
    const c = await deployAndQuery(dir.path, data);
    const r = await restart(dir.path, data);
    // Was the closed first server collected? If not, the after-restart heap counts two registries.
    const closedCollected = c.registry.deref() === undefined;
    const {
      firstStartMs,
      memEmpty,
      memFull,
      deploy,
      query,
      busiestSeq,
      listAll,
      lookup,
      queryLoad,
      healthSeq,
      healthLoad,
    } = c;
    const restartMs = r.ms;
    const memRestarted = r.mem;
    const perAgent = (k: keyof MemorySnapshot, after: MemorySnapshot) => (after[k] - memEmpty[k]) / AGENTS;
    const heapPerAgent = perAgent('heapUsed', memFull);
    const rssPerAgent = perAgent('rss', memFull);
    const externalPerAgent = perAgent('external', memFull);
    // Per-deploy latency early vs late shows whether deploying gets slower as the registry grows.
    const tenth = Math.max(1, Math.floor(AGENTS / 10));
    const deployFirstP50 = deploy.p50_by_tenth_ms[0]!;
    const deployLastP50 = deploy.p50_by_tenth_ms[deploy.p50_by_tenth_ms.length - 1]!;

    // ---- Report --------------------------------------------------------------------------------
    const bs = baseline.sequential.latency_ms;
    const qs = query.latency_ms;
    const queryOk = qs.p99 < QUERY_TARGET_MS && busiestSeq.latency_ms.p99 < QUERY_TARGET_MS;
    const n = AGENTS.toLocaleString('en-US');
    const rows: Row[] = [
      {
        metric: `Deploy ${n} agents (POST, TOML, ${CONCURRENCY} in flight, shuffled order): total`,
        value: `${fmt(deploy.total_ms / 1000)} s`,
        baseline: `${fmt(basePosts.total_ms / 1000)} s (same bodies)`,
      },
      {
        metric: 'Deploy throughput',
        value: `${fmt(deploy.per_s, 0)} agents/s`,
        baseline: `${fmt(basePosts.per_s, 0)} req/s`,
      },
      { metric: 'Deploy latency', value: p50p99(deploy.latency_ms), baseline: p50p99(basePosts.latency_ms) },
      {
        metric: `Deploy latency, first vs last ${tenth.toLocaleString('en-US')}`,
        value: `p50 ${fmtMs(deployFirstP50)} → ${fmtMs(deployLastP50)}`,
        baseline: `p50 ${fmtMs(basePosts.p50_by_tenth_ms[0]!)} → ${fmtMs(basePosts.p50_by_tenth_ms[basePosts.p50_by_tenth_ms.length - 1]!)}`,
      },
      {
        metric: `Query GET /agents?capability=X at ${n} (${QUERIES} sequential, random X)`,
        value: `${p50p99(qs)} / max ${fmtMs(qs.max)}`,
        baseline: `${p50p99(bs)} / max ${fmtMs(bs.max)}`,
        target: `p99 < ${QUERY_TARGET_MS} ms`,
        verdict: verdict(queryOk),
      },
      {
        metric: `Query, busiest capability (${plan.providers[busiest]} providers, 200 sequential)`,
        value: `first ${fmtMs(c.busiestFirstMs)}, ${p50p99(busiestSeq.latency_ms)}`,
        baseline: p50p99(bs),
        target: `p99 < ${QUERY_TARGET_MS} ms`,
        verdict: verdict(busiestSeq.latency_ms.p99 < QUERY_TARGET_MS && c.busiestFirstMs < QUERY_TARGET_MS),
      },
      {
        metric: `Query throughput (autocannon ${LOAD_SECONDS}s × ${CONNECTIONS} conn, busiest capability)`,
        value: loadLine(queryLoad),
        baseline: loadLine(baseline.autocannon),
      },
      {
        metric: 'Caxton floor: GET /health (same hooks, no registry work)',
        value: `sequential ${p50p99(healthSeq.latency_ms)}; ${loadLine(healthLoad)}`,
        baseline: `sequential ${p50p99(bs)}; ${loadLine(baseline.autocannon)}`,
      },
      {
        metric: 'Registry lookup alone (in-process `registry.list`, no HTTP)',
        value: `p50 ${fmtUs(lookup.p50)} / p99 ${fmtUs(lookup.p99)}`,
        baseline: 'n/a (no HTTP)',
      },
      {
        metric: `List all (GET /agents?limit=1000 of ${n}, 50 sequential)`,
        value: p50p99(listAll.latency_ms),
        baseline: p50p99(bs),
      },
      {
        metric: 'Idle heap per deployed agent (heapUsed after GC)',
        value: `${kb(heapPerAgent)}${heapPerAgent / KB <= MEMORY_AIM_KB ? ` (≤ ${MEMORY_AIM_KB} KB aim)` : ` (> ${MEMORY_AIM_KB} KB aim)`}`,
        baseline: `empty server heap ${mb(memEmpty.heapUsed)}; TOML source ${kb(sourceBytes / AGENTS)}/agent`,
        target: `< ${MEMORY_TARGET_KB} KB (aim ${MEMORY_AIM_KB} KB)`,
        verdict: verdict(heapPerAgent / KB < MEMORY_TARGET_KB),
      },
      {
        metric: 'Idle RSS per deployed agent (after GC)',
        value: kb(rssPerAgent),
        baseline: `empty server RSS ${mb(memEmpty.rss)}`,
        target: `< ${MEMORY_TARGET_KB} KB`,
        verdict: verdict(rssPerAgent / KB < MEMORY_TARGET_KB),
      },
      {
        metric: `Heap / RSS with ${n} agents (idle, after GC)`,
        value: `${mb(memFull.heapUsed)} / ${mb(memFull.rss)}`,
        baseline: `${mb(memEmpty.heapUsed)} / ${mb(memEmpty.rss)} empty`,
      },
      {
        metric: `Restart with ${n} API-deployed agents (SQLite → registry)`,
        value: `${fmtMs(restartMs)} (heap ${kb((memRestarted.heapUsed - memEmpty.heapUsed) / AGENTS)}/agent after reload${closedCollected ? '' : ', closed server NOT collected'})`,
        baseline: `empty Caxton start ${fmtMs(firstStartMs)}; hello-world start ${fmtMs(baseline.start_ms)}`,
      },
    ];
    const notes = [
      `${n} generated agents, ${providerCounts.length} capabilities with ${providerCounts[0]}–${providerCounts[providerCounts.length - 1]} providers each (median ${providerCounts[providerCounts.length >> 1]}); average TOML body ${fmt(sourceBytes / AGENTS, 0)} bytes; a capability query returns ~${fmt(c.sampleBytes / KB, 1)} KB of JSON (hello-world: ${'{"hello":"world"}'.length} bytes).`,
      `Server, client and (for autocannon) one load-generator worker thread share ${cpus().length} cores; sequential latencies are client-observed (fetch/undici keep-alive) and include the client's own overhead, which is the same for the baseline.`,
      `Memory: process.memoryUsage() after repeated global.gc(), empty server (after warm-up) vs. ${n} deployed and idle; the delta ÷ ${n}. External memory delta: ${kb(externalPerAgent)}/agent.`,
    ];
    return {
      rows,
      notes,
      raw: {
        config: {
          agents: AGENTS,
          concurrency: CONCURRENCY,
          queries: QUERIES,
          load_seconds: LOAD_SECONDS,
          connections: CONNECTIONS,
          seed: plan.seed,
        },
        dataset: {
          capabilities: providerCounts.length,
          providers_min: providerCounts[0],
          providers_max: providerCounts[providerCounts.length - 1],
          busiest: { capability: busiestCap, providers: plan.providers[busiest] },
          avg_source_bytes: sourceBytes / AGENTS,
          sample_query_response_bytes: c.sampleBytes,
        },
        baseline,
        caxton: {
          first_start_ms: firstStartMs,
          deploy,
          memory: {
            empty: memEmpty,
            deployed: memFull,
            after_restart: memRestarted,
            per_agent_bytes: { heapUsed: heapPerAgent, rss: rssPerAgent, external: externalPerAgent },
          },
          query_random: query,
          query_busiest: { first_ms: c.busiestFirstMs, sequential: busiestSeq },
          query_load: queryLoad,
          health: { sequential: healthSeq, load: healthLoad },
          list_all: listAll,
          registry_lookup_ms: lookup,
          restart_ms: restartMs,
          closed_server_collected: closedCollected,
        },
        targets: { query_ms: QUERY_TARGET_MS, memory_kb: MEMORY_TARGET_KB, memory_aim_kb: MEMORY_AIM_KB },
      },
    };
  } finally {
    dir.remove();
  }
}

export const agentsSuite: Suite = {
  name: 'agents',
  description: `deploy ${AGENTS.toLocaleString('en-US')} generated agents, query by capability, idle memory per agent, restart`,
  run,
};
