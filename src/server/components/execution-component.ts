import { executionApi, SqliteResponseStore } from '../../api/index.js';
import {
  checkAnswer,
  checkName,
  type AgentRegistry,
  type AgentService,
  type ShadowResultsPort,
} from '../../agents/index.js';
import { agentLimitsLookup, type ActingPrincipals, type PrincipalLimiter } from '../../auth/index.js';
import type { ServerConfig } from '../../config/index.js';
import {
  Executor,
  PgRunJournal,
  RUN_LEASE_MS,
  RUNS_MIGRATIONS,
  ShadowRunner,
  SqliteRunJournal,
  SqliteSuspendedStore,
  type ChatThreads,
  type ExecutionLog,
  type ExecutionMemory,
  type RunJournal,
} from '../../execution/index.js';
import type { Logger, Metrics, Tracer } from '../../observability/index.js';
import type { AgentEvents } from '../../observability/agent-event-recorder.js';
import { describeError, isCaxtonError } from '../../shared/errors.js';
import { migrate, type Db } from '../../storage/index.js';
import type { ClusterStateComponent } from './cluster-component.js';
import type { Component } from './component.js';

export interface ExecutionComponent extends Component {
  readonly executor: Executor;
  /** Settles when the isolation pool has started (a failure is logged, not thrown). */
  readonly ready: Promise<void>;
}

/**
 * Where durable runs are recorded: the node's SQLite, or on a cluster node the shared tables in
 * PostgreSQL, so that a run whose node died is resumed by another (src/execution/runs/pg-runs.ts).
 * Undefined with `[execution] durable_runs = false`.
 */
export async function openRunJournal(opts: {
  config: ServerConfig;
  db: Db;
  logger: Logger;
  clusterState?: ClusterStateComponent | undefined;
}): Promise<RunJournal | undefined> {
  const { config, logger } = opts;
  if (!config.execution.durable_runs) return undefined;
  const onError = (e: unknown) => logger.error({ err: e }, 'a run could not be recorded');
  const state = opts.clusterState;
  if (state) {
    await PgRunJournal.migrate(state.pool, state.schema);
    return new PgRunJournal({
      pool: state.pool,
      schema: state.schema,
      node: state.node,
      retentionMs: config.execution.runs_retention,
      maxRows: config.execution.runs_max_rows,
      leaseMs: config.cluster?.run_lease ?? RUN_LEASE_MS,
      // Written while the delivery's ack wait has two thirds left: JetStream hands a delivery to
      // another node only after a whole ack wait without this node's word that it is still working.
      writeAfterMs: Math.min(
        Math.floor((config.cluster?.run_lease ?? RUN_LEASE_MS) / 3),
        Math.floor((config.cluster?.delivery.ack_wait ?? Infinity) / 3),
      ),
      onError,
    });
  }
  migrate(opts.db, RUNS_MIGRATIONS);
  return new SqliteRunJournal({
    db: opts.db,
    retentionMs: config.execution.runs_retention,
    maxRows: config.execution.runs_max_rows,
    onError,
  });
}

/**
 * The executor (isolation pool warming in the background), the stores of executions stopped for
 * client tool calls and of POST /v1/responses, and their routes (invoke, /v1/chat/completions, /v1/responses).
 */
