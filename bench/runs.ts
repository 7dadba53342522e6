/**
 * What durable runs cost (docs/runs.md): every step of a run committed before the next begins.
 *  - The journal alone: CPU per step appended (queued, committed with the other runs' steps of the
 *    same turn), K runs appending per turn, beside a bare INSERT of the same row, in the same
 *    transactions.
 *  - Two servers in this process, one recording runs (`[execution] durable_runs`, the default), one
 *    not, otherwise alike, in alternated rounds: a three-step tool loop (three calculator calls,
 *    then the answer: four model turns) with a zero-latency scripted model (no target: recording is
 *    all there is to measure), and with a stand-in model answering in 20 ms at 50 concurrent runs
 *    (target: recorded ≥ 0.95× unrecorded).
 */
import { RUNS_MIGRATIONS, SqliteRunJournal, type RunStep } from '../src/execution/index.js';
import { timeOrderedUuid } from '../src/shared/ids.js';
import type { CaxtonServer } from '../src/server/index.js';
import { migrate, openDatabase } from '../src/storage/index.js';
import { load, type LoadResult } from './lib/load.js';
import { note } from './lib/progress.js';
import { invokeOnce, startScriptedServer } from './lib/scripted-server.js';
import type { Row, Suite, SuiteReport } from './lib/report.js';
import { fmt } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';

const env = (name: string, def: number) => {
  const v = process.env[name];
  return v === undefined || v === '' ? def : Number(v);
};
const ROUNDS = env('BENCH_ROUNDS', 4);
const SECONDS = env('BENCH_DURATION', 4);
const TARGET_RATIO = 0.95;
const MODEL_MS = 20;
const SLOW_CONNECTIONS = 50;
const FAST_CONNECTIONS = 10;

const SCRIPT = `[[rules]]\nname = "loop"\n  [[rules.turns]]\n  tool_calls = [{ name = "calculator", arguments = { expression = "1+1" } }]\n  [[rules.turns]]\n  tool_calls = [{ name = "calculator", arguments = { expression = "2+2" } }]\n  [[rules.turns]]\n  tool_calls = [{ name = "calculator", arguments = { expression = "3+3" } }]\n  [[rules.turns]]\n  content = "done: {{tool_result.calculator}}"\n`;
const AGENT = `name = "looper"\nversion = "1.0.0"\ndescription = "bench"\nsystem_prompt = "Add three times."\ntools = ["calculator"]\n[limits]\nmax_turns = 8\n[execution]\nisolation = "context"\n`;
const BODY = JSON.stringify({ request: 'add three times' });
const JSON_HEADERS = { 'content-type': 'application/json' };

async function startCaxton(dir: string, durable: boolean, latencyMs: number): Promise<CaxtonServer> {
  const server = await startScriptedServer({
    dir,
    script: SCRIPT,
    agent: AGENT,
    latencyMs,
    toml: `[tracing]\nlocal_spans = 0\n[execution]\ndurable_runs = ${durable}\n`,
  });
  await invokeOnce(server, 'looper', BODY, 'done: 6');
  return server;
}

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
async function journalCost(runs: number, n = 12_000): Promise<number> {
  const dir = tempDir('caxton-bench-runs-journal-');
  const db = openDatabase(dir.path);
  migrate(db, RUNS_MIGRATIONS);
  const journal = new SqliteRunJournal({ db, retentionMs: 1e12 });
  const ids: string[] = [];
  for (let i = 0; i < runs; i++) {
    const id = `exec_${timeOrderedUuid()}`;
    ids.push(id);
    await journal.open({
      id,
      key: null,
      agent: 'looper',
      origin: 'invoke',
      principal: null,
      request: { request: 'x' },
    });
  }
  await Promise.all(ids.map((id) => journal.append(id, [STEP])));
  const c0 = process.cpuUsage();
  for (let done = 0; done < n; done += runs) await Promise.all(ids.map((id) => journal.append(id, [STEP])));
  const c = process.cpuUsage(c0);
  journal.close();
  db.close();
  dir.remove();
  return (c.user + c.system) / n;
}

