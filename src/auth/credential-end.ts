import type { StreamEnd } from './open-streams.js';

/**
 * What a request knows of the end of the credential it was authenticated with (`req.credentialEnded`):
 * whether it ended and why, read as an AbortSignal's `aborted` and `reason`; and a listener's
 * `abort` event. The AbortController behind the event is made only when something listens (an
 * event stream, an MCP call): most requests only check `aborted` before their write, and every
 * request held with a key that can end would otherwise pay for one.
 */
export class CredentialEnd {
  #why: StreamEnd | undefined;
  #ac: AbortController | undefined;

  get aborted(): boolean {
    return this.#why !== undefined;
  }

  /** The refusal a new request with the same credential would get, once it ended. */
  get reason(): StreamEnd | undefined {
    return this.#why;
  }

  /** Calls `listener` when the credential ends; not when it had already (check `aborted` first, as with an AbortSignal). */
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void {
    if (!this.#ac) {
      this.#ac = new AbortController();
      if (this.#why !== undefined) this.#ac.abort(this.#why);
    }
    this.#ac.signal.addEventListener(type, listener, options);
  }

  /** The credential ended (the first call counts). */
  end(why: StreamEnd): void {
    if (this.#why !== undefined) return;
    this.#why = why;
    this.#ac?.abort(why);
  }
}
