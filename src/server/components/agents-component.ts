import { agentApi, type Lifecycle } from '../../api/index.js';
import {
  AgentRegistry,
  AgentService,
  AgentStore,
  AgentVersionStore,
  RolloutStore,
  ShadowResultStore,
  type ShadowResultsPort,
  type Rollout,
  type RolloutEventType,
} from '../../agents/index.js';
import type { ServerConfig } from '../../config/index.js';
import { llmSetup, modelCheck, providerCheck, wasmModuleResolver } from '../../execution/index.js';
import { PgEventStore, type Logger, type Metrics } from '../../observability/index.js';
import { createAgentEvents, type AgentEvents } from '../../observability/agent-event-recorder.js';
import { migrate, TURN_WRITER_WINDOW_MS, type Db } from '../../storage/index.js';
import { describeError } from '../../shared/errors.js';
import type { ClusterStateComponent } from './cluster-component.js';
import type { Component } from './component.js';

export interface AgentsComponent extends Component {
  readonly registry: AgentRegistry;
  readonly service: AgentService;
  /** This node's copy of the API agents (caxton.db). */
  readonly store: AgentStore;
  /** How many API-deployed agents were loaded from caxton.db. */
  readonly persisted: number;
  /** The agent event store (GET /api/v1/events); undefined with `[events] enabled = false`. */
  readonly events: AgentEvents | undefined;
  /** What shadow rollouts recorded (the execution component's shadow runner writes it; a cluster node's is the cluster's). */
  readonly shadowResults: ShadowResultsPort;
}

/** The registry, the service with its deploy-time checks, the API-deployed agents from caxton.db, and the agent event store. */
export function startAgents(opts: {
  config: ServerConfig;
  db: Db;
  logger: Logger;
  metrics: Metrics;
  lifecycle: Lifecycle;
  clusterState?: ClusterStateComponent | undefined;
}): AgentsComponent {
  const { config, db, logger, metrics } = opts;
  const registry = new AgentRegistry();
  const shadowResults = new ShadowResultStore(db);
  const rollouts = new RolloutStore(db);
  // Deploy-time warnings for model aliases the configured providers cannot serve.
  const store = new AgentStore(db, {
    onSkipped: (row, reason) =>
      logger.warn({ table: 'agents', row, reason }, `skipped the stored agent "${row}": ${reason}; redeploy it`),
  });
  const service = new AgentService(
    registry,
    store,
    // Providers too; the tool check joins once tool servers and MCP servers are up (components/tools-component.ts).
    {
      checkModel: modelCheck(llmSetup(config)),
      // `[wasm]` modules: found, proven and hashed into the definition at deploy and file load.
      resolveModule: wasmModuleResolver({ agentsDir: config.agents_dir, caps: config.tools.limits }),
      checks: [
        (
          (check) => (def) =>
            check(def.llm)
        )(providerCheck(llmSetup(config))),
      ],
      // Every deploy, file change and rollback kept as a version.
      versions: new AgentVersionStore(db, {
        keep: config.agents.keep_versions,
        keepRemoved: config.agents.keep_removed_agents,
      }),
      // A cluster node: API agents' versions in the cluster's PostgreSQL, one history for every node (file agents' stay here).
      ...(opts.clusterState && {
        cluster: {
          versions: opts.clusterState.versions,
          agents: opts.clusterState.agents,
          rollouts: opts.clusterState.rollouts,
          shadowResults: opts.clusterState.shadowResults,
          pins: opts.clusterState.pins,
          onError: (e: unknown) =>
            logger.warn(
              { err: describeError(e) },
              "agent versions could not be read from the cluster's PostgreSQL; this node's view of them is refreshed at the next change",
            ),
        },
      }),
      // Blue-green rollouts: running ones resume after a restart; each step is an event.
      rollouts,
      shadowResults,
      onRollout: (event, r) => recordRollout(event, r),
    },
  );
  const persisted = service.loadPersisted();
  if (opts.clusterState) carryOverPins(opts.clusterState, rollouts, logger);
  const events = openAgentEvents({
    config,
    db,
    logger,
    metrics,
    lifecycle: opts.lifecycle,
    registry,
    state: opts.clusterState,
  });
  registry.on('change', (e) => metrics.agentEvents.inc({ event: e.type }));
  const recordRollout = rolloutRecorder(events, logger);
  return {
    name: 'agents',
    registry,
    service,
    store,
    persisted,
    events,
    shadowResults: opts.clusterState?.shadowResults ?? shadowResults,
    routes: agentApi({ service, config, lifecycle: opts.lifecycle }),
    close: async () => {
      // The agent parser's worker thread (large agent bodies, ADR 0020), once no request can use it.
      await service.close();
      await events?.close();
    },
  };
}

