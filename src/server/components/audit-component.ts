import { dirname, resolve } from 'node:path';
import { auditApi } from '../../api/index.js';
import { AnonymousRefusals, AuditStore } from '../../audit/index.js';
import type { ServerConfig } from '../../config/index.js';
import type { Logger, Metrics } from '../../observability/index.js';
import type { Db } from '../../storage/index.js';
import type { Component } from './component.js';

export interface AuditComponent extends Component {
  /** The audit trail (SQLite `audit_log`); undefined with `[audit] enabled = false`. */
  readonly store: AuditStore | undefined;
  /** Where refusals of callers without a principal are counted, for listeners outside the API's (A2A gRPC). */
  readonly anonymous: AnonymousRefusals | undefined;
}

/**
 * The audit trail (src/audit, ADR 0023): every state-changing request recorded by a root
 * onResponse hook (auditRecorder, by the AUDIT_ROUTES table) in SQLite `audit_log` and, with
 * [audit] jsonl, a JSON-lines file (relative to caxton.toml); GET /api/v1/audit reads it.
 * Throws, naming the file, when [audit] jsonl cannot be opened.
 */
export function openAudit(opts: {
  config: ServerConfig;
  db: Db;
  logger: Logger;
  metrics?: Pick<Metrics, 'writeQueueFull'>;
}): AuditComponent {
  const { config } = opts;
  const baseDir = config.source.file ? dirname(config.source.file) : process.cwd();
  const store = config.audit.enabled
    ? new AuditStore(opts.db, {
        onError: (e) => opts.logger.error({ err: e }, 'audit records could not be written'),
        retentionMs: config.audit.retention,
        maxRows: config.audit.max_rows,
        onFull: () => opts.metrics?.writeQueueFull.inc({ store: 'audit' }),
        ...(config.audit.jsonl !== undefined && { jsonl: resolve(baseDir, config.audit.jsonl) }),
      })
    : undefined;
  const anonymous =
    store &&
    new AnonymousRefusals(store, {
      intervalMs: config.audit.anonymous_interval,
      maxSources: config.audit.anonymous_sources,
    });
  // Closed after the HTTP listener (started later, so closed earlier): the last responses' rows are in.
  return {
    name: 'audit',
    store,
    anonymous,
    routes: auditApi({ ...(store && { store }), ...(anonymous && { anonymous }) }),
    close: () => {
      anonymous?.close();
      return store?.close();
    },
  };
}
