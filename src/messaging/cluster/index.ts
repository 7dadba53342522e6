/**
 * The messaging ports' cluster adapters: the StepStore in PostgreSQL (`PgMessageStore`, its read
 * side `PgMessageReads`), the DeliveryQueue on JetStream (`JetStreamQueue`), and `ClusterBus`, the
 * delivery engine composed with them. They import the messaging core through its entry point
 * (../index.ts); the core never imports them.
 */
export { ClusterBus, type ClusterBusOptions, type ClusterReads } from './cluster-bus.js';
export { openDeliveryStream, subjectToken, JetStreamQueue, type JetStreamQueueOptions } from './jetstream-queue.js';
export { PgMessageStore, type ConversationStep, type PgMessageStoreOptions } from './pg-message-store.js';
export { PgMessageReads, type PgMessageReadsOptions } from './pg-reads.js';
export { pullLapsed, Pulls } from './pulls.js';
export { StepGroups, type StepGroupsOptions } from './step-groups.js';
