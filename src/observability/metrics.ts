import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Read at scrape time: what the gauges report. Components fill these in as they start. */
/**
 * A cluster node's conversation-step transactions so far: how many, the steps they held, groups
 * voided (their steps run again alone), and acknowledgements made without reading their row again
 * whose done-marking held (`unread`) or whose step ran again reading its rows (`reread`).
 */
export interface ClusterStepStats {
  transactions: number;
  steps: number;
  voided: number;
  unread: number;
  reread: number;
}

export interface MetricSources {
  queueDepth?: () => number;
  deadLetters?: () => number;
  activeConversations?: () => number;
  toolServers?: () => number;
  /** May be asynchronous (a PostgreSQL memory backend counts with a query). */
  memoryEntities?: () => number | Promise<number>;
  /** Principal and agent states the limiter holds (src/auth/caller-limits.ts). */
  limitStates?: () => number;
  /** A cluster node's conversation-step transactions so far (src/messaging/postgres/step-groups.ts). */
  clusterSteps?: () => ClusterStepStats;
  /** A cluster node's agent events recorded and not yet written to PostgreSQL (src/observability/pg-agent-events.ts). */
  eventsUnwritten?: () => number;
  /**
   * How a cluster node's questions about deliveries handed out again ended so far: held by another
   * node, free, or some node silent within the wait (src/messaging/cluster/delivery-holders.ts).
   */
  redeliveryAnswers?: () => { held: number; free: number; unanswered: number } | undefined;
}

