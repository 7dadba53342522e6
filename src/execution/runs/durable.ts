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
import type { ExecutionSlot, LimitSet } from '../../auth/caller-limits.js';
import { agentOfRef } from '../../auth/principal.js';
import { CaxtonError, isCaxtonError } from '../../shared/errors.js';
import { timeOrderedUuid } from '../../shared/ids.js';
import type { CalledTool } from '../../tools/index.js';
import type { CancelHook } from '../deadline.js';
import type { InvokeOptions } from '../executor.js';
import type { AgentResponse, InvokeRequest } from '../types.js';
import { awaitingApproval } from './approval.js';
import {
  approvalsOf,
  cancelledRunError,
  idempotencyRunKey,
  interruptedResult,
  messageRunKey,
  replayOf,
  type RunJournal,
  type RunRecord,
  type RunReplay,
  type RunStep,
  type Takeover,
} from './run-model.js';

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
  /**
   * The limits a run resumed with no caller present (at start, after a decision) is charged
   * against: its principal's today. Throws 403 principal_unknown for a key revoked since: work
   * started on its behalf does not go on.
   */
  limitsOf?(principal: string): LimitSet | undefined;
  isIdempotent(tool: string): boolean;
  /** The tool audit: an interrupted call that is not run again is recorded there. */
  audit(call: CalledTool): void;
  onError?(e: unknown, runId: string): void;
}

/**
 * What DurableRuns tells its watchers, as it happens in this process: `changed` after every
 * committed write of a run (steps, status), and the two moments a person is involved. A change
 * made by another node of a cluster is not heard here: followers also read the journal.
 */
export type RunNotice =
  | { type: 'changed'; run_id: string }
  | { type: 'awaiting_approval'; run_id: string; agent: string; tool: string; call_id: string }
  | {
      type: 'approval_decided';
      run_id: string;
      agent: string;
      tool: string;
      call_id: string;
      decision: 'approved' | 'denied';
      by: string;
    };

/** A refusal by a principal's or agent's limit (not a run held by another node, which is rate_limited too). */
function limitRefusal(e: unknown): e is CaxtonError {
  return (
    isCaxtonError(e) && e.code === 'rate_limited' && (e.details as { limit?: unknown } | null)?.limit !== undefined
  );
}

function retryAfterMs(e: CaxtonError): number {
  const s = (e.details as { retry_after?: unknown }).retry_after;
  return Math.max(1_000, (typeof s === 'number' ? s : 60) * 1_000);
}

function errorOf(e: unknown): { code: string; message: string } {
  return isCaxtonError(e)
    ? { code: e.code, message: e.message }
    : { code: 'internal', message: e instanceof Error ? e.message : String(e) };
}

/**
 * How a run running here is stopped (`DurableRuns.cancel`, a run lost to another node): handed to
 * the execution as its `cancelOn` beside the caller's own, so a run costs no AbortController of its
 * own besides its deadline's. A cancel before the execution took the hook is applied when it does.
 */
class RunCancel {
  readonly hook: CancelHook;
  #cancel: ((reason?: unknown) => void) | undefined;
  #reason: unknown;
  #aborted = false;

  constructor(caller: CancelHook | undefined) {
    this.hook = (cancel) => {
      this.#cancel = cancel;
      if (this.#aborted) cancel(this.#reason);
      caller?.(cancel);
    };
  }

  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#cancel?.(reason);
  }
}

export class DurableRuns {
  /** Runs with a key running in this process: a second start of the same key joins its run. */
  readonly #byKey = new Map<string, Promise<AgentResponse>>();
  /** How to stop each run running in this process. */
  readonly #cancels = new Map<string, RunCancel>();
  #stopping = false;
  /** Watchers of every run, and of one run by id. */
  readonly #watchers = new Set<(n: RunNotice) => void>();
  readonly #runWatchers = new Map<string, Set<() => void>>();

