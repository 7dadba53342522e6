/**
 * Rollouts of an agent's new version: blue-green, canary (`canary.ts`, `canary-runner.ts`) and
 * shadow (`shadow-results.ts`), driven by `RolloutController`; their state behind
 * `RolloutStatePort` (`rollout-state.ts`) and `ConversationPinsPort` (`rollouts.ts`) in SQLite
 * (`sqlite-rollout-state.ts`, which keeps conversation pins too; `sqlite-shadow-results.ts`) or a
 * cluster's PostgreSQL (`pg-rollout-state.ts`, `pg-pins.ts`, `pg-shadow-results.ts`); and
 * `VersionResolver`, which picks the version a request runs on. The agents core imports it through
 * this file.
 */
export {
  RolloutController,
  type RolloutEventType,
  type RollbackOutcome,
  type RolloutActionOptions,
  type RolloutOutcome,
  type RolloutStatus,
} from './rollout-controller.js';
export { AGENT_CANARY_MIGRATION, AGENT_ROLLOUT_MIGRATION, RolloutStore } from './sqlite-rollout-state.js';
export {
  type StoredPin,
  PIN_MAX_AGE_MS,
  type Rollout,
  type ShadowTarget,
  type ConversationPinsPort,
  type RolloutState,
  type RolloutStrategy,
} from './rollouts.js';
export {
  BucketWindow,
  latencyBucket,
  type NewRollout,
  type RolloutChanges,
  type RolloutStatePort,
  type StageFigures,
  type WindowFigures,
} from './rollout-state.js';
export { AGENT_SHADOW_MIGRATION, ShadowResultStore } from './sqlite-shadow-results.js';
export {
  answersAgree,
  shadowResultSchema,
  type ShadowComparison,
  type ShadowReport,
  type ShadowResult,
  type ShadowResultsPort,
} from './shadow-results.js';
export {
  canaryBucket,
  canaryPlanSchema,
  checkAnswer,
  checkName,
  holds,
  judgeStage,
  VersionWindow,
  type CanaryPlan,
  type CanaryPlanInput,
  type CanaryVerdict,
} from './canary.js';
export { CanaryRunner, type CanaryHost, type CanaryStatus } from './canary-runner.js';
export { resolveThrough, VersionResolver, type Resolution } from './version-resolver.js';
export { PgConversationPins, type PgConversationPinsOptions } from './pg-pins.js';
export { PgRolloutState, type PgRolloutStateOptions } from './pg-rollout-state.js';
export { PgShadowResults, type PgShadowResultsOptions } from './pg-shadow-results.js';
