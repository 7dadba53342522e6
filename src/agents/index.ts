export * from './definition.js';
export { parseAgent, detectFormat, type ParseOptions, type ParseResult } from './parse.js';
export { agentDocumentSchema, agentNameSchema } from './agent-schema.js';
export { checkStoredDefinition } from './stored-shape.js';
export {
  AgentRegistry,
  type DeployedAgent,
  type AgentOrigin,
  type RegistryEvent,
  type ListOptions,
} from './agent-registry.js';
export { AgentStore, AGENT_MIGRATIONS, type StoredAgent } from './sqlite-agents.js';
export { AgentService, type AgentServiceOptions, type ClusterAgentsOptions } from './agent-service.js';
export {
  AgentChecks,
  DEPLOY_CHECK_CODES,
  type AgentCheck,
  type AgentSource,
  type AgentResolver,
} from './definition-checks.js';
export { AgentFiles, duplicateNameIssue, type FileStatus } from './agent-files.js';
export { Deployer, type DeployInput, type DeployOutcome, type SharedAgentsPort } from './deployer.js';
export type { DeployActor } from './deploy-actor.js';
export {
  AgentVersionStore,
  definitionHash,
  diffVersions,
  PgAgentVersionStore,
  VersionHistory,
  versionDetail,
  versionSummary,
  versionValues,
  VERSION_SUMMARY_COLUMNS,
  type AgentVersion,
  type AgentVersionDetail,
  type AgentVersionsPort,
  type NewVersion,
  type PgAgentVersionStoreOptions,
  type StoredVersionRow,
  type VersionDiff,
  type VersionHow,
  type VersionRow,
} from './versions/index.js';
export {
  RolloutController,
  type RolloutEventType,
  type RollbackOutcome,
  type RolloutActionOptions,
  type RolloutOutcome,
  type RolloutStatus,
  RolloutStore,
  type StoredPin,
  PIN_MAX_AGE_MS,
  type Rollout,
  type ShadowTarget,
  type ConversationPinsPort,
  type RolloutState,
  type RolloutStrategy,
  BucketWindow,
  latencyBucket,
  type NewRollout,
  type RolloutChanges,
  type RolloutStatePort,
  type StageFigures,
  type WindowFigures,
  ShadowResultStore,
  answersAgree,
  shadowResultSchema,
  type ShadowComparison,
  type ShadowReport,
  type ShadowResult,
  type ShadowResultsPort,
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
  CanaryRunner,
  type CanaryHost,
  type CanaryStatus,
  PgConversationPins,
  type PgConversationPinsOptions,
  PgRolloutState,
  type PgRolloutStateOptions,
  PgShadowResults,
  type PgShadowResultsOptions,
} from './rollouts/index.js';
export { AgentDirectoryWatcher, agentFilesIn, isAgentFile, notAnAgent, type SkippedFile } from './watcher.js';
export {
  CLAUDE_TOOL_MAP,
  CLAUDE_MODEL_ALIASES,
  mapClaudeTool,
  listsNoTools,
  unlistedToolsOf,
  UNLISTED_TOOLS_KEY,
} from './claude.js';
export { PgAgentDirectory, type AgentHead, type AgentRow, type PgAgentDirectoryOptions } from './pg-agents.js';