  constructor(
    readonly journal: RunJournal,
    private readonly host: RunHost,
  ) {
    // Cancelled through another node, or taken over by one: it stops here as a cancel would stop it.
    journal.onLost?.((id, reason) => this.#cancels.get(id)?.abort(reason));
  }

  /** Tells `f` of every notice about every run; answers the function that stops it. */
  watch(f: (n: RunNotice) => void): () => void {
    this.#watchers.add(f);
    return () => this.#watchers.delete(f);
  }

  /** Tells `f` each time run `id` changes here (a step committed, its status); answers the function that stops it. */
  watchRun(id: string, f: () => void): () => void {
    let set = this.#runWatchers.get(id);
    if (set === undefined) this.#runWatchers.set(id, (set = new Set()));
    set.add(f);
    return () => {
      set.delete(f);
      if (set.size === 0 && this.#runWatchers.get(id) === set) this.#runWatchers.delete(id);
    };
  }

  #notify(n: RunNotice): void {
    if (n.type === 'changed') for (const f of this.#runWatchers.get(n.run_id) ?? []) this.#safely(f, n.run_id);
    for (const f of this.#watchers) this.#safely(() => f(n), n.run_id);
  }

  /** A watcher's fault is logged, never the run's. */
  #safely(f: () => void, id: string): void {
    try {
      f();
    } catch (e) {
      this.host.onError?.(e, id);
    }
  }

  #changed(id: string): void {
    this.#notify({ type: 'changed', run_id: id });
  }

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
    if (running !== undefined) {
      // Joined: a background start is answered with the run's id as soon as it is known.
      const id = this.#keyIds.get(key);
      if (opened !== undefined) {
        if (id !== undefined) opened(id);
        else this.#waitingIds.set(key, [...(this.#waitingIds.get(key) ?? []), opened]);
      }
      return running;
    }
    return this.#track(key, this.#open(key, def, req, opts, ref, opened));
  }

  /** The run id of each key running here, once opened; and the joiners waiting to hear it. */
  readonly #keyIds = new Map<string, string>();
  readonly #waitingIds = new Map<string, ((id: string) => void)[]>();

