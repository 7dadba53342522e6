import { auditRegistryCalls, PgToolAudit, ToolAuditStore, type ToolAuditLog } from '../../audit/index.js';
import type { ServerConfig } from '../../config/index.js';
import type { Logger, Metrics } from '../../observability/index.js';
import { describeError } from '../../shared/errors.js';
import type { Db } from '../../storage/index.js';
import { AuditWatch, type ToolRegistry } from '../../tools/index.js';
import type { ClusterStateComponent } from './cluster-component.js';
import type { Component } from './component.js';

export interface ToolAuditComponent extends Component {
  /** The audit log of tool calls (SQLite `tool_audit`; a cluster node's is the shared one in PostgreSQL): WASM and MCP tool calls are recorded here. */
  readonly store: ToolAuditLog;
  /** The sink MCP calls are recorded through; the catalogue watches it for their outcome. */
  readonly watch: AuditWatch;
}

/**
 * The tool-call audit log (src/audit, ADR 0144) shared by every tool: tool servers, MCP servers,
 * host tools, and, through the host registry's hooks installed here, built-ins, memory tools and
 * the calls an allowlist or permission rule refuses; on a cluster node, the cluster's (each call
 * recorded by the node that ran it).
 */
export function openToolAudit(opts: {
  config: ServerConfig;
  /** The host tool registry (`executor.hostTools`): it reports the calls no tool records itself. */
  tools: ToolRegistry;
  db: Db;
  logger: Logger;
  metrics: Metrics;
  clusterState?: ClusterStateComponent | undefined;
}): ToolAuditComponent {
  const { config, logger } = opts;
  const state = opts.clusterState;
  const store: ToolAuditLog = state
    ? new PgToolAudit({
        pool: state.pool,
        schema: state.schema,
        node: state.node,
        retentionMs: config.tool_audit.retention,
        maxRows: config.tool_audit.max_rows,
        onError: (e) =>
          logger.warn(
            { err: describeError(e) },
            "tool audit records could not be written to the cluster's PostgreSQL; they wait (up to a bound) and are tried again",
          ),
        onFull: () => opts.metrics.writeQueueFull.inc({ store: 'tool_audit' }),
        onDropped: (n, total) => {
          opts.metrics.clusterRecordsDropped.inc({ store: 'tool_audit' }, n);
          logger.warn(
            { dropped: n, total },
            "tool audit records dropped: the cluster's PostgreSQL could not take them (caxton_cluster_records_dropped_total)",
          );
        },
      })
    : new ToolAuditStore(opts.db, {
        onError: (e) => logger.error({ err: e }, 'tool audit records could not be written'),
        retentionMs: config.tool_audit.retention,
        maxRows: config.tool_audit.max_rows,
        onFull: () => opts.metrics.writeQueueFull.inc({ store: 'tool_audit' }),
      });
  auditRegistryCalls(opts.tools, store);
  // The catalogue (components/tools-component.ts) watches this sink for the outcome of MCP calls made through the API.
  return { name: 'tool audit', store, watch: new AuditWatch(store), close: () => store.close() };
}
