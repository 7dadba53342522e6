import pg from 'pg';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  PgAgentDirectory,
  PgAgentVersionStore,
  PgConversationPins,
  PgRolloutState,
  PgShadowResults,
  type AgentRegistry,
} from '../../agents/index.js';
import type { ClusterView, Lifecycle } from '../../api/index.js';
import type { ApiKeyStore, SigningKeyStore } from '../../auth/index.js';
import {
  agentsSubject,
  connectNats,
  DirectorySync,
  KeySync,
  KvSignedSeen,
  Membership,
  SigningKeySync,
} from '../../cluster/index.js';
import { ClusterBus, type ClusterBusOptions } from '../../messaging/cluster/index.js';
import { PgMessageReads, PgMessageStore } from '../../messaging/postgres/index.js';
import { clusterStateConfig, type ClusterConfig } from '../../config/index.js';
import { PgEventStore, relayEvents, type Logger } from '../../observability/index.js';
import type { EventLog } from '../../observability/agent-events.js';
import { CaxtonError, describeError } from '../../shared/errors.js';
import { guardConnections } from '../../storage/pg/index.js';
import { PgTeamStore } from '../../tools/todo/pg-team-store.js';
import { PgToolAudit } from '../../audit/index.js';
import { PgToolPackageStore } from '../../tools/servers/pg-package-store.js';
import type { Component } from './component.js';

/** The cluster's shared state in PostgreSQL (`[cluster.state]`): the pool every shared store uses. */
export interface ClusterStateComponent extends Component {
  readonly pool: pg.Pool;
  /** `[cluster.state] schema`. */
  readonly schema: string;
  /** `[cluster] node`: what the shared logs record as the writing node. */
  readonly node: string;
  readonly store: PgMessageStore;
  /** Tool packages deployed through any node. */
  readonly packages: PgToolPackageStore;
  /** The version history of API agents, one numbering per agent across the nodes. */
  readonly versions: PgAgentVersionStore;
  /** The agents deployed through the API of any node (the directory's store of record). */
  readonly agents: PgAgentDirectory;
  /** The rollouts and their canary figures, read and changed by every node (ADR 0054). */
  readonly rollouts: PgRolloutState;
  /** What shadow rollouts compared, every node's comparisons in one report. */
  readonly shadowResults: PgShadowResults;
  /** Which version of an agent each conversation runs on, for every node (agents that have had a rollout). */
  readonly pins: PgConversationPins;
  /** Agent teams and their task lists, so a teammate on any node works on its team's list. */
  readonly teams: PgTeamStore;
}

/**
 * A cluster node's PostgreSQL (`[cluster.state]`, required: a node never runs a cluster on its
 * own SQLite): the pool, and every shared table migrated (messages, tool packages, API agents, their versions, rollouts, shadow comparisons and conversation pins, agent events, tool audit, agent teams).
 * Opened before the components whose stores live there (agents' event store, the tool audit);
 * closed after them, so their last batches are written.
 */
/**
 * A node's statements are short and many, each planned anew (a group's text holds its ids):
 * PostgreSQL's JIT compiles one whenever its estimated cost passes jit_above_cost, which stale
 * statistics after a burst made the acknowledgements' pending count do, at 10–30 times the
 * statement's own run time (ADR 0075). Set per session, not as a startup
 * option, which a pooler such as PgBouncer may refuse; a server that does not know the setting
 * refuses the SET, and nothing else changes.
 */
async function noJit(client: pg.ClientBase): Promise<void> {
  await client.query('SET jit = off').catch(() => undefined);
}