const FAST_BUCKETS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** The reasons src/auth gives for refusing a request before it knows who sends it. */
const ANONYMOUS_REASONS: ReadonlySet<string> = new Set([
  'missing_credentials',
  'invalid_credentials',
  'token_too_long',
  'anonymous_rate',
  'host_not_allowed',
  'origin_not_allowed',
  'simple_content_type',
]);
const SLOW_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/**
 * The Prometheus registry and the metrics every component shares, named as in the design
 * documents. Labels stay bounded: methods, routes, performatives, statuses, agent, tool, provider
 * and model names — never message, conversation or execution ids, never free text.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly sources: MetricSources = {};
  readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly httpDuration: Histogram<'method' | 'route'>;
  readonly agentsDeployed: Gauge<'origin'>;
  readonly agentEvents: Counter<'event'>;
  readonly errors: Counter<'code'>;
  readonly messagesProcessed: Counter<'performative' | 'status'>;
  readonly messageDuration: Histogram<'performative'>;
  readonly agentExecutions: Counter<'agent' | 'status'>;
  readonly agentExecutionDuration: Histogram<'agent'>;
  readonly rolloutExecutions: Counter<'agent' | 'version' | 'role' | 'status'>;
  readonly rolloutExecutionDuration: Histogram<'agent' | 'version' | 'role'>;
  readonly llmRequests: Counter<'provider' | 'model' | 'status'>;
  readonly llmTokens: Counter<'provider' | 'model' | 'kind'>;
  readonly toolCalls: Counter<'tool' | 'status' | 'via'>;
  readonly toolCallDuration: Histogram<'tool'>;
  readonly memoryOperations: Counter<'operation' | 'status'>;
  readonly memoryOperationDuration: Histogram<'operation'>;
  readonly limitRejections: Counter<'limit' | 'scope'>;
  /** Requests refused before any principal was known (no or an invalid credential, a foreign Host or Origin), by reason. */
  readonly anonymousRefusals: Counter<'reason'>;
  readonly otlpExportFailures: Counter<'reason'>;
  readonly idleCollections: Counter;
  readonly idleCollectionFreed: Counter;
  /** Records the cluster's shared logs in PostgreSQL (events, tool audit) dropped: buffer full while it was unreachable, or a batch it refused. */
  readonly clusterRecordsDropped: Counter<'store'>;
  /** Records (audit, tool audit, events) that found their store's write queue full: back-pressure. */
  readonly writeQueueFull: Counter<'store'>;

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (opts.defaultMetrics !== false) collectProcessMetrics(this.registry);
    this.httpRequests = new Counter({
      name: 'caxton_http_requests_total',
      help: 'HTTP requests served by the REST API',
      labelNames: ['method', 'route', 'status'],
      registers,
    });
    this.httpDuration = new Histogram({
      name: 'caxton_http_request_duration_seconds',
      help: 'REST API request duration',
      labelNames: ['method', 'route'],
      buckets: FAST_BUCKETS,
      registers,
    });
    this.agentsDeployed = new Gauge({
      name: 'caxton_agents_deployed',
      help: 'Agents currently deployed',
      labelNames: ['origin'],
      registers,
    });
    this.clusterRecordsDropped = new Counter({
      name: 'caxton_cluster_records_dropped_total',
      help: "Records of the cluster's shared logs in PostgreSQL (store: events, tool_audit) dropped: the buffer bound while PostgreSQL was unreachable, or a batch it refused",
      labelNames: ['store'],
      registers,
    });
    this.writeQueueFull = new Counter({
      name: 'caxton_write_queue_full_total',
      help: "Records (store: audit, tool_audit, events) that found the write queue full: SQLite writes the queue at once on the caller's turn, a cluster node's PostgreSQL store drops the oldest while an INSERT is under way (counted in caxton_cluster_records_dropped_total too)",
      labelNames: ['store'],
      registers,
    });
    this.agentEvents = new Counter({
      name: 'caxton_agent_events_total',
      help: 'Agent lifecycle events (deployed, updated, removed, invalid_file)',
      labelNames: ['event'],
      registers,
    });
    this.errors = new Counter({
      name: 'caxton_errors_total',
      help: 'Errors, by error code',
      labelNames: ['code'],
      registers,
    });
    this.messagesProcessed = new Counter({
      name: 'caxton_messages_processed_total',
      help: 'ACL message deliveries processed, by performative and outcome (delivered, failed, retried, dead_letter)',
      labelNames: ['performative', 'status'],
      registers,
    });
    this.messageDuration = new Histogram({
      name: 'caxton_message_processing_duration_seconds',
      help: 'Time from the start of a delivery to its acknowledgement',
      labelNames: ['performative'],
      buckets: FAST_BUCKETS,
      registers,
    });
    this.agentExecutions = new Counter({
      name: 'caxton_agent_executions_total',
      help: 'Agent executions, by agent and outcome (ok or an error code)',
      labelNames: ['agent', 'status'],
      registers,
    });
    this.agentExecutionDuration = new Histogram({
      name: 'caxton_agent_execution_duration_seconds',
      help: 'Agent execution duration',
      labelNames: ['agent'],
      buckets: SLOW_BUCKETS,
      registers,
    });
    // Only while an agent has a rollout: its two versions (stable, candidate), so the labels stay bounded.
    this.rolloutExecutions = new Counter({
      name: 'caxton_rollout_executions_total',
      help: 'Executions of an agent under a rollout, by version, role (stable, candidate, shadow) and outcome',
      labelNames: ['agent', 'version', 'role', 'status'],
      registers,
    });
    this.rolloutExecutionDuration = new Histogram({
      name: 'caxton_rollout_execution_duration_seconds',
      help: 'Execution duration of an agent under a rollout, by version and role',
      labelNames: ['agent', 'version', 'role'],
      buckets: SLOW_BUCKETS,
      registers,
    });
    ({
      llmRequests: this.llmRequests,
      llmTokens: this.llmTokens,
      toolCalls: this.toolCalls,
      toolCallDuration: this.toolCallDuration,
      memoryOperations: this.memoryOperations,
      memoryOperationDuration: this.memoryOperationDuration,
    } = callMetrics(registers));
    ({
      anonymousRefusals: this.anonymousRefusals,
      limitRejections: this.limitRejections,
      otlpExportFailures: this.otlpExportFailures,
      idleCollections: this.idleCollections,
      idleCollectionFreed: this.idleCollectionFreed,
    } = upkeepMetrics(registers));
    registerSourceMetrics(registers, this.sources);
    this.#messages = children(this.messagesProcessed);
    this.#messageTimes = children(this.messageDuration);
    this.#executions = children(this.agentExecutions);
    this.#executionTimes = children(this.agentExecutionDuration);
    this.#rollouts = children(this.rolloutExecutions);
    this.#rolloutTimes = children(this.rolloutExecutionDuration);
    this.#llmRequests = children(this.llmRequests);
    this.#llmTokens = children(this.llmTokens);
    this.#toolCalls = children(this.toolCalls);
    this.#toolTimes = children(this.toolCallDuration);
    this.#limitRejections = children(this.limitRejections);
    this.#anonymousRefusals = children(this.anonymousRefusals);
    this.#errors = children(this.errors);
  }

  // Hot-path recorders: a metric's labelled children are looked up by their label values, one Map
  // level per label, so a recording that finds its child allocates nothing (no label object, key
  // string or prom-client label hashing); a child is made once per label set.
  readonly #messages: Lookup<Metrics['messagesProcessed']>;
  readonly #messageTimes: Lookup<Metrics['messageDuration']>;
  readonly #executions: Lookup<Metrics['agentExecutions']>;
  readonly #executionTimes: Lookup<Metrics['agentExecutionDuration']>;
  readonly #rollouts: Lookup<Metrics['rolloutExecutions']>;
  readonly #rolloutTimes: Lookup<Metrics['rolloutExecutionDuration']>;
  readonly #llmRequests: Lookup<Metrics['llmRequests']>;
  readonly #llmTokens: Lookup<Metrics['llmTokens']>;
  readonly #toolCalls: Lookup<Metrics['toolCalls']>;
  readonly #toolTimes: Lookup<Metrics['toolCallDuration']>;
  readonly #limitRejections: Lookup<Metrics['limitRejections']>;
  readonly #anonymousRefusals: Lookup<Metrics['anonymousRefusals']>;
  readonly #errors: Lookup<Metrics['errors']>;

  /** One delivery processed: its performative, outcome and duration in seconds. */
  message(performative: string, status: string, seconds: number): void {
    this.#messages(performative, status).inc();
    this.#messageTimes(performative).observe(seconds);
  }

  /** One execution finished: its agent, outcome ('ok' or an error code) and duration in seconds. */
  execution(agent: string, status: string, seconds: number): void {
    this.#executions(agent, status).inc();
    this.#executionTimes(agent).observe(seconds);
  }

  /** One execution of a version under a rollout (`role`: stable, candidate, or shadow for a shadow copy). */
  rolloutExecution(
    agent: string,
    version: number,
    role: 'stable' | 'candidate' | 'shadow',
    status: string,
    seconds: number,
  ): void {
    const v = String(version);
    this.#rollouts(agent, v, role, status).inc();
    this.#rolloutTimes(agent, v, role).observe(seconds);
  }

  /** Model turns of one execution and the tokens they used. */
  llm(provider: string, model: string, requests: number, inputTokens: number, outputTokens: number): void {
    this.#llmRequests(provider, model, 'ok').inc(requests);
    this.#llmTokens(provider, model, 'input').inc(inputTokens);
    this.#llmTokens(provider, model, 'output').inc(outputTokens);
  }

  /** One tool call: the tool, its outcome ('ok' or 'error'), duration in seconds and the path that made it. */
  tool(tool: string, status: string, seconds: number, via: 'agent' | 'rest' | 'mcp' = 'agent'): void {
    this.#toolCalls(tool, status, via).inc();
    this.#toolTimes(tool).observe(seconds);
  }

  /** A request or execution refused by a limit (src/auth/caller-limits.ts). */
  limitRejected(limit: string, scope: string): void {
    this.#limitRejections(limit, scope).inc();
  }

  /** A request refused before any principal was known; an unknown reason counts as `other`, so the label set stays bounded. */
  anonymousRefused(reason: string): void {
    this.#anonymousRefusals(ANONYMOUS_REASONS.has(reason) ? reason : 'other').inc();
  }

  /** An error, by code. */
  error(code: string): void {
    this.#errors(code).inc();
  }
}

