export { clusterConfigSchema, NODE_NAME, type ClusterConfig } from '../config/index.js';
export { connectNats, natsOptions, type NatsOptionsInput } from './nats.js';
export { Membership, type Heartbeat, type MembershipOptions, type NodeInfo } from './membership.js';
export { agentsSubject, DirectorySync, type DirectorySyncOptions } from './directory-sync.js';
export { KeySync, type KeySyncOptions } from './key-sync.js';
export { SigningKeySync, type SigningKeySyncOptions } from './signing-key-sync.js';
export { KvSignedSeen, type KvSignedSeenOptions } from './signed-seen-kv.js';
export { ToolSync, toolsSubject, type ToolSyncOptions } from './tool-sync.js';
export { DEFAULT_RECONCILE_MS, LagWindow, NoticeChannel, type NoticeChannelOptions } from './notice-channel.js';
