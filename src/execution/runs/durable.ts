/**
 * Durable runs on the executor: every run is opened in the journal before it starts, each of its
 * steps committed as it goes (runAgent's `record`), and its end recorded. A second start of the
 * same work — a message redelivered, a request repeated with its Idempotency-Key — finds the run:
 * a finished one answers with its recorded response, an unfinished one resumes from its last
 * step; the same key running here is joined, never run twice. At start the server resumes the
 * runs an earlier process left unfinished (`resumeUnfinished`), except those started by a
 * message, which resume when their delivery comes again.
 */
import type { AgentDefinition } from '../../agents/index.js';
import type { ExecutionSlot } from '../../auth/limits.js';
import { CaxtonError, isCaxtonError } from '../../shared/errors.js';
import { timeOrderedUuid } from '../../shared/ids.js';
import type { CalledTool } from '../../tools/index.js';
import type { InvokeOptions } from '../executor.js';
import type { AgentResponse, InvokeRequest } from '../types.js';
import {
  idempotencyRunKey,
  interruptedResult,
  messageRunKey,
  replayOf,
  type RunJournal,
  type RunRecord,
  type RunReplay,
  type RunStep,
} from './model.js';

/** What one execution of a durable run is given: where its steps go, and what a resumed run reuses. */
export interface RunContext {
  replay?: RunReplay;
  record(steps: RunStep[]): Promise<void>;
}

/** The executor's side of durable runs. */
export interface RunHost {
  run(
    id: string,
    def: AgentDefinition,
    req: InvokeRequest,
    opts: InvokeOptions,
    ref: string,
    run: RunContext,
  ): Promise<AgentResponse>;
  /** The definition a stored run's agent resolves to today (throws as an invoke would). */
  resolve(ref: string, req: InvokeRequest): Promise<AgentDefinition>;
  admit(name: string, limit: InvokeOptions['limit']): ExecutionSlot | undefined;
  isIdempotent(tool: string): boolean;
  /** The tool audit: an interrupted call that is not run again is recorded there. */
  audit(call: CalledTool): void;
  onError?(e: unknown, runId: string): void;
}

function errorOf(e: unknown): { code: string; message: string } {
  return isCaxtonError(e)
    ? { code: e.code, message: e.message }
    : { code: 'internal', message: e instanceof Error ? e.message : String(e) };
}

export class DurableRuns {
  /** Runs with a key running in this process: a second start of the same key joins its run. */
  readonly #byKey = new Map<string, Promise<AgentResponse>>();
  /** How to stop each run running in this process. */
  readonly #cancels = new Map<string, AbortController>();
  #stopping = false;

  constructor(
    readonly journal: RunJournal,
    private readonly host: RunHost,
  ) {}

  /** Runs `req` as a durable run, or joins, answers or resumes the run of the same key. */
  invoke(
    def: AgentDefinition,
    req: InvokeRequest,
    opts: InvokeOptions,
    ref: string,
    opened?: (id: string) => void,
  ): Promise<AgentResponse> {
    const key =
      req.message_id !== undefined
        ? messageRunKey(req.message_id, def.name)
        : opts.idempotencyKey !== undefined
          ? idempotencyRunKey(req.principal, def.name, opts.idempotencyKey)
          : null;
    if (key === null) return this.#open(null, def, req, opts, ref, opened);
    const running = this.#byKey.get(key);
    if (running !== undefined) return running;
    return this.#track(key, this.#open(key, def, req, opts, ref, opened));
  }

  #track(key: string, p: Promise<AgentResponse>): Promise<AgentResponse> {
    this.#byKey.set(key, p);
    const forget = (): void => {
      if (this.#byKey.get(key) === p) this.#byKey.delete(key);
    };
    p.then(forget, forget);
    return p;
  }

