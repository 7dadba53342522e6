/**
 * The SQLite adapter of the messaging engine's ports (src/messaging/engine/ports.ts) — the bus of
 * a single node: its store of messages, deliveries, conversations and subscriptions in the data
 * dir's SQLite, its steps, its in-process delivery queue, its reads and its retention. The cluster's
 * adapters, over PostgreSQL and JetStream, are src/messaging/postgres/ and src/messaging/cluster/.
 */
export { MessageBus, type BusOptions } from './sqlite-bus.js';
export { DispatchQueue, type DispatchQueueOptions } from './dispatch-queue.js';
export { SqliteSteps } from './sqlite-steps.js';
export { MessageReads, type ReadSources } from './sqlite-reads.js';
export { MessageStore, MESSAGING_MIGRATIONS } from './sqlite-message-store.js';
export { messagingRetentionRules, type MessagingRetention } from './sqlite-retention.js';
