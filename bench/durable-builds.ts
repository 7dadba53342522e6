/**
 * Durable delivery (bench/messaging.ts's one-way informs, each its own conversation) of one or more
 * builds side by side in one process, in alternated reps, beside the bare SQL loop and the floor
 * engine (bench/lib/durable-floor.ts): CPU µs and wall msg/s per delivered and acknowledged message.
 * For A/B of the engine against another build (main's `dist/` copied where its imports still resolve
 * node_modules, e.g. beside a symlink to it):
 *   DISTS=/path/to/main/dist,dist N=30000 REPS=9 node --expose-gc --import tsx bench/durable-builds.ts
 * `ONLY=caxton` leaves out the loop and the floor; `NOCAX=1` runs only them.
 *
 * Each build's CPU is also split in two: inside the bus's group-commit transactions (its rows'
 * statements, the rows built for them, and whatever the collector does meanwhile) and the rest
 * (the engine outside its commits). Beside them, the store loop: the bus's own row writes
 * (`MessageStore`: the same four statements, the body scrubbed) in the bare loop's transactions,
 * with no engine. The bare loop's CPU over the CPU inside the transactions is what the bus would
 * reach against the loop if its engine cost nothing outside its commits.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { durableStatements, minimalEngine } from './lib/durable-floor.js';

const N = Number(process.env.N ?? 30000);
const REPS = Number(process.env.REPS ?? 5);
const dists = (process.env.DISTS ?? 'dist').split(',');
const only = process.env.ONLY;
const noCaxton = process.env.NOCAX === '1';
const AGENTS = 100;

async function load(dist: string) {
  const u = (p: string) => pathToFileURL(resolve(dist, p)).href;
  const agents = await import(u('agents/index.js'));
  const store = await import(u('messaging/sqlite/sqlite-message-store.js'));
  const config = await import(u('config/index.js'));
  const msg = await import(u('messaging/index.js'));
  const storage = await import(u('storage/index.js'));
  return { agents, config, msg, storage, store };
}
type Mods = Awaited<ReturnType<typeof load>>;

function batch(M: Mods, n: number, offset: number) {
  return Array.from({ length: n }, (_, i) => ({
    id: M.msg.newMessageId(),
    performative: 'inform',
    sender: 'bench',
    receivers: [`agent-${(offset + i) % AGENTS}`],
    content: `job ${offset + i}`,
    conversation_id: M.msg.newConversationId(),
    params: {},
    timestamp: new Date().toISOString(),
    chain: [],
  }));
}

const cpu = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1000;

async function caxton(M: Mods, dir: string) {
  const db = M.storage.openDatabase(dir);
  M.storage.migrate(db, M.msg.MESSAGING_MIGRATIONS);
  const registry = new M.agents.AgentRegistry();
  const now = new Date().toISOString();
  for (let i = 0; i < AGENTS; i++) {
    const r = M.agents.parseAgent(
      `name = "agent-${i}"\ncapabilities = ["cap-${i % 20}"]\nsystem_prompt = "bench"\n[messaging]\nmax_concurrency = 64\n`,
      { format: 'toml' },
    );
    registry.upsert({
      definition: r.definition,
      format: 'toml',
      origin: { kind: 'api' },
      revision: 1,
      deployed_at: now,
      updated_at: now,
    });
  }
  const config = { ...M.config.loadServerConfig({ env: {}, cwd: dir }).messaging, max_queue: 10_000_000 };
  // The transactions the bus builds as it is made are its group commit's: their CPU is counted apart.
  let inTx = 0;
  const transaction = db.transaction.bind(db);
  db.transaction = ((fn: (...a: unknown[]) => unknown) => {
    const tx = transaction(fn);
    return (...a: unknown[]) => {
      const c0 = process.cpuUsage();
      try {
        return tx(...a);
      } finally {
        inTx += cpu(process.cpuUsage(c0));
      }
    };
  }) as typeof db.transaction;
  const bus = new M.msg.MessageBus({ db, registry, config });
  db.transaction = transaction;
  let delivered = 0,
    target = 0,
    all!: () => void;
  for (let i = 0; i < AGENTS; i++)
    bus.registerHandler(`agent-${i}`, () => {
      if (++delivered === target) all();
      return undefined;
    });
  bus.start();
  const run = async (n: number, off: number) => {
    const msgs = batch(M, n, off);
    delivered = 0;
    target = n;
    const fin = new Promise<void>((r) => (all = r));
    inTx = 0;
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await Promise.all(msgs.map((m) => bus.send(m, { newId: true, newConversation: true })));
    await fin;
    await bus.settled();
    return { ms: performance.now() - t0, cpu: cpu(process.cpuUsage(c0)), tx: inTx };
  };
  await run(5000, 0);
  const r = await run(N, 10000);
  await bus.close();
  db.close();
  return r;
}

function raw(M: Mods, dir: string) {
  const db = M.storage.openDatabase(dir);
  M.storage.migrate(db, M.msg.MESSAGING_MIGRATIONS);
  const sql = durableStatements(db);
  const rows = batch(M, N, 200000);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let s = 0; s < rows.length; s += 5000) {
    const chunk = rows.slice(s, s + 5000);
    const ids: number[] = [];
    db.transaction(() => {
      for (const m of chunk) ids.push(sql.accept(m as never));
    })();
    db.transaction(() => {
      for (let i = 0; i < chunk.length; i++) sql.done(chunk[i] as never, ids[i]!);
    })();
  }
  const r = { ms: performance.now() - t0, cpu: cpu(process.cpuUsage(c0)) };
  db.close();
  return r;
}

/** The bus's own row writes (`MessageStore`) in the bare loop's transactions: the store without the engine. */
function storeLoop(M: Mods, dir: string) {
  const db = M.storage.openDatabase(dir);
  M.storage.migrate(db, M.msg.MESSAGING_MIGRATIONS);
  const st = new M.store.MessageStore(db);
  const rows = batch(M, N, 600000);
  let id = 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let s = 0; s < rows.length; s += 5000) {
    const chunk = rows.slice(s, s + 5000);
    const first = id + 1;
    db.transaction(() => {
      for (const m of chunk) {
        st.insertMessage(m, m.receivers);
        st.insertDelivery(++id, m.id, m.receivers[0], m.timestamp);
      }
    })();
    db.transaction(() => {
      for (let i = 0; i < chunk.length; i++) {
        const m = chunk[i]!;
        st.ack(first + i, m.timestamp);
        st.saveConversation({
          id: m.conversation_id,
          protocol: null,
          state: 'completed',
          initiator: m.sender,
          participants: [m.sender, m.receivers[0]!],
          capability: null,
          turns: 1,
          max_turns: 100,
          created_at: m.timestamp,
          updated_at: m.timestamp,
          expires_at: null,
          reason: 'delivered',
        });
      }
    })();
  }
  const r = { ms: performance.now() - t0, cpu: cpu(process.cpuUsage(c0)) };
  db.close();
  return r;
}