/**
 * A node that kept pins in its SQLite (before it joined the cluster, or before pins were shared)
 * moves them to the cluster's, in the background: their conversations keep their versions on every node.
 */
function carryOverPins(state: ClusterStateComponent, rollouts: RolloutStore, logger: Logger): void {
  void state.pins.carryOver(rollouts).then(
    (moved) => {
      if (moved > 0) logger.info({ moved }, "conversation pins kept on this node moved to the cluster's PostgreSQL");
    },
    (e: unknown) =>
      logger.warn(
        { err: describeError(e) },
        "conversation pins kept on this node could not all be moved to the cluster's PostgreSQL; the rest are tried again at the next start",
      ),
  );
}

/**
 * The agent event store (src/observability/agent-events.ts): lifecycle events from the registry,
 * message.sent from the bus, message.received around the agent handler, execution.finished from
 * the executor; undefined with `[events] enabled = false`. A cluster node writes to the shared
 * store in PostgreSQL: each event once, by the node where it happened (docs/cluster.md).
 */
function openAgentEvents(opts: {
  config: ServerConfig;
  db: Db;
  logger: Logger;
  metrics: Metrics;
  lifecycle: Lifecycle;
  registry: AgentRegistry;
  state: ClusterStateComponent | undefined;
}): AgentEvents | undefined {
  const { config, db, logger, metrics, registry, state } = opts;
  const onError = (e: unknown) => logger.error({ err: e }, 'agent events could not be written');
  const onFull = () => metrics.writeQueueFull.inc({ store: 'events' });
  const events = !config.events.enabled
    ? undefined
    : state
      ? createAgentEvents({
          registry,
          shared: true,
          store: new PgEventStore({
            pool: state.pool,
            schema: state.schema,
            node: state.node,
            retentionMs: config.events.retention,
            maxRows: config.events.max_rows,
            // One INSERT per window under load, as a single node's events writer: an INSERT per
            // turn cost PostgreSQL a commit for every few events (docs/benchmarks.md, ADR 0098).
            flushMs: TURN_WRITER_WINDOW_MS,
            onError: (e) =>
              logger.warn(
                { err: describeError(e) },
                "agent events could not be written to the cluster's PostgreSQL; they wait (up to a bound) and are tried again",
              ),
            onFull,
            onDropped: (n, total) => {
              metrics.clusterRecordsDropped.inc({ store: 'events' }, n);
              logger.warn(
                { dropped: n, total },
                "agent events dropped: the cluster's PostgreSQL could not take them (caxton_cluster_records_dropped_total)",
              );
            },
          }),
        })
      : createAgentEvents({
          db,
          registry,
          migrate,
          retentionMs: config.events.retention,
          maxRows: config.events.max_rows,
          onError,
          onFull,
        });
  if (events?.store instanceof PgEventStore) {
    const store = events.store;
    metrics.sources.eventsUnwritten = () => store.unwritten;
    opts.lifecycle.lag = () => ({ agent_events: store.unwritten });
  }
  return events;
}

/** Records each rollout step in the event store (the service names its steps as the store's types) and logs it. */
function rolloutRecorder(
  events: AgentEvents | undefined,
  logger: Logger,
): (type: RolloutEventType, r: Rollout) => void {
  return (type: RolloutEventType, r: Rollout): void => {
    const live = (v: number) => `version ${v} live`;
    const share = (stage: number) =>
      `canary: version ${r.candidate_version} at ${r.plan?.stages[stage] ?? '?'} % beside version ${r.stable_version}`;
    events?.store.record({
      type,
      agent: r.agent,
      data:
        type === 'rollout.started'
          ? {
              old_state: live(r.stable_version),
              new_state: `${r.strategy}: version ${r.candidate_version} beside version ${r.stable_version}`,
              reason: r.started_by ? `deployed by ${r.started_by}` : 'deployed',
            }
          : type === 'rollout.stage_advanced'
            ? {
                old_state: share(r.stage - 1),
                new_state: share(r.stage),
                reason: `stage ${r.stage} of ${r.plan?.stages.length ?? '?'} was healthy for its hold time`,
              }
            : type === 'rollout.promoted'
              ? {
                  old_state: live(r.stable_version),
                  new_state: live(r.candidate_version),
                  reason: r.ended_by ? `promoted by ${r.ended_by}` : 'promoted',
                }
              : {
                  old_state: `${r.strategy}: version ${r.candidate_version} beside version ${r.stable_version}`,
                  new_state: live(r.stable_version),
                  reason: r.reason,
                },
    });
    logger.info(
      { agent: r.agent, event: type, stable: r.stable_version, candidate: r.candidate_version },
      `agent rollout: ${type}`,
    );
  };
}
