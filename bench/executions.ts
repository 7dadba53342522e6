/**
 * What recording every execution costs (ADR 0056): two Caxton servers in this process, one with
 * `[executions]` on (the default), one with it off, otherwise alike (events and audit on, no
 * local spans on either, so only the record differs), measured in alternated rounds (on, off,
 * on, off...) so that the machine's load drifts over both alike. The path: a context-mode invoke
 * of a zero-latency scripted agent whose reply calls one tool (two model turns, one tool call:
 * a record with all its parts). Also the recorder alone: CPU per record built and written, beside
 * its floor (the row's INSERT alone) and what the target leaves per invoke; and
 * what continuing a chat thread costs on the recording server: a one-turn invoke naming a
 * conversation with 50 earlier turns (its owner and newest turns read from the records, given to
 * the model as history) against the same invoke without one, alternated.
 */
import { entryOf, EXECUTIONS_MIGRATIONS, SqliteExecutionStore } from '../src/execution/index.js';
import { ENTRY_COLUMNS, entryValues } from '../src/execution/records/model.js';
import type { AgentResponse } from '../src/execution/index.js';
import { newTraceId } from '../src/observability/span-recorder.js';
import { timeOrderedUuid } from '../src/shared/ids.js';
import type { CaxtonServer } from '../src/server/index.js';
import { migrate, openDatabase } from '../src/storage/index.js';
import { load, type LoadResult } from './lib/load.js';
import { note } from './lib/progress.js';
import { invokeOnce, startScriptedServer } from './lib/scripted-server.js';
import { threadCpuMs } from './lib/proc-cpu.js';
import type { Row, Suite, SuiteReport } from './lib/report.js';
import { fmt } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';

const env = (name: string, def: number) => {
  const v = process.env[name];
  return v === undefined || v === '' ? def : Number(v);
};
const ROUNDS = env('BENCH_ROUNDS', 4);
const SECONDS = env('BENCH_DURATION', 3);
const CONNECTIONS = env('BENCH_CONNECTIONS', 10);
/** Throughput with recording at least this share of without. */
const TARGET_RATIO = 0.95;
/** The recorder's floor commits this many rows at a time: the INSERT's own cost, the commit's shared out. */
const FLOOR_PER_TRANSACTION = 64;

const SCRIPT = `[[rules]]\nname = "echo"\nmatch = "^echo"\ncontent = "ok"\n\n[[rules]]\nname = "add"\n  [[rules.turns]]\n  tool_calls = [{ name = "calculator", arguments = { expression = "2+3" } }]\n  [[rules.turns]]\n  content = "sum: {{tool_result.calculator}}"\n`;
const AGENT = `name = "adder"\nversion = "1.0.0"\ndescription = "bench"\nsystem_prompt = "Add."\ntools = ["calculator"]\n\n[execution]\nisolation = "context"\n`;
const BODY = JSON.stringify({ request: 'add two and three' });
const ECHO = JSON.stringify({ request: 'echo this' });
const THREAD = JSON.stringify({ request: 'echo this', conversation_id: 'bench-thread' });
/** Earlier turns of the continued thread (the most a continued invoke gives the model). */
const THREAD_TURNS = 50;
const JSON_HEADERS = { 'content-type': 'application/json' };

async function startCaxton(dir: string, on: boolean): Promise<CaxtonServer> {
  const server = await startScriptedServer({
    dir,
    script: SCRIPT,
    agent: AGENT,
    toml: `[tracing]\nlocal_spans = 0\n[executions]\nenabled = ${on}\n`,
  });
  await invokeOnce(server, 'adder', BODY);
  return server;
}

const RESPONSE: AgentResponse = {
  id: 'resp',
  execution_id: 'x',
  agent: 'adder',
  content: 'sum: 5',
  tool_calls: [
    { id: 'c', name: 'calculator', arguments: { expression: '2+3' }, result: '5', is_error: false, duration_ms: 0.1 },
  ],
  usage: { input_tokens: 20, output_tokens: 8, total_tokens: 28 },
  execution_time_ms: 1,
  finish_reason: 'stop',
  provider: 'bench',
  model: 'm',
  turns: 2,
  isolation: 'context',
  model_turns: [1, 2].map((turn) => ({
    turn,
    provider: 'bench',
    model: 'm',
    input_tokens: 10,
    output_tokens: 4,
    latency_ms: 0.1,
    finish_reason: 'stop',
    tool_calls: turn === 1 ? 1 : 0,
  })),
};

