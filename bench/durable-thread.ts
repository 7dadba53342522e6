/**
 * The durable floor with its group commits on a worker thread (bench/lib/durable-floor-thread.ts)
 * beside the bare loop and the single-thread floor engine (bench/lib/durable-floor.ts), in
 * alternated reps in one process: wall msg/s, CPU µs per message over all threads, and the event
 * loop's own CPU µs per message (from /proc schedstat). The load average is
 * printed with each rep: the threaded engine's wall rate depends on a second core being free.
 *   N=30000 REPS=7 GROUP_SIZES=1000,5000 BUS=1 node --import tsx --import ./bench/lib/shipped-build.mjs bench/durable-thread.ts
 * `BUS=1` adds the bus, and the bus with its commits' statements run on a thread (a bound: see `bus`).
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { AgentRegistry } from '../src/agents/index.js';
import { loadServerConfig } from '../src/config/index.js';
import {
  MESSAGING_MIGRATIONS,
  MessageBus,
  newConversationId,
  newMessageId,
  type AclMessage,
} from '../src/messaging/index.js';
import { migrate, openDatabase } from '../src/storage/index.js';
import { AGENTS, fillRegistry } from './lib/bench-agents.js';
import { durableStatements, minimalEngine } from './lib/durable-floor.js';
import { statementThread, threadedEngine } from './lib/durable-floor-thread.js';
import { threadCpuMs as tidCpuMs } from './lib/proc-cpu.js';
import { tempDir } from './lib/tmp.js';

const N = Number(process.env.N ?? 30_000);
const REPS = Number(process.env.REPS ?? 5);
const GROUPS = (process.env.GROUP_SIZES ?? '1000').split(',').map(Number);

let offset = 0;
function batch(n: number): AclMessage[] {
  return Array.from({ length: n }, (_, i) => ({
    id: newMessageId(),
    performative: 'inform',
    sender: 'bench',
    receivers: [`agent-${(offset + i) % AGENTS}`],
    content: `job ${offset++}`,
    conversation_id: newConversationId(),
    params: {},
    timestamp: new Date().toISOString(),
    chain: [],
  }));
}

/** Every message's delivery done and its conversation completed, whichever connection wrote them. */
function checkDone(db: ReturnType<typeof openDatabase>, n: number): void {
  const count = (q: string) => db.prepare(q).pluck().get() as number;
  const done = count("SELECT count(*) FROM deliveries WHERE state = 'done'");
  const completed = count("SELECT count(*) FROM conversations WHERE state = 'completed'");
  if (done !== n || completed !== n)
    throw new Error(`${done} deliveries done, ${completed} conversations completed, of ${n}`);
}

const cpu = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1000;
/** The event loop's thread's CPU, ms. */
const threadCpuMs = () => tidCpuMs(process.pid);
interface Run {
  ms: number;
  /** Every thread's CPU, ms. */
  cpu: number;
  /** The event loop's thread's CPU, ms. */
  main: number;
}

function bare(path: string): Run {
  const db = openDatabase(path);
  migrate(db, MESSAGING_MIGRATIONS);
  const sql = durableStatements(db);
  const rows = batch(N);
  const c0 = process.cpuUsage();
  const m0 = threadCpuMs();
  const t0 = performance.now();
  for (let s = 0; s < rows.length; s += 5_000) {
    const chunk = rows.slice(s, s + 5_000);
    const ids: number[] = [];
    db.transaction(() => {
      for (const m of chunk) ids.push(sql.accept(m));
    })();
    db.transaction(() => {
      for (let i = 0; i < chunk.length; i++) sql.done(chunk[i]!, ids[i]!);
    })();
  }
  const r = { ms: performance.now() - t0, cpu: cpu(process.cpuUsage(c0)), main: threadCpuMs() - m0 };
  db.close();
  return r;
}