async function floor(M: Mods, dir: string) {
  const db = M.storage.openDatabase(dir);
  M.storage.migrate(db, M.msg.MESSAGING_MIGRATIONS);
  let acked = 0,
    done!: () => void;
  const fin = new Promise<void>((r) => (done = r));
  const engine = minimalEngine(db, () => {});
  engine.onAcked(() => {
    if (++acked === N) done();
  });
  const rows = batch(M, N, 400000);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(rows.map((m) => engine.send(m as never)));
  await fin;
  const r = { ms: performance.now() - t0, cpu: cpu(process.cpuUsage(c0)) };
  db.close();
  return r;
}

const mods = await Promise.all(dists.map(load));
const res: Record<string, { ms: number; cpu: number; tx?: number }[]> = {};
const add = (k: string, r: { ms: number; cpu: number; tx?: number }) => (res[k] ??= []).push(r);
for (let rep = 0; rep < REPS; rep++) {
  const order = rep % 2 === 0 ? dists.map((_, i) => i) : dists.map((_, i) => dists.length - 1 - i);
  for (const i of noCaxton ? [] : order) {
    const d = mkdtempSync(join(tmpdir(), 'cax-ab-'));
    try {
      add(dists[i]!, await caxton(mods[i]!, d));
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  }
  if (!only) {
    const d = mkdtempSync(join(tmpdir(), 'cax-ab-'));
    try {
      add('raw', raw(mods[0]!, join(d, 'r')));
      add('store loop', storeLoop(mods[0]!, join(d, 's')));
      add('floor', await floor(mods[0]!, join(d, 'f')));
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  }
}
const med = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s[s.length >> 1]!;
};
for (const [k, rs] of Object.entries(res)) {
  const us = rs.map((r) => (r.cpu * 1000) / N);
  const ps = rs.map((r) => (N / r.ms) * 1000);
  console.log(
    `${k.padEnd(22)} cpu µs/msg med ${med(us).toFixed(2)} [${Math.min(...us).toFixed(2)}–${Math.max(...us).toFixed(2)}]  msg/s med ${med(ps).toFixed(0)} [${Math.min(...ps).toFixed(0)}–${Math.max(...ps).toFixed(0)}]`,
  );
}
// Per-rep ratios (each build ran next to the others in the same rep): less noisy than the medians above.
const first = res[dists[0]!];
for (const k of Object.keys(res)) {
  if (k === dists[0] || !first) continue;
  const r = res[k]!.map((x, i) => x.cpu / first[i]!.cpu);
  console.log(
    `${k.padEnd(22)} cpu ÷ ${dists[0]}: med ${med(r).toFixed(3)} [${Math.min(...r).toFixed(3)}–${Math.max(...r).toFixed(3)}]`,
  );
}
// Each build's CPU inside its group commit's transactions and outside, and against the bare loop of the same rep.
const rawRes = res.raw;
for (const k of dists) {
  const rs = res[k];
  if (!rs || rs[0]?.tx === undefined) continue;
  const tx = rs.map((r) => (r.tx! * 1000) / N);
  const out = rs.map((r) => ((r.cpu - r.tx!) * 1000) / N);
  let line = `${k.padEnd(22)} in its commits µs/msg med ${med(tx).toFixed(2)}, outside ${med(out).toFixed(2)}`;
  if (rawRes) {
    const ratio = rs.map((r, i) => rawRes[i]!.cpu / r.cpu);
    const bound = rs.map((r, i) => rawRes[i]!.cpu / r.tx!);
    line += `; bare loop ÷ bus per CPU second med ${med(ratio).toFixed(3)}, ÷ its commits alone med ${med(bound).toFixed(3)}`;
  }
  console.log(line);
}
