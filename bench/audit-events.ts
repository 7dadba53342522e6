/**
 * What the audit trail and the agent event store cost on the hot path: two Caxton servers in this
 * process, one with `[audit]` and `[events]` on (the defaults), one with both off, beside a
 * fastify JSON echo, measured in alternated rounds (echo, on, off) so that the machine's load
 * drifts over all three alike. Two paths: a context-mode invoke of a zero-latency agent (one
 * audit row, one execution.finished event) and a REST message submission (one audit row, one
 * message.sent and one message.received event).
 */
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { parseAgent } from '../src/agents/index.js';
import { AuditStore } from '../src/audit/index.js';
import { EventStore, EVENTS_MIGRATIONS } from '../src/observability/events.js';
import { migrate, openDatabase } from '../src/storage/index.js';
import { ToolAuditStore } from '../src/audit/index.js';
import type { CaxtonServer } from '../src/server/index.js';
import { startHelloWorld } from './lib/baseline.js';
import { startInvokeFloor } from './lib/invoke-floor.js';
import { startSubmitFloor } from './lib/submit-floor.js';
import { load, type LoadResult } from './lib/load.js';
import { note } from './lib/progress.js';
import { startScriptedServer } from './lib/scripted-server.js';
import { threadCpuMs } from './lib/proc-cpu.js';
import type { Row, Suite, SuiteReport } from './lib/report.js';
import { fmt } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';

const env = (name: string, def: number) => {
  const v = process.env[name];
  return v === undefined || v === '' ? def : Number(v);
};
const ROUNDS = env('BENCH_ROUNDS', 3);
const SECONDS = env('BENCH_DURATION', 3);
const CONNECTIONS = env('BENCH_CONNECTIONS', 10);
const CONTEXT_TARGET = 0.3;
const SUBMIT_TARGET = 0.4;

const SCRIPT = `[[rules]]\nname = "text"\ncontent = "ok: {{request}}"\n`;
const AGENT = `name = "text"\nversion = "1.0.0"\ndescription = "bench"\ncapabilities = ["benchmarking"]\nsystem_prompt = "Answer briefly."\n\n[execution]\nisolation = "context"\n`;
const INVOKE_BODY = JSON.stringify({ request: 'hello' });
const SUBMIT_BODY = JSON.stringify({ performative: 'inform', capability: 'sink', content: 'benchmark message' });
const JSON_HEADERS = { 'content-type': 'application/json' };

async function startCaxton(dir: string, on: boolean): Promise<CaxtonServer> {
  const server = await startScriptedServer({
    dir,
    script: SCRIPT,
    agent: AGENT,
    toml: `[messaging]\nmax_queue = 10000000\n[events]\nenabled = ${on}\n[audit]\nenabled = ${on}\n`,
  });
  const now = new Date().toISOString();
  const sink = parseAgent(
    'name = "sink"\ncapabilities = ["sink"]\nsystem_prompt = "bench"\n[messaging]\nmax_concurrency = 64\n',
    { format: 'toml' },
  );
  if (!sink.ok) throw new Error(JSON.stringify(sink.errors));
  server.registry.upsert({
    definition: sink.definition,
    format: 'toml',
    origin: { kind: 'api' },
    revision: 1,
    deployed_at: now,
    updated_at: now,
  });
  server.bus.registerHandler('sink', () => undefined);
  for (const [url, body, status] of [
    [`${server.url}/api/v1/agents/text/invoke`, INVOKE_BODY, 200],
    [`${server.url}/api/v1/messages`, SUBMIT_BODY, 202],
  ] as const) {
    const p = await fetch(url, { method: 'POST', headers: JSON_HEADERS, body });
    if (p.status !== status) throw new Error(`${url} → ${p.status}: ${(await p.text()).slice(0, 300)}`);
  }
  return server;
}

/**
 * The stores alone, no HTTP: CPU time per "request's worth" of records (one audit row, one
 * execution.finished event, one tool audit record), `per` of each recorded per event-loop turn,
 * turns back to back as under load. CPU time, not wall time: it holds up on a busy machine.
 */