/**
 * Node.js process metrics (heap, event loop lag, handles...). prom-client also serves three gauges
 * named "..._total", a suffix Prometheus reserves for counters (`promtool check metrics` rejects
 * them); the same figures are served per type without the suffix
 * (caxton_nodejs_active_handles{type}, ...), so the totals are dropped.
 */
function collectProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry, prefix: 'caxton_' });
  for (const name of ['handles', 'requests', 'resources'])
    registry.removeSingleMetric(`caxton_nodejs_active_${name}_total`);
}

/** What an agent's calls out cost: model turns and tokens, tool calls, memory operations. */
function callMetrics(registers: Registry[]) {
  return {
    llmRequests: new Counter({
      name: 'caxton_llm_requests_total',
      help: 'LLM chat requests (model turns), by provider, model and outcome',
      labelNames: ['provider', 'model', 'status'],
      registers,
    }),
    llmTokens: new Counter({
      name: 'caxton_llm_tokens_total',
      help: 'LLM tokens, by provider, model and kind (input, output)',
      labelNames: ['provider', 'model', 'kind'],
      registers,
    }),
    // `via` (agent, rest, mcp) says which path made the call: an agent's turn, POST
    // /api/v1/tools/{server}/{tool}/call (and the CLI), or a direct tools/call over /mcp.
    toolCalls: new Counter({
      name: 'caxton_tool_calls_total',
      help: 'Tool calls, by tool, outcome (ok, error) and the path that made them (via: agent, rest, mcp)',
      labelNames: ['tool', 'status', 'via'],
      registers,
    }),
    toolCallDuration: new Histogram({
      name: 'caxton_tool_call_duration_seconds',
      help: 'Tool call duration',
      labelNames: ['tool'],
      buckets: FAST_BUCKETS,
      registers,
    }),
    memoryOperations: new Counter({
      name: 'caxton_memory_operations_total',
      help: 'Memory operations, by operation and outcome',
      labelNames: ['operation', 'status'],
      registers,
    }),
    memoryOperationDuration: new Histogram({
      name: 'caxton_memory_operation_duration_seconds',
      help: 'Memory operation duration',
      labelNames: ['operation'],
      buckets: FAST_BUCKETS,
      registers,
    }),
  };
}

