/**
 * What recording costs, on against off in two servers of this process in alternated rounds
 * (docs/benchmarks.md has each table's method):
 * - `executions` (ADR 0056): a context invoke with one tool call, `[executions]` on and off; the
 *   recorder alone beside its floor (the row's INSERT); continuing a chat thread of 50 turns.
 * - `runs` (docs/runs.md): a three-step tool loop, `[execution] durable_runs` on and off, with a
 *   zero-latency model and one answering in 20 ms; the journal alone beside a bare INSERT.
 */
import { entryOf, EXECUTIONS_MIGRATIONS, SqliteExecutionStore } from '../src/execution/index.js';
import { RUNS_MIGRATIONS, SqliteRunJournal, type AgentResponse, type RunStep } from '../src/execution/index.js';
import { ENTRY_COLUMNS, entryValues } from '../src/execution/records/record-model.js';
import { newTraceId } from '../src/observability/span-recorder.js';
import { timeOrderedUuid } from '../src/shared/ids.js';
import type { CaxtonServer } from '../src/server/index.js';
import { migrate, openDatabase, type Db } from '../src/storage/index.js';
import type { LoadResult } from './lib/load.js';
import { note } from './lib/progress.js';
import { alternateLoad, invokeOnce, startScriptedServer } from './lib/scripted-server.js';
import { threadCpuMs } from './lib/proc-cpu.js';
import type { Row, Suite, SuiteReport } from './lib/report.js';
import { cpuUsPer, envNumber, fmt, median } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';

const ROUNDS = envNumber('BENCH_ROUNDS', 4);
const TARGET_RATIO = 0.95;

const rps = (xs: LoadResult[]) => median(xs.map((x) => x.req_per_s));
const p50 = (xs: LoadResult[]) => median(xs.map((x) => x.latency_ms.p50));
const ratio = (a: LoadResult[], b: LoadResult[]) => median(a.map((r, i) => r.req_per_s / b[i]!.req_per_s));
const ratioRow = (metric: string, value: number, target?: number): Row => ({
  metric,
  value: fmt(value, 3),
  baseline: '1.000',
  ...(target !== undefined && { target: `≥ ${target}`, verdict: value >= target ? 'pass' : 'fail' }),
});

/** A migrated database in a temporary directory, closed and removed after `use`. */
async function withDb<T>(migrations: Parameters<typeof migrate>[1], use: (db: Db) => T): Promise<Awaited<T>> {
  const dir = tempDir('caxton-bench-recording-');
  const db = openDatabase(dir.path);
  migrate(db, migrations);
  try {
    return await use(db);
  } finally {
    db.close();
    dir.remove();
  }
}

/** Two scripted servers, `[setting] = true` and `= false`, warmed with one invoke; closed after `use`. */
async function onAndOff<T>(
  o: {
    script: string;
    agent: string;
    body: string;
    expect?: string;
    latencyMs?: number;
    toml: (on: boolean) => string;
  },
  use: (s: { on: CaxtonServer; off: CaxtonServer }) => Promise<T>,
): Promise<T> {
  const dirs = [tempDir('caxton-bench-on-'), tempDir('caxton-bench-off-')];
  const name = /^name = "([^"]+)"/.exec(o.agent)![1]!;
  const servers: CaxtonServer[] = [];
  try {
    for (const [i, flag] of [true, false].entries()) {
      const s = await startScriptedServer({ dir: dirs[i]!.path, ...o, toml: o.toml(flag) });
      servers.push(s);
      await invokeOnce(s, name, o.body, o.expect);
    }
    return await use({ on: servers[0]!, off: servers[1]! });
  } finally {
    for (const s of servers) await s.close();
    for (const d of dirs) d.remove();
  }
}