  #track(key: string, p: Promise<AgentResponse>): Promise<AgentResponse> {
    this.#byKey.set(key, p);
    const forget = (): void => {
      if (this.#byKey.get(key) !== p) return;
      this.#byKey.delete(key);
      this.#keyIds.delete(key);
      this.#waitingIds.delete(key);
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
    const origin = opts.origin ?? (req.message_id !== undefined ? 'message' : 'invoke');
    const { run, steps, created } = await this.journal.open({
      id: opts.runId ?? `exec_${timeOrderedUuid()}`,
      key,
      agent: ref,
      version: def.version,
      origin,
      principal: req.principal ?? null,
      request: req,
      // Read by id before it acts: a run started without waiting (`start`, answered with its id)
      // and a keyed request (a repeat finds it); any other run is written with its first step.
      lazy: opened === undefined && opts.idempotencyKey === undefined,
      ...(opts.firstDelivery === true && { firstDelivery: true }),
    });
    opened?.(run.id);
    if (key !== null) {
      this.#keyIds.set(key, run.id);
      for (const tell of this.#waitingIds.get(key) ?? []) tell(run.id);
      this.#waitingIds.delete(key);
    }
    if (created) return this.#go(run.id, def, req, opts, ref, undefined);
    // Done before: its answer, without running anything again.
    if (run.status === 'completed' && run.response !== null) return run.response;
    // Stopped by an operator: it stays stopped, whoever asks again.
    if (run.status === 'cancelled') throw cancelledRunError(run.id);
    // Still waiting for a person: the same answer, without replaying anything.
    const waiting =
      run.status === 'awaiting_approval' ? approvalsOf(steps).find((a) => a.decision === null) : undefined;
    if (waiting !== undefined) throw awaitingApproval(run.id, waiting);
    // The run continues the request it started with (its prompt, its history); the trace is this delivery's.
    const request =
      req.traceparent !== undefined ? Object.assign({}, run.request, { traceparent: req.traceparent }) : run.request;
    return this.#resume(run, steps, def, request, opts, ref);
  }

  /**
   * `steps` undefined: read once the run is marked resumed (on a cluster, once this node took it
   * over). `decided`: it goes on after a person's decision, which its `approval` step marks; any
   * other resume follows an interruption and is a step of its own. `takeover`: found left running
   * (resumeUnfinished), taken only while it still is.
   */
  async #resume(
    run: RunRecord,
    known: RunStep[] | undefined,
    def: AgentDefinition,
    req: InvokeRequest,
    opts: InvokeOptions,
    ref: string,
    decided = false,
    takeover?: Takeover,
  ): Promise<AgentResponse> {
    try {
      await this.journal.resumed(run.id, takeover);
    } catch (e) {
      // A takeover refused took nothing, and may have found a run this process holds: it stays held.
      if (takeover === undefined) this.journal.release?.(run.id);
      throw e;
    }
    let steps: RunStep[];
    try {
      // A step of its own, so that the gap since the last step before the interruption is seen.
      if (!decided) await this.journal.append(run.id, [{ kind: 'resumed', at: Date.now() }]);
      this.#changed(run.id);
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
    // The caller's signal and cancelOn stop the run as they are (the execution's deadline listens
    // to them); this run's own cancel joins them as one more cancelOn.
    const cancel = new RunCancel(opts.cancelOn);
    this.#cancels.set(id, cancel);
    // The one place a step gets its time: when it is handed to the journal, whether it comes from
    // this thread or from a worker's or process's task (the executor's `run_steps` host call).
    // One clock read per commit, shared by the steps committed together.
    const ctx: RunContext = {
      record: async (steps) => {
        const at = Date.now();
        for (const s of steps) s.at = at;
        await this.journal.append(id, steps);
        this.#changed(id);
      },
    };
    if (replay !== undefined) ctx.replay = replay;
    try {
      const res = await this.host.run(id, def, req, Object.assign({}, opts, { cancelOn: cancel.hook }), ref, ctx);
      await this.#finish(id, { status: 'completed', response: res });
      return res;
    } catch (e) {
      // Paused for a person: nothing is held; a decision resumes it.
      if (isCaxtonError(e) && e.code === 'awaiting_approval') {
        const paused = await this.journal.paused(id).then(
          () => true,
          (err: unknown) => (this.host.onError?.(err, id), false),
        );
        if (paused) {
          this.#changed(id);
          const d = (e.details ?? {}) as { tool?: unknown; call_id?: unknown };
          this.#notify({
            type: 'awaiting_approval',
            run_id: id,
            agent: def.name,
            tool: String(d.tool),
            call_id: String(d.call_id),
          });
        }
        throw e;
      }
      // A run stopped by the server's shutdown stays unfinished: the next start resumes it.
      if (!this.#stopping) {
        const error = errorOf(e);
        await this.#finish(id, { status: error.code === 'cancelled' ? 'cancelled' : 'failed', error });
      }
      throw e;
    } finally {
      // A decision may already have resumed it here (it paused above): that execution's handle stays.
      if (this.#cancels.get(id) === cancel) this.#cancels.delete(id);
    }
  }

  async #finish(id: string, outcome: Parameters<RunJournal['finish']>[1]): Promise<void> {
    try {
      await this.journal.finish(id, outcome);
      this.#changed(id);
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

  /**
   * Resumes the runs left running (`takeover`: by an earlier process, at a start; on a cluster,
   * those whose lease expired, while this process runs); answers how many. Message runs wait for
   * their redelivery.
   */
  async resumeUnfinished(takeover: Takeover = 'left', limit = 1000): Promise<number> {
    const runs = await this.journal.unfinished(limit, takeover);
    let n = 0;
    for (const r of runs) {
      if (r.origin === 'message' || this.#runsHere(r)) continue;
      n++;
      this.#resumeLater(r, 0, takeover);
    }
    return n;
  }

  /** `r` runs in this process now, or ends here (its last write not yet committed). */
  #runsHere(r: RunRecord): boolean {
    return this.#cancels.has(r.id) || this.#done.has(r.id) || (r.key !== null && this.#byKey.has(r.key));
  }

  /**
   * Resumes a stored run once its principal's and agent's limits admit it: a run refused by a
   * limit (a concurrency limit full of other resumed runs, tokens spent for the window) stays
   * unfinished and is tried again when the limit says to retry.
   */
  #resumeLater(r: RunRecord, delayMs: number, takeover: Takeover): void {
    const attempt = async (): Promise<void> => {
      if (this.#stopping || this.#runsHere(r)) return;
      // Waited for a limit: a repeated request may have finished or cancelled it meanwhile.
      if (delayMs > 0 && (await this.journal.get(r.id))?.run.status !== 'running') return;
      const p = this.#resumeStored(r, takeover);
      if (r.key !== null) this.#track(r.key, p);
      await p;
    };
    const go = (): void =>
      void attempt().catch((e: unknown) =>
        limitRefusal(e) ? this.#resumeLater(r, retryAfterMs(e), takeover) : this.host.onError?.(e, r.id),
      );
    if (delayMs === 0) go();
    else setTimeout(go, delayMs).unref();
  }

  /**
   * The agent a stored run resolves to today and the slot it is charged to: resumed with no caller
   * present, it counts against its principal's limits and its agent's all the same. A run whose
   * agent or principal is gone ends with the reason; a limit's refusal leaves it as it is.
   */
  async #admitStored(r: RunRecord): Promise<{ def: AgentDefinition; slot: ExecutionSlot | undefined }> {
    try {
      const def = await this.host.resolve(r.agent, r.request);
      const limit =
        r.principal === null ? undefined : { principalId: r.principal, limits: this.host.limitsOf?.(r.principal) };
      return { def, slot: this.host.admit(def.name, limit) };
    } catch (e) {
      if (!limitRefusal(e)) await this.#finish(r.id, { status: 'failed', error: errorOf(e) });
      throw e;
    }
  }

  /** Resumes a stored run charged to `slot`, given back with the tokens it used when the run ends or pauses. */
  #resumeAdmitted(
    r: RunRecord,
    def: AgentDefinition,
    slot: ExecutionSlot | undefined,
    decided = false,
    takeover?: Takeover,
  ): Promise<AgentResponse> {
    const p = this.#resume(r, undefined, def, r.request, { origin: r.origin }, r.agent, decided, takeover);
    if (slot !== undefined)
      p.then(
        (res) => slot.release({ tokens: res.usage.input_tokens + res.usage.output_tokens }),
        () => slot.release(),
      );
    return p;
  }