/** The server's guards and housekeeping: refusals, OTLP export failures, idle-time collections. */
function upkeepMetrics(registers: Registry[]) {
  return {
    anonymousRefusals: new Counter({
      name: 'caxton_auth_anonymous_refusals_total',
      help: 'Requests refused before any principal was known, by reason (missing_credentials, invalid_credentials, anonymous_rate, host_not_allowed...; others as "other")',
      labelNames: ['reason'],
      registers,
    }),
    limitRejections: new Counter({
      name: 'caxton_limit_rejections_total',
      help: 'Requests and executions refused with 429 by a limit, by limit (requests, concurrency, tokens, in_flight) and scope (principal, agent, node)',
      labelNames: ['limit', 'scope'],
      registers,
    }),
    otlpExportFailures: new Counter({
      name: 'caxton_otlp_export_failures_total',
      help: 'Failed OTLP trace exports (each drops a batch of spans), by reason (http_4xx, http_5xx, connection, timeout, other)',
      labelNames: ['reason'],
      registers,
    }),
    idleCollections: new Counter({
      name: 'caxton_idle_gc_total',
      help: 'Full garbage collections run when the server went idle after a burst ([server] idle_gc)',
      registers,
    }),
    idleCollectionFreed: new Counter({
      name: 'caxton_idle_gc_freed_bytes_total',
      help: 'Heap bytes freed by the idle-time collections',
      registers,
    }),
  };
}

