/**
 * The cluster's bus: the DeliveryQueue on JetStream (`JetStreamQueue`) and `ClusterBus`, the
 * delivery engine composed with it and the PostgreSQL StepStore (../postgres/). They import the
 * messaging core through its entry point (../index.ts) and the PostgreSQL adapter through its own;
 * neither imports them.
 */
export { ClusterBus, type ClusterBusOptions, type ClusterReads } from './cluster-bus.js';
export { openDeliveryStream } from './delivery-stream.js';
export { JetStreamQueue, type JetStreamQueueOptions } from './jetstream-queue.js';
export { subjectToken } from './delivery-wire.js';
export { pullLapsed, Pulls } from './pulls.js';
export { PLACEMENT_WAIT_MS, untilPlaced, whileForming, type PlacementOptions } from './jetstream-placement.js';