  async #resumeStored(r: RunRecord, takeover: Takeover): Promise<AgentResponse> {
    const { def, slot } = await this.#admitStored(r);
    return this.#resumeAdmitted(r, def, slot, false, takeover);
  }

  /**
   * Cancels a run: stops it when it runs here, else marks an unfinished one cancelled (on a
   * cluster the node running it sees that at its next lease renewal and stops it). Undefined: no such run.
   */
  async cancel(id: string): Promise<RunRecord | undefined> {
    const running = this.#cancels.get(id);
    if (running !== undefined) {
      running.abort(new CaxtonError('cancelled', 'the run was cancelled'));
      await this.#done.get(id)?.catch(() => undefined);
    } else {
      const stored = await this.journal.get(id);
      if (stored === undefined) return undefined;
      // Running elsewhere or waiting for a person: it ends here, and a decision or a resume finds it cancelled.
      if (stored.run.status === 'running' || stored.run.status === 'awaiting_approval') {
        await this.journal.finish(id, {
          status: 'cancelled',
          error: { code: 'cancelled', message: 'the run was cancelled' },
        });
        this.#changed(id);
      }
    }
    return (await this.journal.get(id))?.run;
  }

  /**
   * Records a decision on a call waiting for approval (`callId`, else the first waiting) and
   * resumes the run from its steps: approved, the call runs; denied, the model is told why.
   * Answers the run as it is after the decision; throws 'conflict' when nothing waits.
   */
  async decide(
    id: string,
    d: { callId?: string; decision: 'approved' | 'denied'; by: string; reason?: string },
  ): Promise<RunRecord | undefined> {
    const stored = await this.journal.get(id);
    if (stored === undefined) return undefined;
    const { run, steps } = stored;
    // A redelivery answering "still waiting" right now finishes first, so the resume below wins.
    if (run.key !== null) await this.#byKey.get(run.key)?.catch(() => undefined);
    const waiting = approvalsOf(steps).filter((a) => a.decision === null);
    const target = d.callId === undefined ? waiting[0] : waiting.find((a) => a.call_id === d.callId);
    if (run.status !== 'awaiting_approval' || target === undefined)
      throw new CaxtonError(
        'conflict',
        d.callId !== undefined && run.status === 'awaiting_approval'
          ? `run ${id} has no call "${d.callId}" waiting for approval; waiting: ${waiting.map((a) => a.call_id).join(', ') || 'none'}`
          : `run ${id} is ${run.status.replace('_', ' ')}: nothing in it waits for approval`,
        { run_id: id, status: run.status },
      );
    const step: RunStep = {
      kind: 'approval',
      turn: target.turn,
      id: target.call_id,
      decision: d.decision,
      by: d.by,
      at: Date.now(),
    };
    if (d.reason !== undefined && d.reason !== '') step.reason = d.reason;
    // Admitted before the decision is recorded: a limit's refusal reaches the person deciding, and nothing changes.
    const { def, slot } = await this.#admitStored(run);
    try {
      await this.journal.append(id, [step]);
    } catch (e) {
      slot?.release();
      throw e;
    }
    this.#changed(id);
    this.#notify({
      type: 'approval_decided',
      run_id: id,
      agent: agentOfRef(run.agent),
      tool: target.tool,
      call_id: target.call_id,
      decision: d.decision,
      by: d.by,
    });
    const resumed = this.#resumeAdmitted(run, def, slot, true);
    if (run.key !== null) this.#track(run.key, resumed);
    resumed.catch((e: unknown) => {
      if (!(isCaxtonError(e) && (e.code === 'awaiting_approval' || e.code === 'cancelled'))) this.host.onError?.(e, id);
    });
    // The run is running again once its resume is recorded; what it does next is in its steps.
    await Promise.race([this.#resumedRecorded(id), resumed.catch(() => undefined)]);
    return (await this.journal.get(id))?.run;
  }

  /** Resolves once the run has been marked running again (its resume recorded), polling the journal briefly. */
  async #resumedRecorded(id: string): Promise<void> {
    for (let i = 0; i < 50; i++) {
      const s = (await this.journal.get(id))?.run.status;
      if (s !== 'awaiting_approval') return;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Denies every approval waiting longer than `timeoutMs` (the model is told nobody approved in time). Answers how many. */
  async expireApprovals(timeoutMs: number): Promise<number> {
    const now = Date.now();
    let n = 0;
    for (const r of await this.journal.list({ status: 'awaiting_approval', limit: 1000 })) {
      const stored = await this.journal.get(r.id);
      const due = approvalsOf(stored?.steps ?? []).find(
        (a) => a.decision === null && now - a.requested_at >= timeoutMs,
      );
      if (due === undefined) continue;
      try {
        await this.decide(r.id, {
          callId: due.call_id,
          decision: 'denied',
          by: 'timeout',
          reason: `nobody approved it within ${Math.round(timeoutMs / 1000)} s ([approvals] timeout)`,
        });
        n++;
      } catch (e) {
        if (!(isCaxtonError(e) && e.code === 'conflict')) this.host.onError?.(e, r.id);
      }
    }
    return n;
  }

  /** Whether the run is running in this process. */
  isRunningHere(id: string): boolean {
    return this.#cancels.has(id);
  }

  #approvalSweep: NodeJS.Timeout | undefined;

  /** Denies approvals nobody decided within `timeoutMs`, checked every `min(60 s, timeout / 4)`. */
  expireApprovalsEvery(timeoutMs: number): void {
    clearInterval(this.#approvalSweep);
    this.#approvalSweep = setInterval(
      () => void this.expireApprovals(timeoutMs).catch((e: unknown) => this.host.onError?.(e, '')),
      Math.max(250, Math.min(60_000, Math.floor(timeoutMs / 4))),
    );
    this.#approvalSweep.unref();
  }

  /** The server is shutting down: runs it stops stay unfinished, to be resumed at the next start. */
  stopping(): void {
    this.#stopping = true;
    clearInterval(this.#approvalSweep);
  }
}