export async function openClusterState(opts: {
  cluster: ClusterConfig;
  logger: Logger;
  keepVersions?: number;
  keepRemovedAgents?: number;
}): Promise<ClusterStateComponent> {
  const { cluster, logger } = opts;
  const state = clusterStateConfig(cluster);
  const pool = new pg.Pool({
    connectionString: state.url,
    max: state.pool_size,
    application_name: `caxton-${cluster.node}`,
    connectionTimeoutMillis: 5000,
    // A session closed when idle for pg's default 10 s is forked again at the next burst, and a new
    // backend parses and plans cold: in the cluster bench that exited-session time was a large share
    // of PostgreSQL's CPU per message. Sessions stay for 5 minutes of quiet instead.
    idleTimeoutMillis: 300_000,
    // Awaited by the pool before the session serves its first statement (pool.on('connect') is
    // not, and a statement sent beside it is queued behind it in pg's deprecated way).
    onConnect: (client) => noJit(client),
  });
  pool.on('error', (err) =>
    logger.warn(
      { err: describeError(err) },
      'cluster: an idle PostgreSQL connection failed; it is replaced on next use',
    ),
  );
  // Why: pg-pool leaves a connection without an `error` listener for a moment, and a PostgreSQL
  // restart then ended the node's process (see guardConnections).
  guardConnections(pool);
  let store: PgMessageStore;
  let packages: PgToolPackageStore;
  let versions: PgAgentVersionStore;
  let agents: PgAgentDirectory;
  let rollouts: PgRolloutState;
  let shadowResults: PgShadowResults;
  let pins: PgConversationPins;
  let teams: PgTeamStore;
  try {
    store = await PgMessageStore.open({
      pool,
      schema: state.schema,
      groups: { concurrent: state.step_transactions, lingerMs: state.step_linger },
    });
    packages = await PgToolPackageStore.open({ pool, schema: state.schema });
    await PgEventStore.migrate(pool, state.schema);
    await PgToolAudit.migrate(pool, state.schema);
    teams = await PgTeamStore.open({ pool, schema: state.schema });
    agents = await PgAgentDirectory.open({ pool, schema: state.schema, node: cluster.node });
    rollouts = await PgRolloutState.open({
      pool,
      schema: state.schema,
      onError: (e) =>
        logger.warn(
          { err: describeError(e) },
          "canary figures could not be added to the cluster's PostgreSQL; they are kept and tried again",
        ),
    });
    shadowResults = await PgShadowResults.open({
      pool,
      schema: state.schema,
      onError: (e) =>
        logger.warn(
          { err: describeError(e) },
          "a shadow comparison could not be written to the cluster's PostgreSQL; the rollout's report misses it",
        ),
    });
    pins = await PgConversationPins.open({
      pool,
      schema: state.schema,
      onError: (e, what) =>
        logger.warn(
          { err: describeError(e) },
          what === 'read'
            ? "a conversation's pinned agent version could not be read from the cluster's PostgreSQL; the version was drawn as for a new conversation"
            : "a conversation's pinned agent version could not be written to the cluster's PostgreSQL; it holds on this node only",
        ),
    });
    versions = await PgAgentVersionStore.open({
      pool,
      schema: state.schema,
      directory: agents,
      ...(opts.keepVersions !== undefined && { keep: opts.keepVersions }),
      ...(opts.keepRemovedAgents !== undefined && { keepRemoved: opts.keepRemovedAgents }),
    });
  } catch (e) {
    await pool.end().catch(() => {});
    throw new CaxtonError(
      'invalid_config',
      `refusing to start: the cluster's shared state ([cluster.state], schema "${state.schema}") could not be opened: ${describeError(e)}`,
      {
        field: 'cluster.state',
      },
    );
  }
  return {
    name: 'cluster state',
    pool,
    schema: state.schema,
    node: cluster.node,
    store,
    packages,
    versions,
    agents,
    rollouts,
    shadowResults,
    pins,
    teams,
    close: async () => {
      // The canary figures and shadow counts still waiting, before the pool goes.
      await rollouts.close().catch(() => {});
      await shadowResults.close().catch(() => {});
      await pool.end().catch(() => {});
    },
  };
}

