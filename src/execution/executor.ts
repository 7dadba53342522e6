import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { AgentDefinition, AgentRegistry, IsolationMode } from '../agents/index.js';
import { UnlistedTools } from './unlisted-tools.js';
import { limitedError, type ExecutionSlot, type LimitSet, type PrincipalLimiter } from '../auth/limits.js';
import type { ServerConfig } from '../config/index.js';
import { genAiSystemOf, type ToolSpec } from '../llm/index.js';
import { traceIdsHandedOn } from '../observability/events.js';
import type { Metrics } from '../observability/metrics.js';
import {
  childTraceparent,
  endWithError,
  giveAttributes,
  spanName,
  SpanStatusCode,
  startSpan,
  traceparentOf,
  withSpan,
  type Attributes,
  type Span,
  type Tracer,
} from '../observability/trace-context.js';
import { CaxtonError, isCaxtonError } from '../shared/errors.js';
import { scrubError, scrubSecretsIn } from '../shared/secrets.js';
import { StreamScrubber } from '../shared/stream-scrub.js';
import { timeOrderedUuid } from '../shared/ids.js';
import { allowsTool, ToolRegistry, type Tool, type ToolResult } from '../tools/index.js';
import { Deadline, type CancelHook } from './deadline.js';
import { buildDeps, llmSetup, setupShipper, type LlmSetup } from './deps.js';
import {
  executionTools,
  HOST_TOOL_METHOD,
  parseHostToolCall,
  parseReportedCall,
  parseRunSteps,
  RUN_STEPS_METHOD,
  TOOL_CALLED_METHOD,
  TOOL_REFUSED_METHOD,
} from './host-tools.js';
import { createIsolation, type Isolation, type PooledIsolationMode } from './isolation/index.js';
import { entryOf, type ExecutionLog } from './records/model.js';
import { checkRequest } from './request-checks.js';
import { runAgent, toolContext, type ExecutionDeps } from './run-agent.js';
import { agentPermissions, approvalRulesFor, ruleRefusal, type ApprovalRule } from './runs/approval.js';
import { workspacePermissions } from '../tools/permissions/index.js';
import { DurableRuns, type RunContext, type RunJournal, type RunOrigin } from './runs/index.js';
import type { TaskPayload } from './task.js';
import type { AgentResponse, ExecutionEvent, ExecutionJob, ExecutionMemory, InvokeRequest } from './types.js';
import { WasmAgents } from './wasm-agent.js';

export interface InvokeOptions {
  /** Aborted when the client goes away. */
  signal?: AbortSignal;
  /**
   * The caller's cancellation as a callback instead of a signal: called once, when the execution
   * starts, with the function that cancels it (src/api/sse.ts: disconnectHook). Cheaper than
   * `signal`: the execution's own deadline controller is then the request's only AbortController.
   */
  cancelOn?: CancelHook;
  stream?: boolean;
  onEvent?: (e: ExecutionEvent) => void;
  /** Who runs this execution, and their effective limits (src/auth/limits.ts); needs `ExecutorOptions.limiter`. */
  limit?: { principalId: string; limits?: LimitSet | undefined };
  /**
   * A slot taken beforehand with `Executor.admit()` (a streaming route admits before it opens the
   * stream, so a refusal is a real 429). invoke() gives it back when the execution ends, however it ends.
   */
  admitted?: ExecutionSlot | undefined;
  /**
   * A shadow run (a shadow rollout's candidate on a copy of a live request, ADR 0041): in the
   * server thread, every tool call refused (the model is told so) and nothing stored in memory.
   */
  shadow?: boolean;
  /** What started this run, for its durable record (default: `message` with a message id, else `invoke`). */
  origin?: RunOrigin;
  /** The caller's Idempotency-Key: the same key from the same principal to the same agent is one run. */
  idempotencyKey?: string;
  /** The run's id, chosen beforehand (a background run answers with it before the run starts). */
  runId?: string;
}

/** What a shadow run's tool calls get instead of running (they may have side effects). */
export const SHADOW_TOOL_REFUSAL =
  'not run: this is a shadow execution (a copy of a live request for a new version), where tool calls are refused because they may have side effects; answer without it';

/**
 * Agents whose answer comes from another server (a remote A2A agent, src/a2a): a run of one is a
 * call to it, under the same run, record, trace, limits and audit as a local agent's.
 */
export interface RemoteAgentRunner {
  handles(def: AgentDefinition): boolean;
  /** `emit`: the run's followers (a streamed invoke), handed the answer's text as it comes. */
  run(job: ExecutionJob, opts: { signal: AbortSignal; emit?: (e: ExecutionEvent) => void }): Promise<AgentResponse>;
}

