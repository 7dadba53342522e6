export { clusterConfigSchema, NODE_NAME, type ClusterConfig } from '../config/index.js';
export { connectNats, natsOptions, type NatsOptionsInput } from './nats.js';
export { Membership, type Heartbeat, type MembershipOptions, type NodeInfo } from './membership.js';
export { openJetStreamQueue, jetstreamQueueOptions, subjectToken, JetStreamDeliveryQueue, type JetStreamQueueOptions } from './jetstream-queue.js';
export { DirectorySync, type DirectorySyncOptions } from './directory-sync.js';
export { KeySync, type KeySyncOptions } from './key-sync.js';
export { PgMessageStore, type ConversationStep, type PgMessageStoreOptions } from './pg-message-store.js';
export { ClusterBus, type ClusterBusOptions, type ClusterReads } from './cluster-bus.js';
export { PgMessageReads, type PgMessageReadsOptions } from './pg-reads.js';
