import type { AgentDefinition, AgentRegistry } from '../agents/index.js';
import type { ExecutionSlot, LimitSet, PrincipalLimiter } from '../auth/caller-limits.js';
import type { ServerConfig } from '../config/index.js';
import type { Metrics } from '../observability/metrics.js';
import { withSpan, type Tracer } from '../observability/trace-context.js';
import { CaxtonError } from '../shared/errors.js';
import { timeOrderedUuid } from '../shared/ids.js';
import { ToolRegistry } from '../tools/index.js';
import { ContextTools } from './context-tools.js';
import { Deadline, type CancelHook } from './deadline.js';
import { buildDeps, llmSetup, setupShipper, type LlmSetup } from './deps.js';
import { Admission, type ExecutionLimit } from './pipeline/admission.js';
import { HostCallRelay } from './pipeline/host-calls.js';
import { chooseIsolation, IsolationPools } from './pipeline/isolation-choice.js';
import { JobBuilder } from './pipeline/job.js';
import { ExecutionRecorder, type ExecutionRecord } from './pipeline/record.js';
import { runInThread, runPooled } from './pipeline/run.js';
import { scrubbed, withoutTurns } from './pipeline/scrub.js';
import type { ExecutionLog } from './records/record-model.js';
import { checkRequest } from './request-checks.js';
import type { ExecutionDeps } from './run-agent.js';
import { DurableRuns, type RunContext, type RunJournal, type RunOrigin } from './runs/index.js';
import type { AgentResponse, ExecutionEvent, ExecutionJob, ExecutionMemory, InvokeRequest } from './types.js';
import { UnlistedTools } from './unlisted-tools.js';
import { WasmAgents } from './wasm-agent.js';

export { SHADOW_TOOL_REFUSAL } from './context-tools.js';
export type { ExecutionRecord } from './pipeline/record.js';

export interface InvokeOptions {
  /** Aborted when the client goes away. */
  signal?: AbortSignal;
  /**
   * The caller's cancellation as a callback instead of a signal: called once, when the execution
   * starts, with the function that cancels it (src/api/sse-stream.ts: disconnectHook). Cheaper than
   * `signal`: the execution's own deadline controller is then the request's only AbortController.
   */
  cancelOn?: CancelHook;
  stream?: boolean;
  onEvent?: (e: ExecutionEvent) => void;
  /** Who runs this execution, and their effective limits (src/auth/caller-limits.ts); needs `ExecutorOptions.limiter`. */
  limit?: ExecutionLimit;
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
  /**
   * A message's run on its delivery's first hand-out (a cluster's queue knows it: JetStream's
   * delivery count 1, no attempt before, never published again): no run of the message can exist yet, so its durable run
   * is written only once it records a step that must be on disk (src/execution/runs/pg-runs.ts).
   */
  firstDelivery?: boolean;
}

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
  /** Limits per principal and per agent (src/auth/caller-limits.ts): checked before any LLM call, tokens charged after. */
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

