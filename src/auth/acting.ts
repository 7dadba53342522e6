import type { ApiKeyStore } from './keys.js';
import type { LimitSet } from './limits-config.js';
import { limitedError, type PrincipalLimiter } from './caller-limits.js';
import { LOCAL_PRINCIPAL } from './plugin.js';
import type { Principal } from './principal.js';
import { unknownPrincipal } from './scope-send.js';

/**
 * Turns the principal id a message acts for (`on_behalf_of`) back into the principal, so its scope
 * and limits apply to what the message causes: agents' onward sends and their executions.
 */
export interface ActingPrincipals {
  /** Undefined when the id names no principal valid here now (fail closed: see unknownPrincipal). */
  resolve(id: string): Principal | undefined;
  /** Its effective limits (its key's own, else `[auth.limits] default`). */
  limitsOf(p: Principal): LimitSet | undefined;
  /**
   * Throws 429 rate_limited when `p` has used up its tokens for the current window: every message
   * it sends would start an execution that is refused, so it is refused at once, as invoke is.
   * The request rate is counted per HTTP request by the auth hook, not per message.
   */
  admitSend(p: Principal): void;
  /**
   * The limits an execution acting for `id` (a message delivery) is charged against. Throws 403
   * principal_unknown for a key that is revoked, expired or deleted: work queued on its behalf does
   * not run. A token or certificate principal this server has not seen (another cluster node
   * authenticated it, or this one restarted since) is charged against `[auth.limits] default`.
   */
  executionLimits(id: string): LimitSet | undefined;
}

/** How many token and certificate principals are remembered (least recently authenticated dropped first). */
export const REMEMBERED_PRINCIPALS = 10_000;

/**
 * The server's principals by id: API keys through the key store (by name, so a revoked or expired
 * key resolves to nothing), `local:*` to the local principal, and JWT and certificate principals
 * from a bounded memory of those authenticated since the server started (`remember`, called by
 * the auth hook). Scope and limits are read at the time of use, so a key's new scope applies to
 * messages already queued on its behalf.
 */
export class PrincipalDirectory implements ActingPrincipals {
  readonly #seen = new Map<string, Principal>();
  readonly #keys: ApiKeyStore | undefined;
  readonly #limitsOf: (p: Principal) => LimitSet | undefined;
  readonly #limiter: PrincipalLimiter | undefined;
  readonly #max: number;
  readonly #defaults: LimitSet | undefined;

  constructor(opts: {
    keys?: ApiKeyStore;
    limitsOf?: (p: Principal) => LimitSet | undefined;
    defaultLimits?: LimitSet | undefined;
    limiter?: PrincipalLimiter;
    max?: number;
  }) {
    this.#keys = opts.keys;
    this.#defaults = opts.defaultLimits;
    this.#limitsOf = opts.limitsOf ?? (() => undefined);
    this.#limiter = opts.limiter;
    this.#max = opts.max ?? REMEMBERED_PRINCIPALS;
  }

  /** A principal that authenticated with a bearer token or a client certificate (keys are read from their store). */
  remember(p: Principal): void {
    if (p.kind !== 'jwt' && p.kind !== 'cert') return;
    this.#seen.delete(p.id);
    this.#seen.set(p.id, p);
    if (this.#seen.size > this.#max) this.#seen.delete(this.#seen.keys().next().value!);
  }

  resolve(id: string): Principal | undefined {
    if (id.startsWith('local:')) return LOCAL_PRINCIPAL;
    if (id.startsWith('key:')) return this.#keys?.principalByName(id.slice(4));
    const p = this.#seen.get(id);
    // A token past its exp no longer speaks for anyone.
    if (p?.expiresAt !== undefined && p.expiresAt <= Date.now()) return undefined;
    return p;
  }

  limitsOf(p: Principal): LimitSet | undefined {
    return p.kind === 'local' ? undefined : this.#limitsOf(p);
  }

  admitSend(p: Principal): void {
    if (p.kind === 'local' || !this.#limiter) return;
    const limits = this.#limitsOf(p);
    if (limits?.tokens === undefined) return;
    const use = this.#limiter.usage(p.id, limits);
    if (use.tokens.used < limits.tokens) return;
    throw limitedError({
      ok: false,
      limit: 'tokens',
      scope: 'principal',
      subject: p.id,
      value: limits.tokens,
      retryAfterMs: Math.max(1, Date.parse(use.tokens.resets_at) - Date.now()),
      periodMs: use.tokens.period_ms,
      used: use.tokens.used,
    });
  }

  executionLimits(id: string): LimitSet | undefined {
    const p = this.resolve(id);
    if (p) return this.limitsOf(p);
    if (id.startsWith('key:')) throw unknownPrincipal(id);
    return this.#defaults;
  }
}
