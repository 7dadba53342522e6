/**
 * The audit trail (ADR 0023): who did what to which target, from where, with what
 * outcome. AuditStore keeps the rows (SQLite `audit_log`, optional JSON lines); auditRecorder is
 * the fastify plugin that records every state-changing request by the AUDIT_ROUTES table;
 * `AuditStore.record` takes non-HTTP events. GET /api/v1/audit (src/api/routes/audit.ts) and
 * `caxton audit` read it.
 */
export { AUDIT_ACTIONS, AUDIT_ROUTES, isStateChanging, RUN_DECISION_TOOLS, type AuditRoute } from './actions.js';
export { AnonymousRefusals, ANONYMOUS_REFUSALS_ACTION, type AnonymousRefusalsOptions } from './anonymous.js';
export { annotateAudit, auditRecorder, outcomeOf, type AuditNote, type AuditRecorderOptions } from './recorder.js';
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
} from './store.js';