const EXEC_SCRIPT = `[[rules]]\nname = "echo"\nmatch = "^echo"\ncontent = "ok"\n\n[[rules]]\nname = "add"\n  [[rules.turns]]\n  tool_calls = [{ name = "calculator", arguments = { expression = "2+3" } }]\n  [[rules.turns]]\n  content = "sum: {{tool_result.calculator}}"\n`;
const ADDER = `name = "adder"\nversion = "1.0.0"\ndescription = "bench"\nsystem_prompt = "Add."\ntools = ["calculator"]\n\n[execution]\nisolation = "context"\n`;
const ADD = JSON.stringify({ request: 'add two and three' });
const THREAD = JSON.stringify({ request: 'echo this', conversation_id: 'bench-thread' });
/** Earlier turns of the continued thread (the most a continued invoke gives the model). */
const THREAD_TURNS = 50;
/** The recorder's floor commits this many rows at a time: the INSERT's own cost, the commit's shared out. */
const FLOOR_PER_TRANSACTION = 64;

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

/** One invoke's record as the executor hands it over, with ids made as it makes them (index placement is part of the cost). */
const sampleEntry = () =>
  entryOf({
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
const recorderCost = (per: number, n = 8000) =>
  withDb(EXECUTIONS_MIGRATIONS, async (db) => {
    const store = new SqliteExecutionStore({ db, retentionMs: 1e12, maxRows: 1e8 });
    store.record(sampleEntry()); // the writer's start and prepared statement, paid once per server
    store.flush();
    const l0 = threadCpuMs(process.pid);
    const all = await cpuUsPer(n, async () => {
      for (let i = 0; i < n; i += per) {
        for (let j = 0; j < per; j++) store.record(sampleEntry());
        await new Promise((r) => setImmediate(r));
      }
      store.close();
    });
    return { all, loop: ((threadCpuMs(process.pid) - l0) * 1e3) / n };
  });

/** The floor: the same rows, built beforehand, by the store's own INSERT, `per` per transaction. */
const recorderFloor = (per: number, n = 8000) =>
  withDb(EXECUTIONS_MIGRATIONS, (db) => {
    const cols = ENTRY_COLUMNS.join(', ');
    const insert = db.prepare(
      `INSERT OR IGNORE INTO executions (${cols}) VALUES (${ENTRY_COLUMNS.map(() => '?').join(', ')})`,
    );
    const rows = Array.from({ length: n + per }, () => entryValues(sampleEntry()));
    const write = db.transaction((from: number) => {
      for (let j = from; j < from + per; j++) insert.run(rows[j]!);
    });
    write(n); // the statement's first run, left out as the recorder's is
    return cpuUsPer(n, () => {
      for (let i = 0; i < n; i += per) write(i);
    });
  });

export const executionsSuite: Suite = {
  name: 'executions',
  description: `execution records on vs off: a context invoke with one tool call, ${ROUNDS} alternated rounds`,
  async run(): Promise<SuiteReport> {
    const seconds = envNumber('BENCH_DURATION', 3);
    const connections = envNumber('BENCH_CONNECTIONS', 10);
    const alone: Record<number, number[]> = { 1: [], 8: [] };
    const loops: Record<number, number[]> = { 1: [], 8: [] };
    const floor: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      for (const per of [1, 8]) {
        const c = await recorderCost(per);
        alone[per]!.push(c.all);
        loops[per]!.push(c.loop);
      }
      floor.push(await recorderFloor(FLOOR_PER_TRANSACTION));
    }
    const toml = (on: boolean) => `[tracing]\nlocal_spans = 0\n[executions]\nenabled = ${on}\n`;
    const { runs, chat } = await onAndOff({ script: EXEC_SCRIPT, agent: ADDER, body: ADD, toml }, async (s) => {
      for (let i = 0; i < THREAD_TURNS; i++) await invokeOnce(s.on, 'adder', THREAD);
      const o = { path: '/api/v1/agents/adder/invoke', seconds, connections, rounds: ROUNDS };
      const runs = await alternateLoad(s, { ...o, body: ADD });
      // Each continued invoke adds a turn: the history stays at its bound (the newest THREAD_TURNS).
      const chat = await alternateLoad(
        { thread: s.on, none: s.on },
        { ...o, body: { thread: THREAD, none: '{"request":"echo this"}' } },
      );
      note(
        `stored: ${JSON.stringify(await (await fetch(`${s.on.url}/api/v1/executions?limit=1`)).json()).slice(0, 120)}…`,
      );
      return { runs, chat };
    });
    const budgetUs = (1 / TARGET_RATIO - 1) * (1e6 / rps(runs.off));
    const rows: Row[] = [
      {
        metric: 'invoke with one tool call, req/s (median of rounds)',
        value: `${fmt(rps(runs.on), 0)} recorded`,
        baseline: `${fmt(rps(runs.off), 0)} not recorded (same run)`,
      },
      ratioRow(
        'throughput recorded / not recorded (median of per-round ratios)',
        ratio(runs.on, runs.off),
        TARGET_RATIO,
      ),
      {
        metric: 'p50 latency, ms (median of rounds)',
        value: `${p50(runs.on)} recorded`,
        baseline: `${p50(runs.off)} not recorded`,
      },
      {
        metric: `one-turn invoke continuing a thread (${THREAD_TURNS} earlier turns read and given), req/s (p50 ms)`,
        value: `${fmt(rps(chat.thread), 0)} continued (${p50(chat.thread)})`,
        baseline: `${fmt(rps(chat.none), 0)} without a conversation (${p50(chat.none)}), same run`,
      },
      ratioRow('throughput continued / without (median of per-round ratios)', ratio(chat.thread, chat.none)),
      ...[1, 8].map((per): Row => ({
        metric: `recorder alone: CPU per record (built, queued, written), ${per} per turn`,
        value: `${fmt(median(alone[per]!), 1)} µs; event loop ${fmt(median(loops[per]!), 1)} µs (medians of ${ROUNDS})`,
        baseline: 'none (CPU time)',
      })),
      {
        metric: "what the target leaves for recording: the unrecorded server's time per invoke × (1 / 0.95 − 1)",
        value: `${fmt(budgetUs, 1)} µs per invoke (of ${fmt(1e6 / rps(runs.off), 1)} µs)`,
        baseline: `the floor: the row's INSERT alone, ${FLOOR_PER_TRANSACTION} per transaction, ${fmt(median(floor), 1)} µs`,
      },
    ];
    return {
      rows,
      notes: ['[tracing] local_spans = 0 on both servers, events and audit on in both; rounds alternate on/off.'],
      raw: { runs, alone, loops, floor, budget_us: budgetUs, chat },
    };
  },
};

const LOOP_SCRIPT = `[[rules]]\nname = "loop"\n${[1, 2, 3].map((n) => `  [[rules.turns]]\n  tool_calls = [{ name = "calculator", arguments = { expression = "${n}+${n}" } }]\n`).join('')}  [[rules.turns]]\n  content = "done: {{tool_result.calculator}}"\n`;
const LOOPER = `name = "looper"\nversion = "1.0.0"\ndescription = "bench"\nsystem_prompt = "Add three times."\ntools = ["calculator"]\n[limits]\nmax_turns = 8\n[execution]\nisolation = "context"\n`;
const MODEL_MS = 20;
/** A tool call's end, as a run records it. */
const STEP: RunStep = {
  kind: 'tool_end',
  turn: 1,
  id: 'call_0_0',
  name: 'calculator',
  result: '2',
  is_error: false,
  duration_ms: 0.02,
};

/** The journal alone: CPU µs per step, `runs` runs each appending one step per turn. */
const journalCost = (runs: number, n = 12_000) =>
  withDb(RUNS_MIGRATIONS, async (db) => {
    const journal = new SqliteRunJournal({ db, retentionMs: 1e12 });
    const ids = Array.from({ length: runs }, () => `exec_${timeOrderedUuid()}`);
    for (const id of ids)
      await journal.open({
        id,
        key: null,
        agent: 'looper',
        origin: 'invoke',
        principal: null,
        request: { request: 'x' },
      });
    const turn = () => Promise.all(ids.map((id) => journal.append(id, [STEP])));
    await turn();
    const us = await cpuUsPer(n, async () => {
      for (let done = 0; done < n; done += runs) await turn();
    });
    journal.close();
    return us;
  });

/** The floor: the same step row by a bare prepared INSERT, `per` rows per transaction. */
const insertFloor = (per: number, n = 12_000) =>
  withDb(RUNS_MIGRATIONS, (db) => {
    const insert = db.prepare('INSERT INTO run_steps (run_id, seq, ts, steps) VALUES (?, ?, ?, ?)');
    const ids = Array.from({ length: per }, () => `exec_${timeOrderedUuid()}`);
    const text = JSON.stringify([STEP]);
    let seq = 0;
    const write = db.transaction(() => {
      for (const id of ids) insert.run(id, seq, Date.now(), text);
      seq++;
    });
    write();
    return cpuUsPer(n, () => {
      for (let done = 0; done < n; done += per) write();
    });
  });

export const runsSuite: Suite = {
  name: 'runs',
  description: `durable runs on vs off: a three-step tool loop, ${ROUNDS} alternated rounds; the journal alone beside a bare INSERT`,
  async run(): Promise<SuiteReport> {
    const seconds = envNumber('BENCH_DURATION', 4);
    const cost: Record<number, number[]> = { 1: [], 50: [] };
    const floor: Record<number, number[]> = { 1: [], 50: [] };
    for (let r = 0; r < ROUNDS; r++)
      for (const k of [1, 50]) {
        cost[k]!.push(await journalCost(k));
        floor[k]!.push(await insertFloor(k));
      }
    const body = JSON.stringify({ request: 'add three times' });
    const toml = (on: boolean) => `[tracing]\nlocal_spans = 0\n[execution]\ndurable_runs = ${on}\n`;
    const alternate = (latencyMs: number, connections: number) =>
      onAndOff({ script: LOOP_SCRIPT, agent: LOOPER, body, expect: 'done: 6', latencyMs, toml }, (s) =>
        alternateLoad(s, {
          path: '/api/v1/agents/looper/invoke',
          body,
          seconds,
          connections,
          rounds: ROUNDS,
          label: `model ${latencyMs} ms, `,
        }),
      );
    const fast = await alternate(0, 10);
    const slow = await alternate(MODEL_MS, 50);
    const rows: Row[] = [
      ...[1, 50].map((k): Row => ({
        metric: `recording a step: CPU per step, ${k} run${k > 1 ? 's' : ''} appending per turn (one commit per turn)`,
        value: `${fmt(median(cost[k]!), 1)} µs (median of ${ROUNDS})`,
        baseline: `bare INSERT of the same row, ${k} per transaction: ${fmt(median(floor[k]!), 1)} µs`,
      })),
      {
        metric: 'three-step tool loop, zero-latency model, 10 connections: runs/s',
        value: `${fmt(rps(fast.on), 0)} recorded (p50 ${p50(fast.on)} ms)`,
        baseline: `${fmt(rps(fast.off), 0)} not recorded (p50 ${p50(fast.off)} ms), same run`,
      },
      ratioRow(
        'zero-latency throughput recorded / not recorded (median of per-round ratios)',
        ratio(fast.on, fast.off),
      ),
      {
        metric: `three-step tool loop, model answering in ${MODEL_MS} ms, 50 concurrent runs: runs/s`,
        value: `${fmt(rps(slow.on), 0)} recorded (p50 ${p50(slow.on)} ms)`,
        baseline: `${fmt(rps(slow.off), 0)} not recorded (p50 ${p50(slow.off)} ms), same run`,
      },
      ratioRow(`${MODEL_MS} ms model throughput recorded / not recorded`, ratio(slow.on, slow.off), TARGET_RATIO),
    ];
    return {
      rows,
      notes: ['[tracing] local_spans = 0 on both servers; rounds alternate recorded / not.'],
      raw: { cost, floor, fast, slow },
    };
  },
};
