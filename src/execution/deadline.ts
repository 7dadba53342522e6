/**
 * How a caller hands over its cancellation: called once, with the function that cancels (given a
 * reason, the execution fails with it when it is a 'cancelled' CaxtonError).
 */
export type CancelHook = (cancel: (reason?: unknown) => void) => void;

/**
 * The agent's deadline and the caller's cancellation (`outer`, or `cancelOn`) folded into one
 * signal. Equivalent to `AbortSignal.any([outer, AbortSignal.timeout(ms)])`, but cheaper, and
 * `dispose()` releases the timer and the listener as soon as the execution settles:
 * `AbortSignal.timeout` keeps its timer (120 s by default) until it fires, so under sustained load
 * they pile up by the hundred thousand (see docs/adr/experiments.md, "Execution overhead per isolation mode"). A cancellation after
 * `dispose()` aborts nothing: the execution is over.
 */
export class Deadline {
  readonly #ac = new AbortController();
  readonly #timer: NodeJS.Timeout;
  readonly #outer: AbortSignal | undefined;
  readonly #onAbort: (() => void) | undefined;
  #timedOut = false;
  #cancelled = false;
  #settled = false;

  constructor(timeoutMs: number, outer: AbortSignal | undefined, cancelOn: CancelHook | undefined) {
    // A static callback and its argument: no closure per execution.
    this.#timer = setTimeout(expire, timeoutMs, this);
    this.#timer.unref();
    this.#outer = outer;
    if (outer?.aborted) this.cancel(outer.reason);
    else if (outer) {
      this.#onAbort = () => this.cancel(outer.reason);
      outer.addEventListener('abort', this.#onAbort, { once: true });
    }
    cancelOn?.((reason) => this.cancel(reason));
  }

  get signal(): AbortSignal {
    return this.#ac.signal;
  }

  timedOut(): boolean {
    return this.#timedOut;
  }

  cancelled(): boolean {
    return this.#cancelled;
  }

  expire(): void {
    this.#timedOut = true;
    this.#ac.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError'));
  }

  cancel(reason?: unknown): void {
    if (this.#settled || this.#ac.signal.aborted) return;
    this.#cancelled = true;
    this.#ac.abort(reason);
  }

  dispose(): void {
    this.#settled = true;
    clearTimeout(this.#timer);
    if (this.#onAbort) this.#outer?.removeEventListener('abort', this.#onAbort);
  }
}

function expire(d: Deadline): void {
  d.expire();
}