export interface ExecutorOptions {
  /** The registry behind `Executor.hostTools` (default: a new, empty one). */
  hostTools?: ToolRegistry;
  /** Spans (`agent.execute`, and host tool calls from workers and processes). */
  tracer?: Tracer;
  /** Execution, LLM and tool-call metrics. */
  metrics?: Metrics;
  /** Called once per finished execution (the agent event store's performance events). */
  onExecuted?: (e: ExecutionRecord) => void;
  /** Limits per principal and per agent (src/auth/limits.ts): checked before any LLM call, tokens charged after. */
  limiter?: PrincipalLimiter;
  /** An agent's own limits (`[auth.limits.agents]`, see agentLimitsLookup), shared by all its callers. */
  agentLimits?: (agent: string) => LimitSet | undefined;
  /**
   * A principal's limits by id (ActingPrincipals.executionLimits), for runs resumed with no caller
   * present; throws for a key revoked since the run started.
   */
  principalLimits?: (principal: string) => LimitSet | undefined;
  /** Where every finished execution is recorded (src/execution/records, ADR 0056): queued here, written in batches. */
  records?: ExecutionLog;
  /** Which version of its agent's history a definition is (the agent service knows), for the records. */
  versionNumberOf?: (definition: AgentDefinition) => number | undefined;
  /**
   * Where every run's steps are committed as it goes (src/execution/runs): a crash, restart or
   * redelivery resumes the run from its last step instead of repeating it. Absent: runs are not durable.
   */
  runs?: RunJournal;
  /** A run's journal could not record its end, or a run resumed in the background failed (logged by the server). */
  onRunError?: (e: unknown, runId: string) => void;
}

/** One finished execution, for `ExecutorOptions.onExecuted`. */
export interface ExecutionRecord {
  /** The execution's id, which is also its durable run's: set whether it succeeded or failed. */
  execution_id: string;
  agent: string;
  /** The definition that ran (a rollout's candidate or stable version: the agent service tells which). */
  definition: AgentDefinition;
  /** A shadow run (InvokeOptions.shadow). */
  shadow?: boolean;
  /** 'ok' or the error code. */
  status: string;
  duration_ms: number;
  request: InvokeRequest;
  response?: AgentResponse;
  /** The `agent.execute` span's traceparent when traced, else the request's. */
  traceparent?: string;
}

/** The parts of a TaskPayload that are the same object from run to run (RunOptions.sticky). */
const STICKY_PAYLOAD: readonly (keyof TaskPayload)[] = ['setup'];

/** How much later than the agent's deadline the isolation pool's own deadline fires (a backstop). */
const POOL_DEADLINE_SLACK_MS = 1_000;

/** The compiled task module (workers and child processes load JavaScript, never the .ts sources). */
function taskModulePath(): string {
  const here = fileURLToPath(import.meta.url);
  const js = here.replace(/executor\.(ts|js)$/, 'task.js');
  if (existsSync(js)) return js;
  return js.replace(/([\\/])src([\\/])execution([\\/])task\.js$/, '$1dist$2execution$3task.js');
}

/**
 * Runs agent requests: checks the request against the agent's current definition, builds a fresh
 * execution (deadline, allowed tools, prompts) and runs it in the agent's isolation mode.
 */
export class Executor {
  /**
   * Tools that run in this (the server) process whatever the agent's isolation mode, because they
   * use its state (messaging, memory, tool servers). Register and unregister them at any time;
   * an execution offers the model the built-ins and the host tools its agent's `tools` allows,
   * as they are when it starts. The built-in tools' names are reserved: registering a host tool
   * under one throws 'conflict'. From a worker or process, a call reaches the server through the
   * isolation's host calls (see host-tools.ts).
   */
  readonly hostTools: ToolRegistry;
  /** See #contextDeps. */
  readonly #contextToolsBySpecs = new WeakMap<
    readonly ToolSpec[],
    {
      tools: ToolRegistry;
      /** The executor's deps with `tools`, made once with them. */
      deps: ExecutionDeps;
      generation: number;
      onRefused: ToolRegistry['onRefused'];
      onCalled: ToolRegistry['onCalled'];
    }
  >();
  /** Memory (src/memory): fills `{{memory_context}}` and stores successful executions, per the agent's `[memory]`. Set by the server. */
  memory: ExecutionMemory | undefined;
  /** Agents answered by another server (remote A2A agents, src/a2a): their runs call it; set by the server. */
  remote: RemoteAgentRunner | undefined;
  readonly #registry: AgentRegistry;
  readonly #config: ServerConfig;
  readonly #setup: LlmSetup;
  readonly #deps: ExecutionDeps;
  readonly #shippedSetup: () => Promise<LlmSetup>;
  readonly #pools = new Map<IsolationMode, Isolation>();
  readonly #tracer: Tracer | undefined;
  readonly #metrics: Metrics | undefined;
  readonly #onExecuted: ExecutorOptions['onExecuted'];
  readonly #limiter: PrincipalLimiter | undefined;
  readonly #agentLimits: ExecutorOptions['agentLimits'];
  readonly #records: ExecutionLog | undefined;
  readonly #versionNumberOf: ExecutorOptions['versionNumberOf'];
  /** WebAssembly agents' sandboxes (`[wasm]`): they run in the server process whatever the isolation mode. */
  readonly #wasm: WasmAgents;
  readonly #approvals = new WeakMap<AgentDefinition, ApprovalRule[]>();
  /** This node's runs in flight, against `[execution] max_in_flight` (see admit()). */
  readonly #inFlight: InFlight;
  /** Durable runs (src/execution/runs/durable.ts); undefined without a journal. */
  readonly runs: DurableRuns | undefined;

