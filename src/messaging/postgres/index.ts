/**
 * The messaging ports' PostgreSQL adapter: the StepStore (`PgMessageStore`, its sweeps and its
 * group commit `StepGroups`) and its read side (`PgMessageReads`). It imports the messaging core
 * through its entry point (../index.ts); the core never imports it. The cluster's bus
 * (../cluster/) composes it with the JetStream queue.
 */
export { PgMessageStore, type ConversationStep, type PgMessageStoreOptions } from './pg-message-store.js';
export type { TakeRow } from './pg-message-rows.js';
export type { KeptHandOut } from './pg-conversation-step.js';
export { PgMessageReads, type PgMessageReadsOptions } from './pg-reads.js';
export { MESSAGE_MIGRATIONS, type ConversationRow } from './pg-message-tables.js';
export { StepGroups, type StepGroupsOptions } from './step-groups.js';