export interface ClusterComponent extends Component {
  readonly cluster: ClusterConfig;
  readonly nc: NatsConnection;
  readonly store: PgMessageStore;
  readonly reads: PgMessageReads;
  /** `[cluster.state] schema`. */
  readonly schema: string;
  /** Tool packages deployed through any node (the tools component loads and follows them). */
  readonly packages: PgToolPackageStore;
  /** The node's bus (PostgreSQL + JetStream), made here so that a single node never loads NATS or pg. */
  bus(opts: Omit<ClusterBusOptions, 'store' | 'reads' | 'nc' | 'events' | 'cluster' | 'peers'>): ClusterBus;
  /** Starts the heartbeats once the bus can report its load (membership needs it). */
  join(load: () => Record<string, number>): Promise<ClusterView>;
  /**
   * Shares this node's public message signing keys with the other nodes and theirs with it
   * (`[messaging] signing`, ADR 0059), started in the background; `lookup` reads one key another
   * node made, for a delivery that arrived before it.
   */
  shareSigningKeys(keys: SigningKeyStore): { lookup(id: string): Promise<boolean>; stop(): Promise<void> };
  /** Which receiver has had which signed message, shared by every node (ADR 0114), kept `ttlMs`. */
  signedSeen(ttlMs: number): KvSignedSeen;
}

/**
 * A node of a cluster (`[cluster]`): its NATS connection, the directory propagation of
 * API agents, API keys shared with the other nodes (ADR 0044), the live agent
 * events of the other nodes (relayEvents, when the event store is the shared one), the table of tool packages
 * (followed by the tools component, src/cluster/tool-sync.ts), and, once `join` runs, its
 * heartbeats. Its state is `state` (openClusterState). Contributes the readiness checks `nats` and
 * `cluster-postgresql`: /ready is 503 on a node that lost either.
 */
export async function startCluster(opts: {
  cluster: ClusterConfig;
  state: ClusterStateComponent;
  registry: AgentRegistry;
  /** The text of this node's copy of an API agent (written to PostgreSQL if the cluster has never seen it). */
  sourceOf?: (name: string) => string | undefined;
  keys: ApiKeyStore;
  lifecycle: Lifecycle;
  logger: Logger;
  events?: EventLog | undefined;
}): Promise<ClusterComponent> {
  const { cluster, logger } = opts;
  const { store, packages, schema } = opts.state;
  const { nc, events } = await connectBoth(cluster);
  let sync: DirectorySync | undefined;
  let keySync: KeySync | undefined;
  let membership: Membership | undefined;
  // The shared event store's live events, to and from the other nodes (docs/cluster.md).
  const stopRelay =
    opts.events instanceof PgEventStore ? relayNodeEvents(events, cluster, opts.events, logger) : undefined;
  const close = async () => {
    await membership?.stop().catch(() => {});
    await keySync?.stop().catch(() => {});
    await sync?.stop().catch(() => {});
    stopRelay?.();
    await events.drain().catch(() => events.close());
    await nc.drain().catch(() => nc.close());
  };
  if (cluster.agents_bucket !== undefined)
    logger.warn(
      { field: 'cluster.agents_bucket' },
      "[cluster] agents_bucket is no longer used (API agents live in the cluster's PostgreSQL, docs/cluster.md); remove it from caxton.toml",
    );
  try {
    sync = await DirectorySync.start({
      nc,
      subject: agentsSubject(schema),
      node: cluster.node,
      directory: opts.state.agents,
      registry: opts.registry,
      ...(opts.sourceOf && { sourceOf: opts.sourceOf }),
      log: logger,
    });
    keySync = await KeySync.start({
      nc,
      bucket: cluster.keys_bucket,
      node: cluster.node,
      replicas: cluster.replicas ?? 1,
      keys: opts.keys,
      log: logger,
    });
  } catch (e) {
    await close();
    throw e;
  }
  const reads = new PgMessageReads({ store });
  return {
    name: 'cluster',
    cluster,
    nc,
    store,
    reads,
    schema,
    packages,
    bus: (o) => new ClusterBus({ ...o, store, reads, nc, events, cluster, peers: () => membership?.recent() ?? [] }),
    shareSigningKeys: (keys) => shareSigningKeys(nc, cluster, logger, keys),
    signedSeen: (ttlMs) =>
      new KvSignedSeen({
        nc,
        bucket: `${cluster.keys_bucket}_seen`,
        ttlMs,
        replicas: cluster.replicas ?? 1,
        log: logger,
      }),
    readiness: [
      {
        name: 'nats',
        check: async () => {
          if (nc.isClosed() || nc.isDraining()) throw new Error('the NATS connection is closed');
          // A round trip to the server: a connection that is reconnecting does not answer.
          await nc.flush();
          if (membership && !membership.healthy()) throw new Error('heartbeats are not reaching JetStream');
        },
      },
      { name: 'cluster-postgresql', check: () => store.ping() },
    ],
    join: async (load) => {
      // The directory lag rides along: GET /api/v1/cluster shows each node's.
      membership = await startMembership(nc, cluster, opts.lifecycle.version, logger, () => {
        const lag = sync?.lag();
        return { ...load(), ...(lag?.p99_ms != null && { directory_lag_p99_ms: lag.p99_ms }) };
      });
      const m = membership;
      return { clustered: true, node: cluster.node, nodes: () => m.nodes() };
    },
    close,
  };
}

