/**
 * The audit trail (ADR 0023): who did what to which target, from where, with what
 * outcome. AuditStore keeps the rows (SQLite `audit_log`, optional JSON lines); auditRecorder is
 * the fastify plugin that records every state-changing request by the AUDIT_ROUTES table;
 * `AuditStore.record` takes non-HTTP events. GET /api/v1/audit (src/api/routes/audit-routes.ts) and
 * `caxton audit` read it.
 *
 * The tool audit (ADR 0144): one record per tool call, whoever runs it, in SQLite `tool_audit`
 * (ToolAuditStore) or a cluster's PostgreSQL (PgToolAudit); auditRegistryCalls has the host
 * registry report the calls no tool server records. GET /api/v1/tools/audit and `caxton tool
 * audit` read it. Both logs stand on one SQLite log-table base (SqliteLogTable).
 */
export { AUDIT_ACTIONS, AUDIT_ROUTES, isStateChanging, RUN_DECISION_TOOLS, type AuditRoute } from './actions.js';
export { AnonymousRefusals, ANONYMOUS_REFUSALS_ACTION, type AnonymousRefusalsOptions } from './anonymous.js';
export {
  annotateAudit,
  auditRecorder,
  outcomeOf,
  type AuditNote,
  type AuditRecorderOptions,
} from './audit-recorder.js';
export {
  AUDIT_MIGRATIONS,
  AUDIT_OUTCOMES,
  AuditStore,
  MAX_DETAILS_BYTES,
  MemoryAuditSink,
  type AuditEntry,
  type AuditOutcome,
  type AuditQuery,
  type AuditRecord,
  type AuditSink,
  type AuditStoreOptions,
} from './audit-store.js';
export { SqliteLogTable, type SqliteLogTableOptions } from './log-table.js';
export {
  CALL_OUTCOMES,
  digestArgs,
  MemoryToolAuditSink,
  type CallOutcome,
  type StoredAuditRecord,
  type ToolAuditLog,
  type ToolAuditQuery,
  type ToolAuditReads,
  type ToolAuditRecord,
  type ToolAuditSink,
} from './tool-audit.js';
export { ToolAuditStore, TOOLS_MIGRATIONS } from './sqlite-tool-audit.js';
export { PgToolAudit, type PgToolAuditOptions } from './pg-tool-audit.js';
export { auditRegistryCalls, type AuditedRegistry, type RegistryCall, type ToolCallIdentity } from './tool-calls.js';
export { auditServerOf, BUILTIN_GROUP, HOST_GROUP } from './tool-groups.js';
