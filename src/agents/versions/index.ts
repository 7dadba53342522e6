/**
 * Agent versions: every deploy kept as an immutable version (`sqlite-versions.ts`, SQLite, and
 * `pg-versions.ts`, a cluster's PostgreSQL, behind `AgentVersionsPort` in `versions.ts`), the history the service
 * reads them through (`version-history.ts`) and the difference between two (`diff.ts`). The agents
 * core and the rollouts folder import it through this file.
 */
export { AGENT_VERSION_MIGRATION, AGENT_VERSION_REMOVALS_MIGRATION, AgentVersionStore } from './sqlite-versions.js';
export {
  definitionHash,
  versionDetail,
  versionSummary,
  versionValues,
  VERSION_SUMMARY_COLUMNS,
  type AgentVersion,
  type AgentVersionDetail,
  type AgentVersionsPort,
  type NewVersion,
  type StoredVersionRow,
  type VersionHow,
  type VersionRow,
} from './versions.js';
export { VersionHistory, apiAgent, asDeployed } from './version-history.js';
export { VersionLabels } from './version-labels.js';
export { diffVersions, type VersionDiff } from './diff.js';
export { PgAgentVersionStore, type PgAgentVersionStoreOptions } from './pg-versions.js';