async function floor(path: string): Promise<Run> {
  const db = openDatabase(path);
  migrate(db, MESSAGING_MIGRATIONS);
  let acked = 0;
  let done!: () => void;
  const fin = new Promise<void>((r) => (done = r));
  const engine = minimalEngine(db, () => {});
  engine.onAcked(() => {
    if (++acked === N) done();
  });
  const rows = batch(N);
  const c0 = process.cpuUsage();
  const m0 = threadCpuMs();
  const t0 = performance.now();
  await Promise.all(rows.map((m) => engine.send(m)));
  await fin;
  const r = { ms: performance.now() - t0, cpu: cpu(process.cpuUsage(c0)), main: threadCpuMs() - m0 };
  db.close();
  return r;
}

async function threaded(path: string, group: number): Promise<Run & { worker: number }> {
  const db = openDatabase(path);
  migrate(db, MESSAGING_MIGRATIONS);
  let acked = 0;
  let done!: () => void;
  const fin = new Promise<void>((r) => (done = r));
  const engine = threadedEngine(join(path, 'caxton.db'), () => {}, group);
  engine.onAcked(() => {
    if (++acked === N) done();
  });
  // Warm the thread: its start, its statements and its first commit are not the steady state.
  await Promise.all(batch(200).map((m) => engine.send(m)));
  acked -= 200;
  const rows = batch(N);
  const w0 = await engine.workerCpuMs();
  const c0 = process.cpuUsage();
  const m0 = threadCpuMs();
  const t0 = performance.now();
  await Promise.all(rows.map((m) => engine.send(m)));
  await fin;
  const ms = performance.now() - t0;
  const all = cpu(process.cpuUsage(c0));
  const main = threadCpuMs() - m0;
  const worker = (await engine.workerCpuMs()) - w0;
  await engine.close();
  checkDone(db, N + 200);
  db.close();
  return { ms, cpu: all, main, worker };
}

/**
 * The bus (bench/messaging.ts's one-way informs). `onThread`: a bound, not a design: the
 * statements its group commit runs are recorded instead, and each batch is committed by a worker
 * thread's connection, while the bus resolves its writes as if they had committed at once. So
 * acknowledgements do not wait for the thread (not durable), and the run ends when the thread
 * has committed everything: what the bus's event loop would cost, and the wall rate it could
 * reach, with every SQLite statement of its commits off its thread.
 */
async function bus(path: string, onThread: boolean): Promise<Run & { worker?: number }> {
  const db = openDatabase(path);
  migrate(db, MESSAGING_MIGRATIONS);
  const registry = new AgentRegistry();
  fillRegistry(registry);
  const sql: string[] = [];
  const thread = onThread ? statementThread(join(path, 'caxton.db'), sql) : undefined;
  let recording: unknown[] | undefined;
  if (thread) {
    const prepare = db.prepare.bind(db);
    db.prepare = ((source: string) => {
      const s = prepare(source);
      const at = sql.push(source) - 1;
      const run = s.run.bind(s);
      (s as { run: unknown }).run = (...a: unknown[]) => {
        if (!recording) return run(...a);
        recording.push(at, a.length, ...a);
        return { changes: 1, lastInsertRowid: 0 };
      };
      return s;
    }) as typeof db.prepare;
    db.transaction = ((fn: (...a: unknown[]) => unknown) =>
      (...a: unknown[]) => {
        recording = [];
        try {
          return fn(...a);
        } finally {
          const v = recording;
          recording = undefined;
          if (v.length > 0) void thread.commit(v);
        }
      }) as typeof db.transaction;
  }
  const config = { ...loadServerConfig({ env: {}, cwd: path }).messaging, max_queue: 10_000_000 };
  const b = new MessageBus({ db, registry, config });
  let delivered = 0;
  let target = 0;
  let all!: () => void;
  for (let i = 0; i < AGENTS; i++)
    b.registerHandler(`agent-${i}`, () => {
      if (++delivered === target) all();
      return undefined;
    });
  b.start();
  const run = async (msgs: AclMessage[]) => {
    delivered = 0;
    target = msgs.length;
    const fin = new Promise<void>((r) => (all = r));
    await Promise.all(msgs.map((m) => b.send(m, { newId: true, newConversation: true })));
    await fin;
    await b.settled();
    await thread?.commit([]);
  };
  await run(batch(5_000));
  const rows = batch(N);
  const w0 = (await thread?.cpuMs()) ?? 0;
  const c0 = process.cpuUsage();
  const m0 = threadCpuMs();
  const t0 = performance.now();
  await run(rows);
  const ms = performance.now() - t0;
  const all_ = cpu(process.cpuUsage(c0));
  const main = threadCpuMs() - m0;
  const worker = thread ? (await thread.cpuMs()) - w0 : undefined;
  await b.close();
  await thread?.close();
  checkDone(db, N + 5_000);
  db.close();
  return { ms, cpu: all_, main, worker };
}