/** The floor: the same step row inserted by a bare prepared INSERT, `per` rows per transaction. */
function insertFloor(per: number, n = 12_000): number {
  const dir = tempDir('caxton-bench-runs-floor-');
  const db = openDatabase(dir.path);
  migrate(db, RUNS_MIGRATIONS);
  const insert = db.prepare('INSERT INTO run_steps (run_id, seq, ts, steps) VALUES (?, ?, ?, ?)');
  const ids = Array.from({ length: per }, () => `exec_${timeOrderedUuid()}`);
  const text = JSON.stringify([STEP]);
  let seq = 0;
  const write = db.transaction(() => {
    for (const id of ids) insert.run(id, seq, Date.now(), text);
    seq++;
  });
  write();
  const c0 = process.cpuUsage();
  for (let done = 0; done < n; done += per) write();
  const c = process.cpuUsage(c0);
  db.close();
  dir.remove();
  return (c.user + c.system) / n;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function alternate(
  latencyMs: number,
  connections: number,
): Promise<{ on: LoadResult[]; off: LoadResult[]; ratios: number[] }> {
  const dirOn = tempDir('caxton-bench-runs-on-');
  const dirOff = tempDir('caxton-bench-runs-off-');
  const on = await startCaxton(dirOn.path, true, latencyMs);
  const off = await startCaxton(dirOff.path, false, latencyMs);
  const out = { on: [] as LoadResult[], off: [] as LoadResult[], ratios: [] as number[] };
  try {
    const go = (s: CaxtonServer) =>
      load({
        url: `${s.url}/api/v1/agents/looper/invoke`,
        method: 'POST',
        headers: JSON_HEADERS,
        body: BODY,
        duration: SECONDS,
        connections,
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
        out[k].push(res);
        note(
          `model ${latencyMs} ms, round ${r + 1}/${ROUNDS} ${k}: ${fmt(res.req_per_s, 0)} runs/s, p50 ${res.latency_ms.p50} ms`,
        );
      }
      out.ratios.push(out.on[r]!.req_per_s / out.off[r]!.req_per_s);
    }
  } finally {
    await on.close();
    await off.close();
    dirOn.remove();
    dirOff.remove();
  }
  return out;
}

export const runsSuite: Suite = {
  name: 'runs',
  description: `durable runs on vs off: a three-step tool loop, ${ROUNDS} alternated rounds of ${SECONDS}s; the journal alone beside a bare INSERT`,
  async run(): Promise<SuiteReport> {
    const cost: Record<number, number[]> = { 1: [], 50: [] };
    const floor: Record<number, number[]> = { 1: [], 50: [] };
    for (let r = 0; r < ROUNDS; r++) {
      for (const k of [1, 50]) {
        cost[k]!.push(await journalCost(k));
        floor[k]!.push(insertFloor(k));
      }
    }
    const fast = await alternate(0, FAST_CONNECTIONS);
    const slow = await alternate(MODEL_MS, SLOW_CONNECTIONS);
    const rps = (xs: LoadResult[]) => fmt(median(xs.map((x) => x.req_per_s)), 0);
    const p50 = (xs: LoadResult[]) => median(xs.map((x) => x.latency_ms.p50));
    const slowRatio = median(slow.ratios);
    const rows: Row[] = [
      ...[1, 50].map((k): Row => ({
        metric: `recording a step: CPU per step, ${k} run${k > 1 ? 's' : ''} appending per turn (one commit per turn)`,
        value: `${fmt(median(cost[k]!), 1)} µs (median of ${ROUNDS})`,
        baseline: `bare INSERT of the same row, ${k} per transaction: ${fmt(median(floor[k]!), 1)} µs`,
      })),
      {
        metric: `three-step tool loop, zero-latency model, ${FAST_CONNECTIONS} connections: runs/s`,
        value: `${rps(fast.on)} recorded (p50 ${p50(fast.on)} ms)`,
        baseline: `${rps(fast.off)} not recorded (p50 ${p50(fast.off)} ms), same run`,
      },
      {
        metric: 'zero-latency throughput recorded / not recorded (median of per-round ratios)',
        value: fmt(median(fast.ratios), 3),
        baseline: '1.000',
      },
      {
        metric: `three-step tool loop, model answering in ${MODEL_MS} ms, ${SLOW_CONNECTIONS} concurrent runs: runs/s`,
        value: `${rps(slow.on)} recorded (p50 ${p50(slow.on)} ms)`,
        baseline: `${rps(slow.off)} not recorded (p50 ${p50(slow.off)} ms), same run`,
      },
      {
        metric: `${MODEL_MS} ms model throughput recorded / not recorded (median of per-round ratios)`,
        value: fmt(slowRatio, 3),
        baseline: '1.000',
        target: `≥ ${TARGET_RATIO}`,
        verdict: slowRatio >= TARGET_RATIO ? 'pass' : 'fail',
      },
    ];
    return {
      rows,
      notes: [
        "Two servers in one process ([tracing] local_spans = 0 on both); rounds alternate recorded / not recorded. A run records 4 model replies and 3 tool ends (the calculator is idempotent: no starts) in 4 rows, its own row and its end; the run waits for 2 commits (the last reply, the end), each shared with every other run of the same turn, and the 3 turns' commits land while the model is asked again.",
      ],
      raw: { cost, floor, fast, slow },
    };
  },
};
