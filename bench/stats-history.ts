/**
 * What the Overview's history costs (src/observability/history*.ts), on the node's SQLite:
 *  - on the write path, the one thing it adds: the partial index on finished deliveries, paid
 *    when a delivery leaves `pending`. Two databases alike but for the index, the same updates
 *    (pending → done, 100 per transaction as the engine's group commit writes them), alternated
 *    rounds with / without;
 *  - the read: GET /api/v1/stats/history's two queries for each range over 100,000 execution
 *    records and 200,000 finished deliveries spread over seven days, beside a page of
 *    GET /api/v1/executions on the same store (the baseline a console poll already pays).
 */
import { entryOf, EXECUTIONS_MIGRATIONS, SqliteExecutionStore } from '../src/execution/index.js';
import { MESSAGING_MIGRATIONS } from '../src/messaging/sqlite/index.js';
import {
  HISTORY_MIGRATIONS,
  HISTORY_RANGES,
  IncrementalHistory,
  SqliteStatsHistory,
  type HistoryRange,
} from '../src/observability/index.js';
import { migrate, openDatabase, type Db } from '../src/storage/index.js';
import { note } from './lib/progress.js';
import type { Row, Suite, SuiteReport } from './lib/report.js';
import { fmt } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';

const env = (name: string, def: number) => {
  const v = process.env[name];
  return v === undefined || v === '' ? def : Number(v);
};
const ROUNDS = env('BENCH_ROUNDS', 5);
const UPDATES = env('BENCH_HISTORY_UPDATES', 20_000);
const EXECUTIONS = env('BENCH_HISTORY_EXECUTIONS', 100_000);
const DELIVERIES = env('BENCH_HISTORY_DELIVERIES', 200_000);
const WEEK = 7 * 24 * 3_600_000;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** µs per delivery update pending → done, `UPDATES` of them in transactions of 100. */
function updateCost(db: Db, round: number): number {
  const base = round * UPDATES;
  const ins = db.prepare(
    `INSERT INTO deliveries (message_id, receiver, state, updated_at) VALUES (?, 'r', 'pending', ?)`,
  );
  const ids: number[] = [];
  db.transaction(() => {
    for (let i = 0; i < UPDATES; i++)
      ids.push(Number(ins.run(`m${base + i}`, new Date().toISOString()).lastInsertRowid));
  })();
  const upd = db.prepare(`UPDATE deliveries SET state = 'done', attempts = attempts + 1, updated_at = ? WHERE id = ?`);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < ids.length; i += 100)
    db.transaction(() => {
      const now = new Date().toISOString();
      for (const id of ids.slice(i, i + 100)) upd.run(now, id);
    })();
  return Number(process.hrtime.bigint() - t0) / 1000 / UPDATES;
}

export const statsHistorySuite: Suite = {
  name: 'stats-history',
  description: "The Overview history: the finished-deliveries index on the write path, and the history's queries",
  async run(): Promise<SuiteReport> {
    const dir = tempDir('caxton-bench-history-');
    try {
      // Write path: with / without the index, alternated.
      const withIdx = openDatabase(dir.path, 'with.db');
      const without = openDatabase(dir.path, 'without.db');
      for (const db of [withIdx, without]) migrate(db, MESSAGING_MIGRATIONS);
      migrate(withIdx, HISTORY_MIGRATIONS);
      const cost: { with: number[]; without: number[] } = { with: [], without: [] };
      for (let r = 0; r < ROUNDS; r++) {
        note(`stats-history: update round ${r + 1}/${ROUNDS}`);
        cost.with.push(updateCost(withIdx, r));
        cost.without.push(updateCost(without, r));
      }
      withIdx.close();
      without.close();

      // Read path.
      const db = openDatabase(dir.path, 'read.db');
      migrate(db, MESSAGING_MIGRATIONS);
      migrate(db, EXECUTIONS_MIGRATIONS);
      migrate(db, HISTORY_MIGRATIONS);
      const now = Date.now();
      note(`stats-history: writing ${EXECUTIONS} records and ${DELIVERIES} deliveries`);
      const insE = db.prepare(
        `INSERT INTO executions (execution_id, ts, ended, agent, version, status, duration_ms, input_tokens, output_tokens, detail)
         VALUES (?, ?, ?, 'a', '1', ?, ?, 20, 8, ?)`,
      );
      // A stored record's detail, as the recorder writes it (the list reads its parts).
      const detail = entryOf({
        id: 'x',
        agent: 'a',
        version: '1',
        shadow: false,
        started: now,
        duration_ms: 1,
        request: { request: 'r' },
        error: new Error('e'),
      }).detail;
      const insD = db.prepare(`INSERT INTO deliveries (message_id, receiver, state, updated_at) VALUES (?, 'r', ?, ?)`);
      db.transaction(() => {
        for (let i = 0; i < EXECUTIONS; i++) {
          const ts = now - WEEK + Math.floor((i / EXECUTIONS) * WEEK);
          insE.run(`e${i}`, ts, ts + 5, i % 50 === 0 ? 'error' : 'ok', 1 + (i % 97), detail);
        }
        for (let i = 0; i < DELIVERIES; i++)
          insD.run(
            `m${i}`,
            i % 100 === 0 ? 'dead' : 'done',
            new Date(now - WEEK + (i / DELIVERIES) * WEEK).toISOString(),
          );
      })();
      const store = new SqliteExecutionStore({ db, retentionMs: 2 * WEEK, maxRows: 10 * EXECUTIONS });
      const history = new SqliteStatsHistory(db);
      const time = async (fn: () => Promise<unknown>) => {
        const t0 = process.hrtime.bigint();
        await fn();
        return Number(process.hrtime.bigint() - t0) / 1e6;
      };
      const reads: Record<string, number[]> = { page: [] };
      for (let r = 0; r < ROUNDS; r++) {
        reads.page!.push(await time(() => store.list({ limit: 50 })));
        for (const range of Object.keys(HISTORY_RANGES) as HistoryRange[])
          (reads[range] ??= []).push(await time(() => history.history(range, now)));
      }
      // What a poll costs the route: IncrementalHistory after its first read, one bucket later.
      const incremental: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        const inc = new IncrementalHistory(history);
        await inc.history('7d', now);
        incremental.push(await time(() => inc.history('7d', now + HISTORY_RANGES['7d'].bucket)));
      }
      store.close();
      db.close();

      const rows: Row[] = [
        {
          metric: 'delivery pending → done, µs per update (median of rounds)',
          value: `${fmt(median(cost.with), 2)} with the finished-deliveries index`,
          baseline: `${fmt(median(cost.without), 2)} without (same run, alternated)`,
        },
        ...(Object.keys(HISTORY_RANGES) as HistoryRange[]).map((range): Row => ({
          metric: `GET /stats/history?range=${range} queries, ms (median), ${EXECUTIONS} records + ${DELIVERIES} deliveries over 7 days`,
          value: fmt(median(reads[range]!), 1),
          baseline: `${fmt(median(reads.page!), 2)} ms a page of GET /executions (same store)`,
        })),
        {
          metric: 'the same, range=7d, a later poll (IncrementalHistory: the newest two buckets read), ms (median)',
          value: fmt(median(incremental), 1),
          baseline: `${fmt(median(reads['7d']!), 1)} ms read in full (above)`,
        },
      ];
      return {
        rows,
        notes: [`${UPDATES} updates per round, 100 per transaction; ${ROUNDS} rounds.`],
        raw: { cost, reads, incremental },
      };
    } finally {
      dir.remove();
    }
  },
};
