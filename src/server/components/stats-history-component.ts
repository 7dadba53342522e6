import { statsHistoryApi } from '../../api/index.js';
import type { ExecutionLog } from '../../execution/index.js';
import {
  HISTORY_MIGRATIONS,
  IncrementalHistory,
  PgStatsHistory,
  SqliteStatsHistory,
} from '../../observability/index.js';
import { migrate, type Db } from '../../storage/index.js';
import type { ClusterStateComponent } from './cluster-component.js';
import type { Component } from './component.js';

/**
 * The Overview charts' history (GET /api/v1/stats/history): over the node's SQLite, or on a
 * cluster node over the shared PostgreSQL tables so it covers every node. Opened after the
 * message store and the execution records, whose tables it reads.
 */
export async function openStatsHistory(opts: {
  db: Db;
  records: ExecutionLog | undefined;
  clusterState?: ClusterStateComponent | undefined;
}): Promise<Component> {
  const { records, clusterState } = opts;
  const flush = async () => {
    await records?.flush();
  };
  let history;
  if (clusterState) {
    await PgStatsHistory.migrate(clusterState.pool, clusterState.schema);
    history = new PgStatsHistory(clusterState.pool, clusterState.schema, flush);
  } else {
    migrate(opts.db, HISTORY_MIGRATIONS);
    history = new SqliteStatsHistory(opts.db, () => void records?.flush());
  }
  return { name: 'stats-history', routes: statsHistoryApi({ history: new IncrementalHistory(history) }) };
}