/** One invoke's record as the executor hands it over. */
const sampleEntry = () =>
  entryOf({
    // Ids and trace ids as the executor makes them: where they land in their indexes is part of the cost.
    id: `exec_${timeOrderedUuid()}`,
    trace_id: newTraceId(),
    agent: 'adder',
    version: '1.0.0',
    shadow: false,
    started: Date.now(),
    duration_ms: 1,
    request: { request: 'add two and three' },
    response: RESPONSE,
  });

/** The recorder alone: CPU µs per record (built, queued, written in the turn's transaction), `per` per turn. */
async function recorderCost(per: number, n = 8000): Promise<{ all: number; loop: number }> {
  const dir = tempDir('caxton-bench-exec-store-');
  const db = openDatabase(dir.path);
  migrate(db, EXECUTIONS_MIGRATIONS);
  const store = new SqliteExecutionStore({ db, retentionMs: 1e12, maxRows: 1e8 });
  const turn = () => new Promise((r) => setImmediate(r));
  const record = () => store.record(sampleEntry());
  // What a server pays once (its writer's start, the prepared statement) is left out.
  record();
  store.flush();
  const c0 = process.cpuUsage();
  const l0 = threadCpuMs(process.pid);
  for (let i = 0; i < n; i += per) {
    for (let j = 0; j < per; j++) record();
    await turn();
  }
  store.close();
  const c = process.cpuUsage(c0);
  const loop = threadCpuMs(process.pid) - l0;
  db.close();
  dir.remove();
  return { all: (c.user + c.system) / n, loop: (loop * 1e3) / n };
}

/**
 * The recorder's floor: the same rows (built beforehand, outside the timing) inserted by the store's
 * own INSERT into the same migrated table, `per` rows per transaction, nothing else: what writing
 * an execution's row costs SQLite on this machine, whatever the code around it.
 */