/** The node's NATS connection, and a second one for the bus and live events that hears only the other nodes. */
async function connectBoth(cluster: ClusterConfig): Promise<{ nc: NatsConnection; events: NatsConnection }> {
  let nc: NatsConnection;
  /** Bus and live events to and from the other nodes: a connection of its own that hears only theirs. */
  let events: NatsConnection;
  try {
    nc = await connectNats({ cluster });
    events = await connectNats({ cluster, noEcho: true }).catch(async (e: unknown) => {
      await nc.close();
      throw e;
    });
  } catch (e) {
    throw new CaxtonError(
      'invalid_config',
      `refusing to start: NATS at ${cluster.nats.urls.join(', ')} ([cluster.nats] urls) could not be reached: ${describeError(e)}`,
      {
        field: 'cluster.nats.urls',
      },
    );
  }
  return { nc, events };
}

/** The shared event store's live events, to and from the other nodes (docs/cluster.md); returns its stop. */
function relayNodeEvents(events: NatsConnection, cluster: ClusterConfig, store: PgEventStore, logger: Logger) {
  return relayEvents({
    nc: events,
    subject: `${cluster.delivery.subject}_agent_events`,
    node: cluster.node,
    store,
    onGap: ({ node, error, truncated }) =>
      logger.warn(
        { node, ...(error !== undefined && { err: describeError(error) }) },
        truncated
          ? `live events of node ${node} were missed beyond what is read back at once; followers here miss the rest (GET /api/v1/events has them)`
          : `live events of node ${node} were missed and could not be read from PostgreSQL; followers here miss them (GET /api/v1/events has them)`,
      ),
  });
}

/** Shares this node's public message signing keys with the other nodes and theirs with it, in the background. */
function shareSigningKeys(
  nc: NatsConnection,
  cluster: ClusterConfig,
  logger: Logger,
  keys: SigningKeyStore,
): { lookup(id: string): Promise<boolean>; stop(): Promise<void> } {
  const started = SigningKeySync.start({
    nc,
    bucket: `${cluster.keys_bucket}_signing`,
    node: cluster.node,
    replicas: cluster.replicas ?? 1,
    keys,
    log: logger,
  }).catch((e: unknown) => {
    logger.warn(
      { err: describeError(e) },
      'could not share message signing keys with the other nodes: what they sign is refused here (signature_invalid) until this node restarts with NATS reachable',
    );
    return undefined;
  });
  return {
    lookup: async (id) => (await started)?.lookup(id) ?? false,
    stop: async () => (await started)?.stop(),
  };
}

/** The node's heartbeats and its view of the others; `load` is what each heartbeat reports. */
function startMembership(
  nc: NatsConnection,
  cluster: ClusterConfig,
  version: string,
  logger: Logger,
  load: () => Record<string, number>,
): Promise<Membership> {
  return Membership.start({
    nc,
    cluster,
    version,
    load,
    log: logger,
    onRewatch: (why, error) =>
      error === undefined
        ? logger.warn({ node: cluster.node, why }, 'the watch of the cluster membership bucket was started again')
        : logger.warn(
            { node: cluster.node, why, err: describeError(error) },
            'the watch of the cluster membership bucket could not be started again; trying again after the next heartbeats',
          ),
    onHealth: (healthy, error) =>
      healthy
        ? logger.info({ node: cluster.node }, 'cluster heartbeats reach JetStream again')
        : logger.warn({ node: cluster.node, err: error }, 'cluster heartbeats are failing'),
  });
}
