import { executionRecordApi } from '../../api/index.js';
import type { AgentRegistry } from '../../agents/index.js';
import type { ServerConfig } from '../../config/index.js';
import {
  ChatThreads,
  EXECUTIONS_MIGRATIONS,
  PgExecutionStore,
  SqliteExecutionStore,
  type ExecutionLog,
} from '../../execution/index.js';
import type { Logger, Metrics, SpanStore } from '../../observability/index.js';
import { describeError } from '../../shared/errors.js';
import { migrate, type Db } from '../../storage/index.js';
import type { ClusterStateComponent } from './cluster-component.js';
import type { Component } from './component.js';

export interface ExecutionRecordsComponent extends Component {
  /** Where the executor records every execution; undefined with `[executions] enabled = false`. */
  readonly records: ExecutionLog | undefined;
  /** Chat threads, read from the records: the thread routes, and what a continued invoke's model is given. */
  readonly threads: ChatThreads;
}

/**
 * The execution records (ADR 0056): the node's SQLite, or on a cluster node the shared table in
 * PostgreSQL (each execution recorded by the node that ran it, read from any); and their routes
 * with the trace reads over this node's own spans.
 */
export async function openExecutionRecords(opts: {
  config: ServerConfig;
  db: Db;
  registry: AgentRegistry;
  logger: Logger;
  metrics: Metrics;
  spans: SpanStore | undefined;
  clusterState?: ClusterStateComponent | undefined;
}): Promise<ExecutionRecordsComponent> {
  const { config, logger, metrics } = opts;
  const c = config.executions;
  const state = opts.clusterState;
  const onFull = () => metrics.writeQueueFull.inc({ store: 'executions' });
  let records: ExecutionLog | undefined;
  if (c.enabled && state) {
    await PgExecutionStore.migrate(state.pool, state.schema);
    records = new PgExecutionStore({
      pool: state.pool,
      schema: state.schema,
      node: state.node,
      retentionMs: c.retention,
      maxRows: c.max_rows,
      onError: (e) =>
        logger.warn(
          { err: describeError(e) },
          "execution records could not be written to the cluster's PostgreSQL; they wait (up to a bound) and are tried again",
        ),
      onFull,
      onDropped: (n, total) => {
        metrics.clusterRecordsDropped.inc({ store: 'executions' }, n);
        logger.warn(
          { dropped: n, total },
          "execution records dropped: the cluster's PostgreSQL could not take them (caxton_cluster_records_dropped_total)",
        );
      },
    });
  } else if (c.enabled) {
    migrate(opts.db, EXECUTIONS_MIGRATIONS);
    records = new SqliteExecutionStore({
      db: opts.db,
      retentionMs: c.retention,
      maxRows: c.max_rows,
      onError: (e) => logger.error({ err: e }, 'execution records could not be written'),
      onFull,
    });
  }
  const threads = new ChatThreads(records, opts.registry);
  return {
    name: 'executions',
    records,
    threads,
    routes: executionRecordApi({ records, spans: opts.spans, threads }),
    close: () => records?.close(),
  };
}