export function startExecution(opts: {
  config: ServerConfig;
  db: Db;
  registry: AgentRegistry;
  service: AgentService;
  logger: Logger;
  telemetry: { tracer?: Tracer; metrics?: Metrics };
  limiter: PrincipalLimiter;
  /** Principals by id: a run resumed with no caller present is charged to its principal's limits. */
  principals: ActingPrincipals;
  events: AgentEvents | undefined;
  /** Where every execution is recorded (ADR 0056); undefined with `[executions] enabled = false`. */
  records?: ExecutionLog | undefined;
  /** Chat threads: a continued invoke's earlier turns. */
  threads: ChatThreads;
  memory: ExecutionMemory | undefined;
  /** Where shadow rollouts' comparisons go (the agents component's store). */
  shadowResults: ShadowResultsPort;
  /** Embedding similarity of two texts (memory's model), for shadow comparisons; undefined without memory. */
  similarity?: ((a: string, b: string) => Promise<number>) | undefined;
  /** Where every step of every run is committed as it goes (`openRunJournal`); closed with the executor. */
  runs?: RunJournal | undefined;
  /** Each finished execution's status ('ok' or the error code). */
  onRunFinished?: (status: string) => void;
}): ExecutionComponent {
  const { config, db, logger, events, runs } = opts;
  const executor = new Executor(config, opts.registry, {
    ...(runs && {
      runs,
      onRunError: (e: unknown, run: string) =>
        // On a cluster, another node took the run over first (or still holds it): not a fault.
        isCaxtonError(e) && e.code === 'rate_limited'
          ? logger.debug({ run, err: e.message }, 'a run to resume is held by another node')
          : logger.error({ err: e, run }, 'a durable run failed to record or resume'),
    }),
    ...opts.telemetry,
    limiter: opts.limiter,
    principalLimits: (id) => opts.principals.executionLimits(id),
    agentLimits: agentLimitsLookup(config.auth.limits),
    ...(opts.records && { records: opts.records, versionNumberOf: (d) => opts.service.rollout.numberOf(d) }),
    // Each execution reaches the event store and, while its agent has a rollout, the canary's
    // figures or the shadow runner (which copies a live execution to the candidate).
    onExecuted: (e) => {
      events?.onExecuted(e);
      opts.onRunFinished?.(e.status);
      opts.service.rollout.observe(e.definition, e.status === 'ok', e.duration_ms);
      shadow.onExecuted(e);
      const m = opts.telemetry.metrics;
      if (m) {
        // Executions labelled with their version while the agent has a canary or shadow rollout.
        const running = e.shadow ? opts.service.rollouts?.running(e.agent) : undefined;
        const v = running
          ? { version: running.candidate_version, role: 'shadow' as const }
          : opts.service.rollout.rolloutVersionOf(e.definition);
        if (v) m.rolloutExecution(e.agent, v.version, v.role, e.status, e.duration_ms / 1000);
      }
    },
  });
  executor.runs?.expireApprovalsEvery(config.approvals.timeout);
  // A run that waits for a person, and the decision, in the agent event store.
  if (events) executor.runs?.watch((n) => events.onRun(n));
  // A canary candidate's [[rollout.checks]]: each request run on the candidate, its answer checked.
  opts.service.rollout.setCheckRunner(async (agent, version, checks) => {
    for (const check of checks) {
      let answer: string;
      try {
        answer = (await executor.invoke(`${agent}@${version}`, { request: check.request })).content;
      } catch (e) {
        return `check ${checkName(check)}: the request failed: ${describeError(e)}`;
      }
      const failure = checkAnswer(check, answer);
      if (failure !== undefined) return failure;
    }
    return undefined;
  });
  const shadow = new ShadowRunner({
    executor,
    service: opts.service,
    results: opts.shadowResults,
    similarity: opts.similarity,
    onError: (e) => logger.error({ err: e }, 'a shadow comparison could not be recorded'),
  });
  // On a cluster, the runs of a node that died (their lease expired) are taken over by whichever
  // node looks first; runs started by a message are resumed by the message's redelivery instead.
  const takeover =
    runs instanceof PgRunJournal
      ? setInterval(() => {
          executor.runs?.resumeUnfinished('expired').then(
            (n) => n > 0 && logger.info({ runs: n }, 'resuming runs whose node stopped renewing their lease'),
            (e: unknown) => logger.warn({ err: describeError(e) }, 'unfinished runs could not be read'),
          );
        }, config.cluster?.run_lease ?? RUN_LEASE_MS)
      : undefined;
  takeover?.unref();
  const ready = executor.warm().catch((e: unknown) => logger.error({ err: e }, 'isolation pool failed to start'));
  executor.memory = opts.memory;
  // Executions stopped for client tool calls (OpenAI `tools`), until the client's results resume them (ADR 0029).
  const suspended = new SqliteSuspendedStore(db, {
    ttlMs: config.execution.suspended_ttl,
    onError: (e) => logger.error({ err: e }, 'suspended executions could not be pruned'),
  });
  // Stored responses of POST /v1/responses (`store`), what previous_response_id continues.
  const responses = new SqliteResponseStore(db, {
    ttlMs: config.execution.responses_ttl,
    onError: (e) => logger.error({ err: e }, 'stored responses could not be pruned'),
  });
  return {
    name: 'execution',
    executor,
    ready,
    routes: executionApi({
      executor,
      service: opts.service,
      bodyLimit: config.server.max_body_size,
      threads: opts.threads,
      suspended,
      responses,
    }),
    close: async () => {
      clearInterval(takeover);
      // Copies in flight finish first: they run on the executor.
      await shadow.close();
      await executor.close();
      await runs?.close();
      suspended.close();
      responses.close();
    },
  };
}