async function storeCost(per: number, n = 8000): Promise<{ all: number; loop: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'caxton-bench-ae-stores-'));
  const db = openDatabase(join(dir, 'caxton.db'));
  const audit = new AuditStore(db);
  migrate(db, EVENTS_MIGRATIONS);
  const events = new EventStore({ db, retentionMs: 1e12, maxRows: 1e8 });
  const tools = new ToolAuditStore(db, { maxRows: 1e8 });
  const turn = () => new Promise((r) => setImmediate(r));
  // What a server pays once (its writer's start, the prepared statements) is left out: one
  // record of each, written, before the clock starts.
  const record = (i: number) => {
    audit.record({
      action: 'agent.invoke',
      method: 'POST',
      route: '/api/v1/agents/:name/invoke',
      target: 'text',
      outcome: 'ok',
      status: 200,
      request_id: `req-${i}`,
      source: '127.0.0.1',
    });
    events.record({
      type: 'execution.finished',
      agent: 'text',
      data: {
        execution_id: `x${i}`,
        conversation_id: null,
        status: 'ok',
        duration_ms: 1,
        input_tokens: 1,
        output_tokens: 1,
        turns: 1,
        tool_calls: 0,
        provider: 'p',
        model: 'm',
      },
    });
    tools.record({
      time: Date.now(),
      agent: 'text',
      server: 's',
      tool: 's.t',
      args_digest: 'd',
      outcome: 'ok',
      duration_us: 1,
      fuel_used: 0,
      memory_bytes: 0,
      input_bytes: 1,
      output_bytes: 1,
    });
  };
  record(-1);
  audit.flush();
  const c0 = process.cpuUsage();
  const l0 = threadCpuMs(process.pid);
  for (let i = 0; i < n; i += per) {
    for (let j = 0; j < per; j++) record(i);
    await turn();
  }
  await audit.close();
  events.close();
  tools.close();
  const c = process.cpuUsage(c0);
  const loop = threadCpuMs(process.pid) - l0;
  db.close();
  rmSync(dir, { recursive: true, force: true });
  return { all: (c.user + c.system) / n, loop: (loop * 1e3) / n };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export const auditEventsSuite: Suite = {
  name: 'audit-events',
  description: `audit trail and agent events on vs off: context invoke and REST submit beside a fastify echo, ${ROUNDS} alternated rounds of ${SECONDS}s × ${CONNECTIONS} connections`,
  async run(): Promise<SuiteReport> {
    const stores: Record<string, number[]> = { 1: [], 4: [] };
    const loops: Record<string, number[]> = { 1: [], 4: [] };
    for (let r = 0; r < ROUNDS; r++)
      for (const per of [1, 4]) {
        const c = await storeCost(per);
        stores[per]!.push(c.all);
        loops[per]!.push(c.loop);
      }
    const storeRows: Row[] = [1, 4].map((per) => ({
      metric: `stores alone: CPU per audit row + event + tool audit record, ${per} of each per turn (all threads; the event loop's)`,
      value: `${fmt(median(stores[per]!), 1)} µs; event loop ${fmt(median(loops[per]!), 1)} µs (medians of ${ROUNDS})`,
      baseline: 'none (CPU time)',
    }));
    if (process.env.BENCH_STORES_ONLY === '1') return { rows: storeRows, raw: { stores, loops } };
    const hw = await startHelloWorld();
    const dirOn = tempDir('caxton-bench-ae-on-');
    const dirOff = tempDir('caxton-bench-ae-off-');
    const dirFloor = tempDir('caxton-bench-ae-floor-');
    const dirFloorOff = tempDir('caxton-bench-ae-floor-off-');
    const floor = await startInvokeFloor(dirFloor.path);
    const floorOff = await startInvokeFloor(dirFloorOff.path, { offLoop: true });
    const submitModes = ['loop', 'records-off', 'all-off'] as const;
    const submitDirs = submitModes.map((m) => tempDir(`caxton-bench-ae-submit-${m}-`));
    const submitFloors = await Promise.all(submitModes.map((m, i) => startSubmitFloor(submitDirs[i]!.path, m)));
    const submitCounts: string[] = [];
    const on = await startCaxton(dirOn.path, true);
    const off = await startCaxton(dirOff.path, false);
    let floorOffCount = '';
    const runs: Record<string, LoadResult[]> = {
      echo: [],
      floor: [],
      floor_off_loop: [],
      ...Object.fromEntries(submitModes.map((m) => [`submit_floor_${m}`, []])),
      invoke_on: [],
      invoke_off: [],
      submit_on: [],
      submit_off: [],
    };
    const ratios: Record<string, number[]> = {
      floor: [],
      floor_off_loop: [],
      ...Object.fromEntries(submitModes.map((m) => [`submit_floor_${m}`, []])),
      invoke_on: [],
      invoke_off: [],
      submit_on: [],
      submit_off: [],
    };
    try {
      const go = (url: string, body: string) =>
        load({ url, method: 'POST', headers: JSON_HEADERS, body, duration: SECONDS, connections: CONNECTIONS });
      // Warm every path once.
      await go(`${hw.url}echo`, INVOKE_BODY);
      await go(`${floor.url}/api/v1/agents/text/invoke`, INVOKE_BODY);
      await go(`${floorOff.url}/api/v1/agents/text/invoke`, INVOKE_BODY);
      for (const f of submitFloors) await go(`${f.url}/api/v1/messages`, SUBMIT_BODY);
      for (const s of [on, off]) {
        await load({
          url: `${s.url}/api/v1/agents/text/invoke`,
          method: 'POST',
          headers: JSON_HEADERS,
          body: INVOKE_BODY,
          duration: 1,
          connections: CONNECTIONS,
        });
        await load({
          url: `${s.url}/api/v1/messages`,
          method: 'POST',
          headers: JSON_HEADERS,
          body: SUBMIT_BODY,
          duration: 1,
          connections: CONNECTIONS,
        });
      }
      for (let r = 0; r < ROUNDS; r++) {
        note(`round ${r + 1} of ${ROUNDS}`);
        const echo = await go(`${hw.url}echo`, INVOKE_BODY);
        runs.echo!.push(echo);
        const fl = await go(`${floor.url}/api/v1/agents/text/invoke`, INVOKE_BODY);
        runs.floor!.push(fl);
        ratios.floor!.push(fl.req_per_s / echo.req_per_s);
        const flo = await go(`${floorOff.url}/api/v1/agents/text/invoke`, INVOKE_BODY);
        runs.floor_off_loop!.push(flo);
        ratios.floor_off_loop!.push(flo.req_per_s / echo.req_per_s);
        for (let i = 0; i < submitModes.length; i++) {
          const sf = await go(`${submitFloors[i]!.url}/api/v1/messages`, SUBMIT_BODY);
          runs[`submit_floor_${submitModes[i]}`]!.push(sf);
          ratios[`submit_floor_${submitModes[i]}`]!.push(sf.req_per_s / echo.req_per_s);
        }
        for (const [name, s] of [
          ['on', on],
          ['off', off],
        ] as const) {
          const inv = await go(`${s.url}/api/v1/agents/text/invoke`, INVOKE_BODY);
          const sub = await go(`${s.url}/api/v1/messages`, SUBMIT_BODY);
          runs[`invoke_${name}`]!.push(inv);
          runs[`submit_${name}`]!.push(sub);
          ratios[`invoke_${name}`]!.push(inv.req_per_s / echo.req_per_s);
          ratios[`submit_${name}`]!.push(sub.req_per_s / echo.req_per_s);
        }
      }
    } finally {
      await on.close();
      await off.close();
      await floor.close();
      await floorOff.close();
      floorOffCount = `${floorOff.written()} of ${floorOff.answered()}`;
      for (const f of submitFloors) {
        await f.close();
        submitCounts.push(`${f.acknowledged()} of ${f.accepted()}`);
      }
      for (const d of submitDirs) d.remove();
      await hw.close();
      dirFloor.remove();
      dirFloorOff.remove();
      dirOn.remove();
      dirOff.remove();
    }
    const rps = (k: string) => median(runs[k]!.map((l) => l.req_per_s));
    const range = (k: string) => {
      const xs = ratios[k]!;
      return `${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}`;
    };
    const echo = `${fmt(rps('echo'), 0)} req/s fastify JSON echo (median of ${ROUNDS})`;
    const rows: Row[] = [
      {
        metric: "invoke floor: a minimal fastify server writing an invoke's three rows (bench/lib/invoke-floor.ts)",
        value: `${fmt(rps('floor'), 0)} req/s (${range('floor')} × echo)`,
        baseline: echo,
      },
      {
        metric:
          'the same floor with its transaction on a worker thread (its own connection; the event loop hands over each window)',
        value: `${fmt(rps('floor_off_loop'), 0)} req/s (${range('floor_off_loop')} × echo); rows written for ${floorOffCount} invokes answered`,
        baseline: echo,
      },
      {
        metric: 'context invoke, [audit] and [events] on',
        value: `${fmt(rps('invoke_on'), 0)} req/s (${range('invoke_on')} × echo)`,
        baseline: echo,
        target: `≥ ${CONTEXT_TARGET} × echo`,
        verdict: median(ratios.invoke_on!) >= CONTEXT_TARGET ? 'pass' : 'fail',
      },
      {
        metric: 'context invoke, [audit] and [events] on, against the floor',
        value: `${fmt(median(ratios.invoke_on!) / median(ratios.floor!))} × the floor`,
        baseline: `floor ${fmt(rps('floor'), 0)} req/s`,
      },
      {
        metric: 'context invoke, both off',
        value: `${fmt(rps('invoke_off'), 0)} req/s (${range('invoke_off')} × echo)`,
        baseline: echo,
      },
      ...submitModes.map((m, i): Row => ({
        metric: `submit floor, ${m === 'loop' ? 'every write on the event loop' : m === 'records-off' ? 'the records on a worker thread, the messages on the event loop' : 'every write on a worker thread, the 202 after its commit'} (bench/lib/submit-floor.ts)`,
        value: `${fmt(rps(`submit_floor_${m}`), 0)} req/s (${range(`submit_floor_${m}`)} × echo); acknowledged ${submitCounts[i] ?? '?'} accepted`,
        baseline: echo,
      })),
      {
        metric: 'REST submit, [audit] and [events] on',
        value: `${fmt(rps('submit_on'), 0)} req/s (${range('submit_on')} × echo)`,
        baseline: echo,
        target: `≥ ${SUBMIT_TARGET} × echo`,
        verdict: median(ratios.submit_on!) >= SUBMIT_TARGET ? 'pass' : 'fail',
      },
      {
        metric: 'REST submit, both off',
        value: `${fmt(rps('submit_off'), 0)} req/s (${range('submit_off')} × echo)`,
        baseline: echo,
      },
      {
        metric: 'on / off',
        value: `invoke ${fmt(median(ratios.invoke_on!) / median(ratios.invoke_off!))}, submit ${fmt(median(ratios.submit_on!) / median(ratios.submit_off!))}`,
        baseline: '1.00 = free',
      },
    ];
    return { rows: [...storeRows, ...rows], raw: { stores, loops, runs, ratios } };
  },
};