  async #open(
    key: string | null,
    def: AgentDefinition,
    req: InvokeRequest,
    opts: InvokeOptions,
    ref: string,
    opened: ((id: string) => void) | undefined,
  ): Promise<AgentResponse> {
    const { run, steps, created } = await this.journal.open({
      id: opts.runId ?? `exec_${timeOrderedUuid()}`,
      key,
      agent: ref,
      origin: opts.origin ?? (req.message_id !== undefined ? 'message' : 'invoke'),
      principal: req.principal ?? null,
      request: req,
    });
    opened?.(run.id);
    if (created) return this.#go(run.id, def, req, opts, ref, undefined);
    // Done before: its answer, without running anything again.
    if (run.status === 'completed' && run.response !== null) return run.response;
    // The run continues the request it started with (its prompt, its history); the trace is this delivery's.
    const request =
      req.traceparent !== undefined ? Object.assign({}, run.request, { traceparent: req.traceparent }) : run.request;
    return this.#resume(run, steps, def, request, opts, ref);
  }

  /** `steps` undefined: read once the run is marked resumed (on a cluster, once this node took it over). */
  async #resume(
    run: RunRecord,
    known: RunStep[] | undefined,
    def: AgentDefinition,
    req: InvokeRequest,
    opts: InvokeOptions,
    ref: string,
  ): Promise<AgentResponse> {
    let steps: RunStep[];
    try {
      await this.journal.resumed(run.id);
      steps = known ?? (await this.journal.get(run.id))?.steps ?? [];
    } catch (e) {
      this.journal.release?.(run.id);
      throw e;
    }
    const replay = replayOf(steps, (tool) => this.host.isIdempotent(tool));
    this.#auditInterrupted(run, steps, replay);
    return this.#go(run.id, def, req, opts, ref, replay);
  }

  /** Each call found started and unfinished that is not run again, in the tool audit. */
  #auditInterrupted(run: RunRecord, steps: RunStep[], replay: RunReplay): void {
    for (const s of steps) {
      if (s.kind !== 'tool_start' || replay.tools[`${s.turn}:${s.id}`]?.state !== 'interrupted') continue;
      const args = replay.models[s.turn]?.tool_calls.find((c) => c.id === s.id)?.arguments ?? {};
      this.host.audit({
        name: s.name,
        args,
        ctx: {
          agent: run.agent.split('@')[0]!,
          execution_id: run.id,
          ...(run.request.conversation_id !== undefined && { conversation_id: run.request.conversation_id }),
          ...(run.principal !== null && { principal: run.principal }),
          deadline: Date.now(),
          signal: AbortSignal.abort(),
        },
        started: Date.now(),
        duration_us: 0,
        outcome: 'error',
        result: interruptedResult(s.name),
      });
    }
  }

  /** Runs in this process by id, settled once their end is recorded. */
  readonly #done = new Map<string, Promise<unknown>>();

  #go(
    id: string,
    def: AgentDefinition,
    req: InvokeRequest,
    opts: InvokeOptions,
    ref: string,
    replay: RunReplay | undefined,
  ): Promise<AgentResponse> {
    const p = this.#execute(id, def, req, opts, ref, replay);
    this.#done.set(id, p);
    const forget = (): void => {
      if (this.#done.get(id) === p) this.#done.delete(id);
    };
    p.then(forget, forget);
    return p;
  }

  async #execute(
    id: string,
    def: AgentDefinition,
    req: InvokeRequest,
    opts: InvokeOptions,
    ref: string,
    replay: RunReplay | undefined,
  ): Promise<AgentResponse> {
    const cancel = new AbortController();
    this.#cancels.set(id, cancel);
    const signal = opts.signal ? AbortSignal.any([opts.signal, cancel.signal]) : cancel.signal;
    const ctx: RunContext = { record: (steps) => this.journal.append(id, steps) };
    if (replay !== undefined) ctx.replay = replay;
    try {
      const res = await this.host.run(id, def, req, Object.assign({}, opts, { signal }), ref, ctx);
      await this.#finish(id, { status: 'completed', response: res });
      return res;
    } catch (e) {
      // A run stopped by the server's shutdown stays unfinished: the next start resumes it.
      if (!this.#stopping) {
        const error = errorOf(e);
        await this.#finish(id, { status: error.code === 'cancelled' ? 'cancelled' : 'failed', error });
      }
      throw e;
    } finally {
      this.#cancels.delete(id);
    }
  }

  async #finish(id: string, outcome: Parameters<RunJournal['finish']>[1]): Promise<void> {
    try {
      await this.journal.finish(id, outcome);
    } catch (e) {
      this.host.onError?.(e, id);
    }
  }

  /**
   * Starts a background run and resolves with its id once it is recorded; the run goes on after
   * the caller is answered, its outcome in the journal.
   */
  async start(ref: string, req: InvokeRequest, opts: InvokeOptions): Promise<string> {
    const def = await this.host.resolve(ref, req);
    const slot = opts.admitted ?? this.host.admit(def.name, opts.limit);
    let opened!: (id: string) => void;
    const recorded = new Promise<string>((r) => (opened = r));
    const o = Object.assign({}, opts, { origin: opts.origin ?? 'background', admitted: undefined });
    const done = this.invoke(def, req, o, ref, opened);
    done.then(
      (res) => slot?.release({ tokens: res.usage.input_tokens + res.usage.output_tokens }),
      () => slot?.release(),
    );
    // Failed before it was recorded (the journal refused it): the caller hears why.
    return Promise.race([recorded, done.then(() => recorded)]);
  }

  /** Resumes the runs an earlier process left running; answers how many. Message runs wait for their redelivery. */
  async resumeUnfinished(limit = 1000): Promise<number> {
    const runs = await this.journal.unfinished(limit);
    let n = 0;
    for (const r of runs) {
      if (r.origin === 'message' || this.#cancels.has(r.id) || (r.key !== null && this.#byKey.has(r.key))) continue;
      n++;
      const p = this.#resumeStored(r);
      if (r.key !== null) this.#track(r.key, p);
      p.catch((e: unknown) => this.host.onError?.(e, r.id));
    }
    return n;
  }

  async #resumeStored(r: RunRecord): Promise<AgentResponse> {
    let def: AgentDefinition;
    try {
      def = await this.host.resolve(r.agent, r.request);
    } catch (e) {
      // The agent is gone or changed beyond running this request: the run ends with the reason.
      await this.#finish(r.id, { status: 'failed', error: errorOf(e) });
      throw e;
    }
    return this.#resume(r, undefined, def, r.request, { origin: r.origin }, r.agent);
  }

  /** Cancels a run: stops it when it runs here, else marks an unfinished one cancelled. Undefined: no such run. */
  async cancel(id: string): Promise<RunRecord | undefined> {
    const running = this.#cancels.get(id);
    if (running !== undefined) {
      running.abort(new CaxtonError('cancelled', 'the run was cancelled'));
      await this.#done.get(id)?.catch(() => undefined);
    } else {
      const stored = await this.journal.get(id);
      if (stored === undefined) return undefined;
      if (stored.run.status === 'running')
        await this.journal.finish(id, {
          status: 'cancelled',
          error: { code: 'cancelled', message: 'the run was cancelled' },
        });
    }
    return (await this.journal.get(id))?.run;
  }

  /** Whether the run is running in this process. */
  isRunningHere(id: string): boolean {
    return this.#cancels.has(id);
  }

  /** The server is shutting down: runs it stops stay unfinished, to be resumed at the next start. */
  stopping(): void {
    this.#stopping = true;
  }
}