const BUS = process.env.BUS === '1';
const res: Record<string, (Run & { worker?: number })[]> = {};
const add = (k: string, r: Run & { worker?: number }): void => {
  (res[k] ??= []).push(r);
};
const loads: number[] = [];
// One warm-up of each, not counted (JIT, the page cache).
{
  const d = tempDir('cax-thr-');
  try {
    bare(join(d.path, 'b'));
    await floor(join(d.path, 'f'));
    for (const g of GROUPS) await threaded(join(d.path, `t${g}`), g);
    if (BUS) {
      await bus(join(d.path, 'bus'), false);
      await bus(join(d.path, 'bus-t'), true);
    }
  } finally {
    d.remove();
  }
}
for (let rep = 0; rep < REPS; rep++) {
  const d = tempDir('cax-thr-');
  const kinds: (() => Promise<void>)[] = [
    async () => add('bare loop', bare(join(d.path, 'b'))),
    async () => add('floor', await floor(join(d.path, 'f'))),
    ...GROUPS.map((g) => async () => add(`threaded g=${g}`, await threaded(join(d.path, `t${g}`), g))),
    ...(BUS
      ? [
          async () => add('bus', await bus(join(d.path, 'bus'), false)),
          async () => add('bus, thread bound', await bus(join(d.path, 'bus-t'), true)),
        ]
      : []),
  ];
  try {
    for (const k of rep % 2 === 0 ? kinds : [...kinds].reverse()) await k();
  } finally {
    d.remove();
  }
  loads.push(loadavg()[0]!);
  process.stderr.write(`rep ${rep + 1}/${REPS} load ${loadavg()[0]!.toFixed(2)}\n`);
}

const med = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const range = (xs: number[], f = 0) => `${Math.min(...xs).toFixed(f)}–${Math.max(...xs).toFixed(f)}`;
const bareRates = res['bare loop']!.map((r) => (N / r.ms) * 1000);
const bareCpu = res['bare loop']!.map((r) => (r.cpu * 1000) / N);
console.log(`N=${N} reps=${REPS} load ${range(loads, 2)}`);
for (const [k, runs] of Object.entries(res)) {
  const rates = runs.map((r) => (N / r.ms) * 1000);
  const us = runs.map((r) => (r.cpu * 1000) / N);
  const mainUs = runs.map((r) => (r.main * 1000) / N);
  const ratio = runs.map((r, i) => ((N / r.ms) * 1000) / bareRates[i]!);
  const cpuRatio = runs.map((r, i) => bareCpu[i]! / ((r.cpu * 1000) / N));
  // With a core free for each thread, the wall time is bounded by the busier thread's CPU.
  const bound = runs.map((r, i) => res['bare loop']![i]!.cpu / Math.max(r.main, r.worker ?? r.cpu));
  const w =
    runs[0]!.worker !== undefined
      ? ` worker ${med(runs.map((r) => (r.worker! * 1000) / N)).toFixed(1)} µs; bare cpu / busier thread ${med(bound).toFixed(2)} (${range(bound, 2)})`
      : '';
  console.log(
    `${k.padEnd(16)} ${med(rates).toFixed(0)} msg/s (${range(rates)}) ×bare wall ${med(ratio).toFixed(2)} (${range(ratio, 2)})` +
      ` | cpu ${med(us).toFixed(1)} µs/msg (${range(us, 1)}) ×bare/cpu ${med(cpuRatio).toFixed(2)} | main ${med(mainUs).toFixed(1)} µs${w}`,
  );
}