  /** Throws 'conflict' when `opts.hostTools` already holds a tool with a built-in tool's name. */
  constructor(config: ServerConfig, registry: AgentRegistry, opts: ExecutorOptions = {}) {
    this.#config = config;
    this.#registry = registry;
    this.#setup = llmSetup(config);
    this.#deps = buildDeps(this.#setup);
    this.#shippedSetup = setupShipper(this.#setup, this.#deps.providers);
    this.hostTools = opts.hostTools ?? new ToolRegistry();
    this.#tracer = opts.tracer;
    this.#metrics = opts.metrics;
    this.#onExecuted = opts.onExecuted;
    this.#limiter = opts.limiter;
    this.#agentLimits = opts.agentLimits;
    this.#records = opts.records;
    this.#versionNumberOf = opts.versionNumberOf;
    this.#wasm = new WasmAgents({ inThreadFuel: config.tools.limits.in_thread_fuel });
    this.#inFlight = new InFlight(config.execution.max_in_flight, opts.metrics);
    this.runs =
      opts.runs &&
      new DurableRuns(opts.runs, {
        run: (id, def, req, o, ref, run) => this.#once(id, def, req, o, ref, run),
        resolve: (ref, req) => this.check(ref, req),
        admit: (name, limit) => this.admit(name, limit),
        ...(opts.principalLimits && { limitsOf: opts.principalLimits }),
        isIdempotent: (name) => (this.#deps.tools.get(name) ?? this.hostTools.get(name))?.idempotent === true,
        audit: (call) => this.hostTools.onCalled?.(call),
        ...(opts.onRunError && { onError: opts.onRunError }),
      });
    this.hostTools.reserve(
      this.#deps.tools.list().map((t) => t.name),
      'built-in tool',
    );
  }

  get deps(): ExecutionDeps {
    return this.#deps;
  }

  /** Starts the server-wide isolation pool ahead of the first request. */
  async warm(): Promise<void> {
    const mode = this.#config.execution.isolation;
    if (mode !== 'context') await this.#pool(mode).warm();
  }

  #pool(mode: PooledIsolationMode): Isolation {
    let pool = this.#pools.get(mode);
    if (!pool) {
      pool = createIsolation(mode, {
        taskModule: taskModulePath(),
        maxOldGenerationSizeMb: this.#config.execution.max_memory_mb,
        ...(this.#config.execution.pool_size !== undefined && { poolSize: this.#config.execution.pool_size }),
        ...(this.#config.execution.process_max_requests !== undefined && {
          maxRequestsPerProcess: this.#config.execution.process_max_requests,
        }),
        ...(this.#config.execution.runs_per_member !== undefined && {
          memberConcurrency: this.#config.execution.runs_per_member,
        }),
      });
      this.#pools.set(mode, pool);
    }
    return pool;
  }

  stats() {
    return [...this.#pools.values()].map((p) => p.stats());
  }

  /** The tools a Claude Code agent that lists none runs with (`[agents.claude] unlisted_tools`); set by the server. */
  readonly unlisted = new UnlistedTools();

  /**
   * Checks a request against the agent's current definition without running it; returns the
   * definition. Streaming routes call it before opening the stream, so such errors keep their status.
   * What resolving the name within the request's conversation needs (a cluster node: the
   * conversation's pinned version) is read first, as invoke() does.
   */
  async check(name: string, req: InvokeRequest): Promise<AgentDefinition> {
    const reading = this.#registry.prepare(name, req.conversation_id);
    if (reading) await reading;
    return this.#check(name, req);
  }

  #check(name: string, req: InvokeRequest): AgentDefinition {
    // NAME@VERSION reaches any version the agent's history keeps (src/agents/rollouts/version-resolver.ts).
    const agent = this.#registry.resolve(name, req.conversation_id);
    if (!agent) throw new CaxtonError('agent_not_found', `no agent named "${name}" is deployed`, { name });
    const def = this.unlisted.apply(agent.definition);
    checkRequest(def, req, {
      hasDefaultProvider: Boolean(this.#setup.defaults.provider),
      ownToolNames: () => {
        const allowed = def.tools as string[];
        return new Set([...this.#deps.tools.specsFor(allowed), ...this.hostTools.specsFor(allowed)].map((s) => s.name));
      },
    });
    return def;
  }

  /**
   * Takes an execution slot: one of this node's runs in flight (`[execution] max_in_flight`), and
   * one against the principal's and the agent's limits; throws 'rate_limited' (429, with
   * retry_after) when one is reached. Every way a run starts comes through here — invoke(), the
   * streaming routes, background and resumed runs, message deliveries — so the node's limit is
   * decided in this one place. invoke() calls it itself; a streaming route calls it before opening
   * the stream and passes the slot as `InvokeOptions.admitted` (and releases it should it not get
   * to invoke()).
   */
  admit(name: string, limit?: InvokeOptions['limit']): ExecutionSlot {
    this.#inFlight.take();
    let inner: ExecutionSlot | undefined;
    try {
      inner = this.#limited(name, limit);
    } catch (e) {
      this.#inFlight.give();
      throw e;
    }
    return new NodeSlot(this.#inFlight, inner);
  }

  /** Runs in flight on this node now (`[execution] max_in_flight` bounds them). */
  get inFlight(): number {
    return this.#inFlight.count;
  }

  #limited(name: string, limit: InvokeOptions['limit']): ExecutionSlot | undefined {
    if (!this.#limiter) return undefined;
    const agentLimits = this.#agentLimits?.(name);
    if (!limit && !agentLimits) return undefined;
    // One literal of one shape whether or not a principal is given: a spread of a conditional
    // object copies it property by property on every execution.
    const r = this.#limiter.beginExecution({
      principalId: limit?.principalId,
      principalLimits: limit?.limits,
      agent: name,
      agentLimits,
    });
    if (!r.ok) throw limitedError(r);
    return r;
  }

  invoke(name: string, req: InvokeRequest, opts: InvokeOptions = {}): Promise<AgentResponse> {
    // The conversation's pinned version first (a cluster node): resolution itself is synchronous.
    let reading: Promise<void> | undefined;
    try {
      reading = this.#registry.prepare(name, req.conversation_id);
    } catch (e) {
      return Promise.reject(e as Error);
    }
    if (reading) return reading.then(() => this.#admitted(name, req, opts));
    return this.#admitted(name, req, opts);
  }

  /**
   * Checks, admits and runs; hands back #invoke's own promise when there is no slot to give back,
   * and chains the release on it otherwise: no promise of its own in between.
   */
  #admitted(name: string, req: InvokeRequest, opts: InvokeOptions): Promise<AgentResponse> {
    let slot = opts.admitted;
    let def: AgentDefinition;
    try {
      def = this.#check(name, req);
      slot ??= this.admit(def.name, opts.limit);
    } catch (e) {
      slot?.release();
      return Promise.reject(e as Error);
    }
    const taken = slot;
    return this.#invoke(def, req, opts, name).then(
      (res) => {
        taken.release({ tokens: res.usage.input_tokens + res.usage.output_tokens });
        return res;
      },
      (e: unknown) => {
        // Failed, timed out or cancelled: the slot is given back. The tokens of a failed execution
        // are not known here (the provider's usage comes with the response), so they are not charged.
        taken.release();
        throw e;
      },
    );
  }

  /** `ref` is the name the caller gave (NAME@VERSION addresses one version: the record says so). */
  #invoke(def: AgentDefinition, req: InvokeRequest, opts: InvokeOptions, ref: string): Promise<AgentResponse> {
    // A shadow run has no effects to keep: its tools are refused.
    if (this.runs !== undefined && opts.shadow !== true) return this.runs.invoke(def, req, opts, ref);
    return this.#once(`exec_${timeOrderedUuid()}`, def, req, opts, ref, undefined);
  }

  /** One execution of a run: `run` records its steps and holds what a resumed run reuses. */
  async #once(
    id: string,
    def: AgentDefinition,
    req: InvokeRequest,
    opts: InvokeOptions,
    ref: string,
    run: RunContext | undefined,
  ): Promise<AgentResponse> {
    if (!this.#tracer && !this.#metrics && !this.#onExecuted && !this.#records)
      return withoutTurns(await this.#run(id, def, req, opts, run));
    const started = Date.now();
    const t0 = performance.now();
    // Its attributes are given at its end, all at once (#record).
    const span = this.#tracer && startSpan(this.#tracer, spanName('agent.execute', def.name), req.traceparent);
    const tp = span ? childTraceparent(span, req.traceparent) : undefined;
    // Object.assign, not a spread: a spread copy given a key its source lacks gets a hidden class of its own in V8.
    const traced = tp !== undefined && tp !== req.traceparent ? Object.assign({}, req, { traceparent: tp }) : req;
    try {
      const res = await (span
        ? withSpan(span, () => this.#run(id, def, traced, opts, run))
        : this.#run(id, def, traced, opts, run));
      this.#record(id, def, res, undefined, started, t0, span, traced, opts.shadow === true, ref);
      return withoutTurns(res);
    } catch (e) {
      this.#record(id, def, undefined, e, started, t0, span, traced, opts.shadow === true, ref);
      throw e;
    }
  }

  /** Metrics and span attributes of one execution (labels: agent, provider, model and tool names only). */
  #record(
    id: string,
    def: AgentDefinition,
    res: AgentResponse | undefined,
    err: unknown,
    started: number,
    t0: number,
    span: Span | undefined,
    req: InvokeRequest,
    shadow: boolean,
    ref: string,
  ): void {
    const agent = def.name;
    const m = this.#metrics;
    const status = res ? 'ok' : isCaxtonError(err) ? err.code : 'internal';
    // A run paused for a person has not ended: it is recorded when it does.
    if (this.#records && status !== 'awaiting_approval') {
      this.#records.record(
        entryOf({
          id,
          agent,
          version: def.version,
          version_number: this.#versionNumberOf?.(def),
          addressed: ref.lastIndexOf('@') > 0,
          shadow,
          started,
          duration_ms: performance.now() - t0,
          request: req,
          response: res,
          // Scrubbed as the caller sees it (#run): the record holds nothing the caller could not.
          error: err,
          trace_id: traceIdsHandedOn(span, req.traceparent)?.trace_id,
        }),
      );
    }
    if (this.#onExecuted) {
      // Built field by field: a literal of conditional spreads copies each through a temporary object.
      const executed: ExecutionRecord = {
        execution_id: id,
        agent,
        definition: def,
        status,
        duration_ms: performance.now() - t0,
        request: req,
      };
      if (shadow) executed.shadow = true;
      if (res) executed.response = res;
      if (req.traceparent !== undefined) executed.traceparent = req.traceparent;
      this.#onExecuted(executed);
    }
    if (m) {
      m.execution(agent, status, (performance.now() - t0) / 1000);
      if (res) {
        m.llm(res.provider, res.model, res.turns, res.usage.input_tokens, res.usage.output_tokens);
        for (const c of res.tool_calls) {
          // A name the model made up is not a label value: it would grow without bound.
          const tool = this.#deps.tools.get(c.name) || this.hostTools.get(c.name) ? c.name : 'unknown';
          m.tool(tool, c.is_error ? 'error' : 'ok', c.duration_ms / 1000, 'agent');
        }
      } else {
        m.error(status);
      }
    }
    if (!span?.isRecording()) return;
    if (res) {
      const system = genAiSystemOf(
        Object.hasOwn(this.#setup.providers, res.provider) ? this.#setup.providers[res.provider]!.type : undefined,
      );
      giveAttributes(span, executeSpanAttributes(agent, req.conversation_id, res, system));
      span.end();
    } else {
      const attributes: Attributes = { 'caxton.agent': agent };
      if (req.conversation_id !== undefined) attributes['caxton.conversation_id'] = req.conversation_id;
      giveAttributes(span, attributes);
      endWithError(span, err);
    }
  }

  /**
   * One execution, with everything it hands back — the response, the streamed events (the streamed
   * text as one text: scrubbedEvents), the error — scrubbed of the configured secrets (ADR 0017): they carry provider and tool text, and go on to
   * responses, messages, events and memory. In worker and process mode this is where that text
   * first reaches the server.
   */
  async #run(
    id: string,
    def: AgentDefinition,
    req: InvokeRequest,
    opts: InvokeOptions,
    run: RunContext | undefined,
  ): Promise<AgentResponse> {
    const events = opts.onEvent && scrubbedEvents(opts.onEvent);
    let res: AgentResponse;
    try {
      res = scrubSecretsIn(await this.#execute(id, def, req, events ? { ...opts, onEvent: events.emit } : opts, run));
      events?.end();
    } catch (e) {
      try {
        events?.end();
      } catch {
        // The execution's own error is the one to report.
      }
      throw scrubError(e);
    }
    return opts.shadow ? res : this.#remember(def, req, res);
  }

  /** The approval rules of an agent's definition: the operator's that apply to it, then its own (kept per definition). */
  #approvalsOf(def: AgentDefinition): ApprovalRule[] {
    let rules = this.#approvals.get(def);
    if (rules === undefined) {
      const ws = workspacePermissions(this.#config.workspace);
      rules = approvalRulesFor(def.name, this.#config.approvals.rules, def.execution.require_approval, ws.root);
      const permissions = agentPermissions(def, ws);
      if (permissions !== undefined) rules.unshift({ tools: [], permissions });
      this.#approvals.set(def, rules);
    }
    return rules;
  }

  #hostToolsOf(specs: readonly ToolSpec[]): Tool[] {
    return specs.map((s) => this.hostTools.get(s.name)).filter((t): t is Tool => t !== undefined);
  }

  /**
   * What a context-mode execution runs with: the executor's deps, their tools the built-ins and
   * the host tools of `hostSpecs`, with the tool audit's hooks. Built once per host tool list (the
   * agents with the same tools share one frozen list of specs) and kept until a tool or a hook
   * changes: a registry per request cost a Map, a sort and the tool specs again on every invoke.
   */
  #contextDeps(hostSpecs: readonly ToolSpec[]): ExecutionDeps {
    const builtins = this.#deps.tools;
    // Read at each execution: the tool audit sets them once it exists.
    const { onRefused, onCalled } = this.hostTools;
    const known = this.#contextToolsBySpecs.get(hostSpecs);
    if (
      known &&
      known.generation === builtins.generation &&
      known.onRefused === onRefused &&
      known.onCalled === onCalled
    )
      return known.deps;
    const tools = executionTools(builtins, this.#hostToolsOf(hostSpecs), { onRefused, onCalled });
    const deps = tools === builtins ? this.#deps : { ...this.#deps, tools };
    if (Object.isFrozen(hostSpecs))
      this.#contextToolsBySpecs.set(hostSpecs, { tools, deps, generation: builtins.generation, onRefused, onCalled });
    return deps;
  }

  async #execute(
    id: string,
    def: AgentDefinition,
    req: InvokeRequest,
    opts: InvokeOptions,
    run: RunContext | undefined,
  ): Promise<AgentResponse> {
    // A shadow run stays in the server thread, where its tools can be swapped for refusals; a
    // WebAssembly agent's module runs in its own sandbox, called from the server thread.
    const remote = this.remote?.handles(def) === true ? this.remote : undefined;
    const isolation =
      opts.shadow || def.wasm !== undefined || remote !== undefined
        ? 'context'
        : (def.execution.isolation ?? this.#config.execution.isolation);
    const timeoutMs = def.limits.timeout_ms;
    // The host tools the agent may call, fixed for this execution.
    const hostSpecs = this.hostTools.specsFor(def.tools as string[]);
    // Memory (src/memory): what the agent remembers about this request, for {{memory_context}}.
    // (Not for a resumed execution: its transcript already holds the prompts it started with.)
    // A resumed run renders the prompt it started with.
    const replay = run?.replay;
    let memoryContext: string;
    if (replay !== undefined) memoryContext = replay.memory_context ?? '';
    else {
      memoryContext =
        def.memory.enabled && this.memory && req.transcript === undefined ? await this.memory.recall(def, req) : '';
      if (run !== undefined && memoryContext !== '')
        await run.record([{ kind: 'context', memory_context: memoryContext }]);
    }
    const job: ExecutionJob = {
      execution_id: id,
      definition: def,
      request: req,
      deadline: Date.now() + timeoutMs,
      stream: opts.stream === true,
      isolation,
      host_tools: hostSpecs,
    };
    if (memoryContext !== '') job.memory_context = memoryContext;
    if (run !== undefined) {
      job.durable = true;
      if (replay !== undefined) job.replay = replay;
    }
    // A shadow run's tools are refused anyway: nothing of it waits for a person.
    if (opts.shadow !== true) {
      const approvals = this.#approvalsOf(def);
      if (approvals.length > 0) job.approvals = approvals;
    }
    // Built only when needed: an Error captures a stack trace, which costs more than a fast execution.
    const timeoutError = () =>
      new CaxtonError('timeout', `agent "${def.name}" did not finish within ${timeoutMs} ms (limits.timeout)`, {
        timeout_ms: timeoutMs,
      });

    // The agent's deadline is our own timer in every mode, so that a 'timeout' raised inside the
    // task (an LLM provider's per-call timeout) is not mistaken for limits.timeout. In pooled modes
    // the pool's own deadline is only a backstop.
    const deadline = new Deadline(timeoutMs, opts.signal, opts.cancelOn);
    const { signal } = deadline;
    try {
      if (isolation === 'context') {
        const deps = opts.shadow
          ? { ...this.#deps, tools: shadowTools(this.#deps.tools, this.#hostToolsOf(hostSpecs)) }
          : this.#contextDeps(hostSpecs);
        try {
          if (remote !== undefined)
            return await remote.run(job, { signal, ...(opts.onEvent && { emit: opts.onEvent }) });
          if (def.wasm !== undefined)
            return await this.#wasm.run(job, deps.tools, {
              signal,
              ...(opts.onEvent && { emit: opts.onEvent }),
              message: req.message,
              ...(run && { record: run.record }),
            });
          return await runAgent(job, deps, {
            signal,
            ...(opts.onEvent && { emit: opts.onEvent }),
            ...(run && { record: run.record }),
          });
        } catch (e) {
          if (deadline.timedOut()) throw timeoutError();
          if (deadline.cancelled())
            throw signal.reason instanceof CaxtonError && signal.reason.code === 'cancelled'
              ? signal.reason
              : new CaxtonError('cancelled', 'the client went away; the execution was cancelled');
          throw e;
        }
      }
      const payload: TaskPayload = { job, setup: await this.#shippedSetup() };
      try {
        return (await this.#pool(isolation).run(payload, {
          timeoutMs: timeoutMs + POOL_DEADLINE_SLACK_MS,
          signal,
          ...(opts.onEvent && { onEvent: (e: unknown) => opts.onEvent!(e as ExecutionEvent) }),
          onCall: (method, args) => this.#hostCall(job, signal, method, args, run),
          // The same setup object while no script changed: it crosses to each member once.
          sticky: STICKY_PAYLOAD,
        })) as AgentResponse;
      } catch (e) {
        if (deadline.timedOut()) throw timeoutError();
        throw e;
      }
    } finally {
      deadline.dispose();
    }
  }

  /**
   * A host call from the task of a `worker`/`process` execution: runs a host tool with the
   * allowlist, deadline and signal of the execution as known here (never as the task says), or
   * records a built-in's call the task reports in the tool audit, through the same hook as a
   * call made here (`hostTools.onCalled`).
   */
  async #hostCall(
    job: ExecutionJob,
    signal: AbortSignal,
    method: string,
    args: unknown,
    run: RunContext | undefined,
  ): Promise<ToolResult | null> {
    if (method === RUN_STEPS_METHOD) {
      // Committed under this execution's own run, whatever the task says.
      if (run === undefined)
        throw new CaxtonError('invalid_request', 'the task recorded steps of a run that is not durable');
      await run.record(parseRunSteps(args));
      return null;
    }
    if (method === TOOL_CALLED_METHOD) {
      const call = parseReportedCall(args);
      const tool = this.#deps.tools.get(call.name);
      // Only what the task may have run is recorded: a built-in that records nothing itself,
      // allowed to this agent, attributed to this execution (its context is known here).
      if (tool === undefined || tool.audits === true || !allowsTool(job.definition.tools as string[], call.name))
        throw new CaxtonError('invalid_request', `the task reported a call of "${call.name}", which it cannot run`, {
          name: call.name,
        });
      this.hostTools.onCalled?.({ ...call, ctx: toolContext(job, signal) });
      return null;
    }
    if (method === TOOL_REFUSED_METHOD) {
      const call = parseHostToolCall(args);
      const reason = await ruleRefusal(job.approvals ?? [], call.name, call.args);
      this.hostTools.onRefused?.(call.name, call.args, toolContext(job, signal), reason, 'denied');
      return null;
    }
    if (method !== HOST_TOOL_METHOD)
      throw new CaxtonError('not_supported', `the execution task called the unknown host method "${method}"`, {
        method,
      });
    const call = parseHostToolCall(args);
    const ctx = toolContext(job, signal);
    if (!this.#tracer) return this.hostTools.invoke(job.definition.tools as string[], call.name, call.args, ctx);
    // The task's own spans are not recorded (no tracer there): the host tool call gets its span here.
    const span = startSpan(this.#tracer, spanName('tool.call', call.name), job.request.traceparent);
    if (span.isRecording()) {
      giveAttributes(span, { 'caxton.agent': job.definition.name, 'caxton.tool': call.name });
      ctx.traceparent = traceparentOf(span);
    }
    try {
      const r = await withSpan(span, () =>
        this.hostTools.invoke(job.definition.tools as string[], call.name, call.args, ctx),
      );
      if (r.is_error) span.setStatus({ code: SpanStatusCode.ERROR, message: r.content.slice(0, 200) });
      span.end();
      return r;
    } catch (e) {
      endWithError(span, e);
      throw e;
    }
  }

  /** Memory (src/memory): stores a successful execution of an agent with `[memory] auto_store` (in the background). */
  #remember(def: AgentDefinition, req: InvokeRequest, res: AgentResponse): AgentResponse {
    if (def.memory.enabled && def.memory.auto_store) this.memory?.remember(def, req, res);
    return res;
  }

  async close(): Promise<void> {
    // Runs stopped by the shutdown stay unfinished: the next start resumes them.
    this.runs?.stopping();
    this.#wasm.close();
    await Promise.all([...this.#pools.values()].map((p) => p.close()));
    this.#pools.clear();
  }
}

/**
 * This node's runs in flight against `[execution] max_in_flight`: past it a new run is refused at
 * once with 429 and Retry-After, before it holds anything, rather than every run on the node
 * slowing down together as memory and the event loop fill.
 */
class InFlight {
  count = 0;

  constructor(
    readonly max: number,
    private readonly metrics: Metrics | undefined,
  ) {}

  take(): void {
    if (this.count >= this.max) {
      this.metrics?.limitRejected('in_flight', 'node');
      throw new CaxtonError(
        'rate_limited',
        `this node already has ${this.max} runs in flight, its limit ([execution] max_in_flight); retry in ${IN_FLIGHT_RETRY_S} s`,
        { limit: 'in_flight', scope: 'node', value: this.max, retry_after: IN_FLIGHT_RETRY_S },
      );
    }
    this.count++;
  }

  give(): void {
    this.count--;
  }
}

/** Retry-After of a run refused by `max_in_flight`: runs in flight end within seconds of one another. */
const IN_FLIGHT_RETRY_S = 1;

/** A run's hold on the node's in-flight count and on its principal's and agent's limits (when they apply). */
class NodeSlot implements ExecutionSlot {
  readonly ok = true;
  #released = false;

  constructor(
    private readonly node: InFlight,
    private readonly inner: ExecutionSlot | undefined,
  ) {}

  record(tokens: number): void {
    this.inner?.record(tokens);
  }

  release(usage?: { tokens: number }): void {
    if (this.#released) return;
    this.#released = true;
    this.node.give();
    this.inner?.release(usage);
  }
}

/** The response as callers see it: the per-turn figures are the execution record's only. */
function withoutTurns(res: AgentResponse): AgentResponse {
  if (res.model_turns !== undefined) delete res.model_turns;
  return res;
}

/** The same tools as the model would see, each answering with SHADOW_TOOL_REFUSAL instead of running. */
function shadowTools(builtins: ToolRegistry, host: readonly Tool[]): ToolRegistry {
  const tools = new ToolRegistry();
  for (const t of [...builtins.list(), ...host]) {
    if (tools.get(t.name)) continue;
    tools.register({
      name: t.name,
      description: t.description,
      input_schema: t.input_schema,
      invoke: () => Promise.resolve({ content: SHADOW_TOOL_REFUSAL, is_error: true }),
    });
  }
  return tools;
}

/**
 * An execution's events as its caller receives them, scrubbed of the configured secrets. The
 * streamed text is scrubbed as one text, not token by token: a secret the model streams in pieces
 * holds no secret in any one piece (src/shared/stream-scrub.ts). The text held back is released
 * before any other event, so the caller sees everything in the order it happened, and by `end()`.
 */
function scrubbedEvents(onEvent: (e: ExecutionEvent) => void): { emit: (e: ExecutionEvent) => void; end: () => void } {
  const text = new StreamScrubber();
  const release = (t: string): void => {
    if (t !== '') onEvent({ type: 'token', text: t });
  };
  return {
    emit(e) {
      if (e.type === 'token') return release(text.push(e.text));
      release(text.flush());
      onEvent(scrubSecretsIn(e));
    },
    end: () => release(text.flush()),
  };
}

/**
 * An execution's span attributes, made at its end as one object of one shape per case (with a
 * conversation or without): who ran and in which conversation, then what ran it, in that order on
 * the wire. Added one by one, they would grow the object's property store three times per
 * execution.
 */
function executeSpanAttributes(
  agent: string,
  conversation: string | undefined,
  res: AgentResponse,
  system: string,
): Attributes {
  return conversation === undefined
    ? {
        'caxton.agent': agent,
        'caxton.execution_id': res.execution_id,
        'caxton.isolation': res.isolation,
        'gen_ai.system': system,
        'gen_ai.provider.name': system,
        'caxton.provider': res.provider,
        'gen_ai.request.model': res.model,
        'caxton.turns': res.turns,
        'gen_ai.usage.input_tokens': res.usage.input_tokens,
        'gen_ai.usage.output_tokens': res.usage.output_tokens,
      }
    : {
        'caxton.agent': agent,
        'caxton.conversation_id': conversation,
        'caxton.execution_id': res.execution_id,
        'caxton.isolation': res.isolation,
        'gen_ai.system': system,
        'gen_ai.provider.name': system,
        'caxton.provider': res.provider,
        'gen_ai.request.model': res.model,
        'caxton.turns': res.turns,
        'gen_ai.usage.input_tokens': res.usage.input_tokens,
        'gen_ai.usage.output_tokens': res.usage.output_tokens,
      };
}
