export { clusterConfigSchema, NODE_NAME, type ClusterConfig } from '../config/index.js';
export { connectNats, natsOptions, type NatsOptionsInput } from './nats.js';
export { Membership, type Heartbeat, type MembershipOptions, type NodeInfo } from './membership.js';