/**
 * Runs agent requests: checks the request against the agent's current definition, then runs it
 * through the pipeline's stages (src/execution/pipeline, ADR 0146): admission (a slot against the
 * node's and the caller's limits), record (span, metrics, execution record), scrub (of what it
 * hands back), the job and its isolation, and the run (in this thread or a pooled task, host calls
 * relayed).
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
  /** Memory (src/memory): fills `{{memory_context}}` and stores successful executions, per the agent's `[memory]`. Set by the server. */
  memory: ExecutionMemory | undefined;
  /** Agents answered by another server (remote A2A agents, src/a2a): their runs call it; set by the server. */
  remote: RemoteAgentRunner | undefined;
  /** The tools a Claude Code agent that lists none runs with (`[agents.claude] unlisted_tools`); set by the server. */
  readonly unlisted = new UnlistedTools();
  /** Durable runs (src/execution/runs/durable.ts); undefined without a journal. */
  readonly runs: DurableRuns | undefined;
  readonly #registry: AgentRegistry;
  readonly #config: ServerConfig;
  readonly #setup: LlmSetup;
  readonly #deps: ExecutionDeps;
  readonly #shippedSetup: () => Promise<LlmSetup>;
  readonly #admission: Admission;
  readonly #recorder: ExecutionRecorder | undefined;
  readonly #jobs: JobBuilder;
  readonly #pools: IsolationPools;
  readonly #contextTools: ContextTools;
  readonly #hostCalls: HostCallRelay;
  /** WebAssembly agents' sandboxes (`[wasm]`): they run in the server process whatever the isolation mode. */
  readonly #wasm: WasmAgents;

  /** Throws 'conflict' when `opts.hostTools` already holds a tool with a built-in tool's name. */
  constructor(config: ServerConfig, registry: AgentRegistry, opts: ExecutorOptions = {}) {
    this.#config = config;
    this.#registry = registry;
    this.#setup = llmSetup(config);
    this.#deps = buildDeps(this.#setup);
    this.#shippedSetup = setupShipper(this.#setup, this.#deps.providers);
    this.hostTools = opts.hostTools ?? new ToolRegistry();
    const knownTool = (name: string): boolean => (this.#deps.tools.get(name) ?? this.hostTools.get(name)) !== undefined;
    this.#admission = new Admission(config.execution.max_in_flight, opts);
    this.#recorder = ExecutionRecorder.of({ ...opts, knownTool, providers: this.#setup.providers });
    this.#jobs = new JobBuilder(config, this.hostTools);
    this.#pools = new IsolationPools(config.execution);
    this.#contextTools = new ContextTools(this.#deps, this.hostTools);
    this.#hostCalls = new HostCallRelay(this.#deps.tools, this.hostTools, opts.tracer);
    this.#wasm = new WasmAgents({ inThreadFuel: config.tools.limits.in_thread_fuel });
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
    if (mode !== 'context') await this.#pools.get(mode).warm();
  }

  stats() {
    return this.#pools.stats();
  }

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
   * retry_after) when one is reached (src/execution/pipeline/admission.ts). Every way a run starts
   * comes through here — invoke(), the streaming routes, background and resumed runs, message
   * deliveries. invoke() calls it itself; a streaming route calls it before opening the stream and
   * passes the slot as `InvokeOptions.admitted` (and releases it should it not get to invoke()).
   */
  admit(name: string, limit?: InvokeOptions['limit']): ExecutionSlot {
    return this.#admission.admit(name, limit);
  }

  /** Runs in flight on this node now (`[execution] max_in_flight` bounds them). */
  get inFlight(): number {
    return this.#admission.inFlight;
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

  /** One execution of a run, recorded: `run` records its steps and holds what a resumed run reuses. */
  async #once(
    id: string,
    def: AgentDefinition,
    req: InvokeRequest,
    opts: InvokeOptions,
    ref: string,
    run: RunContext | undefined,
  ): Promise<AgentResponse> {
    const recorder = this.#recorder;
    if (!recorder) return withoutTurns(await this.#run(id, def, req, opts, run));
    const rec = recorder.begin(id, def, req, opts.shadow === true, ref);
    try {
      const res = await (rec.span
        ? withSpan(rec.span, () => this.#run(id, def, rec.req, opts, run))
        : this.#run(id, def, rec.req, opts, run));
      recorder.end(rec, res, undefined);
      return withoutTurns(res);
    } catch (e) {
      recorder.end(rec, undefined, e);
      throw e;
    }
  }

  /** One execution, scrubbed (src/execution/pipeline/scrub.ts), then remembered. */
  async #run(
    id: string,
    def: AgentDefinition,
    req: InvokeRequest,
    opts: InvokeOptions,
    run: RunContext | undefined,
  ): Promise<AgentResponse> {
    const res = await scrubbed(opts, (o) => this.#execute(id, def, req, o, run));
    return opts.shadow ? res : this.#remember(def, req, res);
  }

  /** The job, in its isolation, under its deadline. */
  async #execute(
    id: string,
    def: AgentDefinition,
    req: InvokeRequest,
    opts: InvokeOptions,
    run: RunContext | undefined,
  ): Promise<AgentResponse> {
    const remote = this.remote?.handles(def) === true ? this.remote : undefined;
    const isolation = chooseIsolation(
      def,
      opts.shadow === true,
      remote !== undefined,
      this.#config.execution.isolation,
    );
    const job = await this.#jobs.build(id, def, req, opts, run, isolation, this.memory);
    const deadline = new Deadline(def.limits.timeout_ms, opts.signal, opts.cancelOn);
    try {
      if (isolation === 'context') {
        const deps = opts.shadow
          ? this.#contextTools.shadowDepsFor(job.host_tools)
          : this.#contextTools.depsFor(job.host_tools);
        return await runInThread(job, deadline, opts, run, { deps, remote, wasm: this.#wasm });
      }
      return await runPooled(job, deadline, opts, this.#pools.get(isolation), this.#shippedSetup, (method, args) =>
        this.#hostCalls.relay(job, deadline.signal, method, args, run),
      );
    } finally {
      deadline.dispose();
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
    await this.#pools.close();
  }
}
