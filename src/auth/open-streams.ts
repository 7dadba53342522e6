import { CaxtonError } from '../shared/errors.js';

/** setTimeout's longest delay: a longer one fires at once, so far expiries are waited for in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Why a stream is being closed: the error its last event carries. */
export type StreamEnd = CaxtonError;

interface Held {
  readonly keyId: string;
  readonly close: (why: StreamEnd) => void;
  timer?: NodeJS.Timeout;
}

/**
 * The requests and event streams open under each API key. A request is authenticated once, when
 * it starts, so a long one would outlive its credential; the key store ends them here when the key is revoked
 * or rotated (on this node or, through `applyRemote`, on another), and each stream's own timer
 * ends it when the key expires.
 */
export class OpenStreams {
  readonly #byKey = new Map<string, Set<Held>>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /**
   * Holds a stream opened with key `keyId` (expiring at `expiresAt`, epoch ms, or never);
   * `close` is called at most once, when the key stops being valid. Returns the function to call
   * when the stream ends by itself.
   */
  hold(keyId: string, keyName: string, expiresAt: number | null, close: (why: StreamEnd) => void): () => void {
    let done = false;
    const held: Held = {
      keyId,
      close: (why) => {
        if (done) return;
        release();
        close(why);
      },
    };
    const release = (): void => {
      if (done) return;
      done = true;
      if (held.timer) clearTimeout(held.timer);
      const set = this.#byKey.get(keyId);
      set?.delete(held);
      if (set?.size === 0) this.#byKey.delete(keyId);
    };
    let set = this.#byKey.get(keyId);
    if (!set) this.#byKey.set(keyId, (set = new Set()));
    set.add(held);
    if (expiresAt !== null) {
      const arm = (): void => {
        const left = expiresAt - this.#now();
        if (left <= 0) return held.close(keyExpired(keyName, expiresAt));
        held.timer = setTimeout(arm, Math.min(left, MAX_TIMER_MS));
        held.timer.unref();
      };
      arm();
    }
    return release;
  }

  /** Ends every stream open under key `keyId` with `why`. */
  end(keyId: string, why: StreamEnd): void {
    const set = this.#byKey.get(keyId);
    if (!set) return;
    for (const held of [...set]) held.close(why);
  }

  /** How many streams are open under `keyId` (all keys when absent). */
  count(keyId?: string): number {
    if (keyId !== undefined) return this.#byKey.get(keyId)?.size ?? 0;
    let n = 0;
    for (const set of this.#byKey.values()) n += set.size;
    return n;
  }
}

export function keyRevoked(name: string): CaxtonError {
  return new CaxtonError(
    'unauthenticated',
    `API key "${name}" was revoked: what was under way with it (this request or stream) is ended; send it again with a valid key (\`caxton key create\`)`,
    { reason: 'key_revoked' },
  );
}

export function keyRotated(name: string): CaxtonError {
  return new CaxtonError(
    'unauthenticated',
    `API key "${name}" was rotated: the secret this request or stream was made with no longer works; send it again with the new secret`,
    { reason: 'key_rotated' },
  );
}

export function keyExpired(name: string, at: number): CaxtonError {
  return new CaxtonError(
    'unauthenticated',
    `API key "${name}" expired at ${new Date(at).toISOString()}: what was under way with it (this request or stream) is ended; send it again with a valid key (\`caxton key create\`)`,
    {
      reason: 'key_expired',
    },
  );
}

/** A bearer token (JWT) that stopped being valid at `at`. */
export function tokenExpired(at: number): CaxtonError {
  return new CaxtonError(
    'unauthenticated',
    `the bearer token expired at ${new Date(at).toISOString()}: what was under way with it (this request or stream) is ended; send it again with a fresh token`,
    { reason: 'token_expired' },
  );
}