/** Gauges and counters read from `sources` at scrape time. */
function registerSourceMetrics(registers: Registry[], sources: MetricSources): void {
  const gauge = (
    name: string,
    help: string,
    read: (s: MetricSources) => (() => number | Promise<number>) | undefined,
  ) =>
    new Gauge({
      name,
      help,
      registers,
      async collect() {
        const f = read(sources);
        try {
          this.set(f ? await f() : 0);
        } catch {
          // a source that fails (a database away) keeps its last value rather than failing the scrape
        }
      },
    });
  gauge(
    'caxton_queue_depth',
    'Messages accepted and not yet delivered (queued, running or waiting to retry)',
    (s) => s.queueDepth,
  );
  gauge(
    'caxton_events_unwritten',
    "Agent events this cluster node recorded and has not yet written to the cluster's PostgreSQL (GET /api/v1/events writes them before it reads): the lag of its events writer",
    (s) => s.eventsUnwritten,
  );
  gauge('caxton_dead_letters', 'Deliveries in the dead-letter queue', (s) => s.deadLetters);
  gauge('caxton_active_conversations', 'Conversations that are initiated or in progress', (s) => s.activeConversations);
  gauge('caxton_tool_servers', 'WebAssembly tool servers loaded', (s) => s.toolServers);
  gauge('caxton_memory_entities', 'Entities in the memory store', (s) => s.memoryEntities);
  gauge(
    'caxton_limit_tracked_states',
    'Principals and agents whose limit state is held (dropped once idle)',
    (s) => s.limitStates,
  );
  // Counters read from a source's running totals at scrape time (each scrape adds what it gained since).
  const total = (name: string, help: string, read: (t: ClusterStepStats) => number) => {
    let last = 0;
    return new Counter({
      name,
      help,
      registers,
      collect() {
        const t = sources.clusterSteps?.();
        if (!t) return;
        const v = read(t);
        if (v > last) this.inc(v - last);
        last = v;
      },
    });
  };
  const answers = ['held', 'free', 'unanswered'] as const;
  const lastAnswers = { held: 0, free: 0, unanswered: 0 };
  new Counter({
    name: 'caxton_cluster_redeliveries_asked_total',
    help: 'Deliveries JetStream handed this node again, by what the other nodes answered when asked whether one still holds it: held (handed back), free (run here), unanswered (a node silent within the wait; run here). See docs/adr/0157',
    labelNames: ['answer'],
    registers,
    collect() {
      const t = sources.redeliveryAnswers?.();
      if (!t) return;
      for (const a of answers) {
        if (t[a] > lastAnswers[a]) this.labels(a).inc(t[a] - lastAnswers[a]);
        lastAnswers[a] = t[a];
      }
    },
  });
  total(
    'caxton_cluster_step_transactions_total',
    'PostgreSQL transactions that ran conversation steps on this node (a group of steps shares one; see docs/adr/0046)',
    (t) => t.transactions,
  );
  total(
    'caxton_cluster_steps_total',
    'Conversation steps run on this node (steps per transaction: this over caxton_cluster_step_transactions_total)',
    (t) => t.steps,
  );
  total(
    'caxton_cluster_step_groups_voided_total',
    'Groups of conversation steps rolled back as a whole (a statement failed) whose steps then ran again alone',
    (t) => t.voided,
  );
  total(
    'caxton_cluster_acks_unread_total',
    "Deliveries' first attempts acknowledged without reading their row again: the done-marking held on condition that the row was as taken (docs/adr/0154)",
    (t) => t.unread,
  );
  total(
    'caxton_cluster_acks_reread_total',
    'Such acknowledgements whose condition failed (the row changed since it was taken): their step ran again, reading its rows',
    (t) => t.reread,
  );
}

/** A metric's child for label values given in the order of its label names (one per label). */
type Lookup<M extends Counter<string> | Histogram<string>> = (
  a: string,
  b?: string,
  c?: string,
  d?: string,
) => ChildOf<M>;

type ChildOf<M> =
  M extends Counter<string> ? ReturnType<M['labels']> : M extends Histogram<string> ? ReturnType<M['labels']> : never;

/** The Map below `level` for `key`, made when missing. */
function below(level: Map<string, unknown>, key: string): Map<string, unknown> {
  let next = level.get(key) as Map<string, unknown> | undefined;
  if (next === undefined) level.set(key, (next = new Map()));
  return next;
}

/**
 * A lookup of `metric`'s labelled children by label values, cached in nested Maps, one level per
 * label (at most four), with fixed parameters rather than a rest array.
 */
function children<M extends Counter<string> | Histogram<string>>(metric: M): Lookup<M> {
  const names = (metric as unknown as { labelNames: readonly string[] }).labelNames;
  const n = names.length;
  if (n < 1 || n > 4) throw new Error(`metric with ${n} labels: the hot-path lookup takes 1 to 4`);
  const root = new Map<string, unknown>();
  return (a, b, c, d): ChildOf<M> => {
    let level = root;
    let key = a;
    if (n > 1) {
      level = below(level, key);
      key = b!;
    }
    if (n > 2) {
      level = below(level, key);
      key = c!;
    }
    if (n > 3) {
      level = below(level, key);
      key = d!;
    }
    let child = level.get(key) as ChildOf<M> | undefined;
    if (child === undefined) {
      const values = [a, b, c, d];
      const labels: Record<string, string> = {};
      for (let i = 0; i < n; i++) labels[names[i]!] = values[i]!;
      child = (metric as unknown as { labels(l: Record<string, string>): ChildOf<M> }).labels(labels);
      level.set(key, child);
    }
    return child;
  };
}