function recorderFloor(per: number, n = 8000): number {
  const dir = tempDir('caxton-bench-exec-floor-');
  const db = openDatabase(dir.path);
  migrate(db, EXECUTIONS_MIGRATIONS);
  const insert = db.prepare(
    `INSERT OR IGNORE INTO executions (${ENTRY_COLUMNS.join(', ')}) VALUES (${ENTRY_COLUMNS.map(() => '?').join(', ')})`,
  );
  const rows = Array.from({ length: n + per }, () => entryValues(sampleEntry()));
  const write = db.transaction((from: number) => {
    for (let j = from; j < from + per; j++) insert.run(rows[j]!);
  });
  write(n); // the statement's first run, left out as the recorder's is
  const c0 = process.cpuUsage();
  for (let i = 0; i < n; i += per) write(i);
  const c = process.cpuUsage(c0);
  db.close();
  dir.remove();
  return (c.user + c.system) / n;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export const executionsSuite: Suite = {
  name: 'executions',
  description: `execution records on vs off: a context invoke with one tool call, ${ROUNDS} alternated rounds of ${SECONDS}s × ${CONNECTIONS} connections`,
  async run(): Promise<SuiteReport> {
    const alone: Record<string, number[]> = { 1: [], 8: [] };
    const loops: Record<string, number[]> = { 1: [], 8: [] };
    const floor: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      for (const per of [1, 8]) {
        const c = await recorderCost(per);
        alone[per]!.push(c.all);
        loops[per]!.push(c.loop);
      }
      floor.push(recorderFloor(FLOOR_PER_TRANSACTION));
    }
    const dirOn = tempDir('caxton-bench-exec-on-');
    const dirOff = tempDir('caxton-bench-exec-off-');
    const on = await startCaxton(dirOn.path, true);
    const off = await startCaxton(dirOff.path, false);
    const runs: Record<'on' | 'off', LoadResult[]> = { on: [], off: [] };
    const chat: Record<'thread' | 'none', LoadResult[]> = { thread: [], none: [] };
    try {
      for (let i = 0; i < THREAD_TURNS; i++) {
        const r = await fetch(`${on.url}/api/v1/agents/adder/invoke`, {
          method: 'POST',
          headers: JSON_HEADERS,
          body: THREAD,
        });
        if (r.status !== 200) throw new Error(`thread turn → ${r.status}`);
      }
      const go = (s: CaxtonServer) =>
        load({
          url: `${s.url}/api/v1/agents/adder/invoke`,
          method: 'POST',
          headers: JSON_HEADERS,
          body: BODY,
          duration: SECONDS,
          connections: CONNECTIONS,
        });
      await go(on); // warm-up, not counted
      await go(off);
      for (let r = 0; r < ROUNDS; r++) {
        for (const [k, s] of [
          ['on', on],
          ['off', off],
        ] as const) {
          const res = await go(s);
          if (res.non2xx + res.errors > 0) throw new Error(`${k}: ${res.non2xx} non-2xx, ${res.errors} errors`);
          runs[k].push(res);
          note(`round ${r + 1}/${ROUNDS} ${k}: ${fmt(res.req_per_s, 0)} req/s, p50 ${res.latency_ms.p50} ms`);
        }
      }
      // Each continued invoke adds a turn: the history stays at its bound (the newest THREAD_TURNS).
      const echo = (body: string) =>
        load({
          url: `${on.url}/api/v1/agents/adder/invoke`,
          method: 'POST',
          headers: JSON_HEADERS,
          body,
          duration: SECONDS,
          connections: CONNECTIONS,
        });
      await echo(THREAD);
      for (let r = 0; r < ROUNDS; r++) {
        for (const [k, body] of [
          ['thread', THREAD],
          ['none', ECHO],
        ] as const) {
          const res = await echo(body);
          if (res.non2xx + res.errors > 0) throw new Error(`${k}: ${res.non2xx} non-2xx, ${res.errors} errors`);
          chat[k].push(res);
          note(`round ${r + 1}/${ROUNDS} ${k}: ${fmt(res.req_per_s, 0)} req/s, p50 ${res.latency_ms.p50} ms`);
        }
      }
      const stored = await (await fetch(`${on.url}/api/v1/executions?limit=1`)).json();
      note(`stored on the recording server: ${JSON.stringify(stored).slice(0, 120)}…`);
    } finally {
      await on.close();
      await off.close();
      dirOn.remove();
      dirOff.remove();
    }
    const rps = (k: 'on' | 'off') => median(runs[k].map((r) => r.req_per_s));
    const ratios = runs.on.map((r, i) => r.req_per_s / runs.off[i]!.req_per_s);
    const ratio = median(ratios);
    // The unrecorded server's wall time per invoke with its thread saturated, and the share of it the target leaves.
    const budgetUs = (1 / TARGET_RATIO - 1) * (1e6 / rps('off'));
    const rows: Row[] = [
      {
        metric: 'invoke with one tool call, req/s (median of rounds)',
        value: `${fmt(rps('on'), 0)} recorded`,
        baseline: `${fmt(rps('off'), 0)} not recorded (same run)`,
      },
      {
        metric: 'throughput recorded / not recorded (median of per-round ratios)',
        value: fmt(ratio, 3),
        baseline: '1.000',
        target: `≥ ${TARGET_RATIO}`,
        verdict: ratio >= TARGET_RATIO ? 'pass' : 'fail',
      },
      {
        metric: 'p50 latency, ms (median of rounds)',
        value: `${median(runs.on.map((r) => r.latency_ms.p50))} recorded`,
        baseline: `${median(runs.off.map((r) => r.latency_ms.p50))} not recorded`,
      },
      {
        metric: `one-turn invoke continuing a thread (${THREAD_TURNS} earlier turns read and given), req/s`,
        value: `${fmt(median(chat.thread.map((r) => r.req_per_s)), 0)} continued`,
        baseline: `${fmt(median(chat.none.map((r) => r.req_per_s)), 0)} without a conversation (same run)`,
      },
      {
        metric: 'throughput continued / without (median of per-round ratios)',
        value: fmt(median(chat.thread.map((r, i) => r.req_per_s / chat.none[i]!.req_per_s)), 3),
        baseline: '1.000',
      },
      {
        metric: 'p50 latency continuing a thread, ms',
        value: `${median(chat.thread.map((r) => r.latency_ms.p50))} continued`,
        baseline: `${median(chat.none.map((r) => r.latency_ms.p50))} without`,
      },
      ...[1, 8].map((per): Row => ({
        metric: `recorder alone: CPU per record (built, queued, written), ${per} per turn`,
        value: `${fmt(median(alone[per]!), 1)} µs; event loop ${fmt(median(loops[per]!), 1)} µs (medians of ${ROUNDS})`,
        baseline: 'none (CPU time)',
      })),
      {
        metric: "what the target leaves for recording: the unrecorded server's time per invoke × (1 / 0.95 − 1)",
        value: `${fmt(budgetUs, 1)} µs per invoke (1 / ${TARGET_RATIO} − 1 of ${fmt(1e6 / rps('off'), 1)} µs)`,
        baseline: `the floor: the row's INSERT alone, ${FLOOR_PER_TRANSACTION} per transaction, ${fmt(median(floor), 1)} µs`,
      },
    ];
    return {
      rows,
      notes: [
        'Two servers in one process, [tracing] local_spans = 0 on both (spans are not what is measured), events and audit on in both; rounds alternate on/off.',
      ],
      raw: { runs, ratios, alone, loops, floor, budget_us: budgetUs, chat },
    };
  },
};
