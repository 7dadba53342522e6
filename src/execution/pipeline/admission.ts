/**
 * The pipeline's first stage: a run takes a slot before it holds anything — one of this node's
 * runs in flight (`[execution] max_in_flight`, ADR 0136) and one against its principal's and its
 * agent's limits (src/auth/caller-limits.ts). Every way a run starts comes through Executor.admit(), so
 * the node's limit is decided here only.
 */
import { limitedError, type ExecutionSlot, type LimitSet, type PrincipalLimiter } from '../../auth/caller-limits.js';
import type { Metrics } from '../../observability/metrics.js';
import { CaxtonError } from '../../shared/errors.js';

/** Who runs an execution, and their effective limits (InvokeOptions.limit). */
export interface ExecutionLimit {
  principalId: string;
  limits?: LimitSet | undefined;
}

export interface AdmissionOptions {
  metrics?: Metrics | undefined;
  /** Limits per principal and per agent: checked before any LLM call, tokens charged after. */
  limiter?: PrincipalLimiter | undefined;
  /** An agent's own limits (`[auth.limits.agents]`), shared by all its callers. */
  agentLimits?: ((agent: string) => LimitSet | undefined) | undefined;
}

export class Admission {
  readonly #inFlight: InFlight;
  readonly #limiter: PrincipalLimiter | undefined;
  readonly #agentLimits: AdmissionOptions['agentLimits'];

  constructor(maxInFlight: number, opts: AdmissionOptions) {
    this.#inFlight = new InFlight(maxInFlight, opts.metrics);
    this.#limiter = opts.limiter;
    this.#agentLimits = opts.agentLimits;
  }

  /** Takes a slot or throws 'rate_limited' (429, with retry_after) when a limit is reached. */
  admit(name: string, limit?: ExecutionLimit): ExecutionSlot {
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

  /** Runs in flight on this node now. */
  get inFlight(): number {
    return this.#inFlight.count;
  }

  #limited(name: string, limit: ExecutionLimit | undefined): ExecutionSlot | undefined {
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
