export { DurableRuns, type RunContext, type RunHost, type RunNotice } from './durable.js';
export {
  approvalRulesFor,
  awaitingApproval,
  needsApproval,
  deniedResult,
  type ApprovalRule,
  type ApprovalConfigRule,
} from './approval.js';
export {
  approvalsOf,
  callKey,
  idempotencyRunKey,
  interruptedResult,
  messageRunKey,
  replayOf,
  RUN_ORIGINS,
  RUN_STATUSES,
  type ApprovalView,
  type OpenedRun,
  type PendingApproval,
  type RecordedReply,
  type ReplayedCall,
  type RunJournal,
  type RunOrigin,
  type RunQuery,
  type RunRecord,
  type RunReplay,
  type RunStart,
  type RunStatus,
  type RunStep,
  type RunWithSteps,
  type Takeover,
} from './run-model.js';
export { SqliteRunJournal, RUNS_MIGRATIONS, type SqliteRunJournalOptions } from './sqlite-runs.js';
export { PgRunJournal, RUN_LEASE_MS, type PgRunJournalOptions } from './pg-runs.js';
export { assertRunPermission, decideAs, listRunsAs, readRunAs, runVisibleTo } from './run-access.js';
export { approvalViews, runSummaryView, type RunSummaryView } from './view.js';
