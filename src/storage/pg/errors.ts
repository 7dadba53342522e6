import { CaxtonError, describeError, isCaxtonError } from '../../shared/errors.js';

const NETWORK = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);

/**
 * Whether `e` says PostgreSQL could not be reached (refused, reset, timed out, shutting down:
 * SQLSTATE classes 08 and 57P), as opposed to a statement it refused.
 */
export function isUnreachable(e: unknown): boolean {
  if (isCaxtonError(e)) return false;
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string' && (NETWORK.has(code) || code.startsWith('08') || code.startsWith('57P'))) return true;
  // "… is not queryable": node-pg's answer to a statement on a client whose connection already
  // failed (a step's next statement after `pg_ctl stop -m fast` ended its session); without it,
  // such a submission answered 500 instead of 503 (test/cluster/pg-restart.e2e.test.ts).
  return /timeout exceeded when trying to connect|connection terminated|terminating connection|Connection ended|is not queryable|the database system is (starting up|shutting down)/i.test(
    describeError(e),
  );
}

/** The caller's error when the shared state is unreachable: a 503 naming it, never a 500 for the caller. */
export function stateUnavailable(e: unknown): unknown {
  if (!isUnreachable(e)) return e;
  return new CaxtonError(
    'not_ready',
    `the cluster's shared state in PostgreSQL is unreachable (${describeError(e)}); this node is not ready until it is back. Retry shortly, with the same message id if you were sending one`,
    { retry_after: 5, dependency: 'cluster-postgresql' },
  );
}

/** `target` with every method's rejection passed through `stateUnavailable` (the read side's routes). */
export function guardReads<T extends object>(target: T): T {
  return new Proxy(target, {
    get(t, prop, receiver) {
      const v = Reflect.get(t, prop, receiver) as unknown;
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        const out = (v as (...a: unknown[]) => unknown).apply(t, args);
        return out instanceof Promise ? out.catch((e: unknown) => Promise.reject(stateUnavailable(e))) : out;
      };
    },
  });
}
