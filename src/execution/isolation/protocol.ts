/**
 * Messages exchanged between the parent and a worker thread / child process. Both channels
 * use structured clone (worker postMessage, and fork() with serialization: 'advanced').
 * This module has no runtime dependencies so the worker entry and process runner stay light.
 */

/** An error as it crosses the thread/process boundary. */
export interface WireError {
  name: string;
  message: string;
  stack?: string;
  /** `code` property of the thrown error, when it is a string (e.g. a CaxtonError code). */
  code?: string;
  /** `details` of the thrown error, when present and serializable. */
  details?: unknown;
}

export type ParentMessage =
  /**
   * `payload` without its sticky properties (RunOptions.sticky): `stick` holds those whose value
   * the member has not got yet (it keeps them), `reuse` names those it has; the member puts both
   * back into the payload.
   */
  | { type: 'run'; id: number; payload: unknown; stick?: Record<string, unknown>; reuse?: string[] }
  /** Aborts job `id`'s `ctx.signal` with `reason`; the job is expected to end soon after. */
  | { type: 'cancel'; id: number; reason: WireError }
  /** The answer to the child's `call` number `callId` (numbered by the child, unique per thread/process). */
  | { type: 'call-result'; callId: number; value: unknown }
  | { type: 'call-error'; callId: number; error: WireError };

export type ChildMessage =
  | { type: 'ready' }
  | { type: 'init-error'; error: WireError }
  | { type: 'event'; id: number; event: unknown }
  /** Job `id` asks the parent to run `method` (TaskContext.call); answered by call-result / call-error. */
  | { type: 'call'; id: number; callId: number; method: string; args: unknown }
  /**
   * A job's outcome. `retire` (process mode): why the process must take no further job (it
   * touched process-wide state or holds too much heap, see process-state.ts); it finishes the
   * jobs it is running and exits once the last of them has replied.
   */
  | { type: 'result'; id: number; value: unknown; retire?: string }
  | { type: 'error'; id: number; error: WireError; retire?: string }
  /** An uncaught exception / unhandled rejection; the sender exits right after. */
  | { type: 'fatal'; error: WireError };

function cloneable(value: unknown): boolean {
  try {
    structuredClone(value);
    return true;
  } catch {
    return false;
  }
}

export function toWireError(e: unknown): WireError {
  if (e instanceof Error) {
    const out: WireError = { name: e.name, message: e.message };
    if (e.stack !== undefined) out.stack = e.stack;
    const { code, details } = e as { code?: unknown; details?: unknown };
    if (typeof code === 'string') out.code = code;
    if (details !== undefined && cloneable(details)) out.details = details;
    return out;
  }
  let message: string;
  try {
    message = typeof e === 'string' ? e : (JSON.stringify(e) ?? String(e));
  } catch {
    message = String(e);
  }
  return { name: 'Error', message };
}

export function isChildMessage(m: unknown): m is ChildMessage {
  return typeof m === 'object' && m !== null && typeof (m as { type?: unknown }).type === 'string';
}

export function isParentMessage(m: unknown): m is ParentMessage {
  return typeof m === 'object' && m !== null && typeof (m as { type?: unknown }).type === 'string';
}

/**
 * An error received over the wire, rebuilt for the task (which has no CaxtonError class): an
 * Error with the original `name`, `message`, `code` and `details`. Its stack is where the task
 * made the call.
 */
export function fromWireError(w: WireError): Error & { code?: string; details?: unknown } {
  const e = new Error(w.message) as Error & { code?: string; details?: unknown };
  e.name = w.name;
  if (w.code !== undefined) e.code = w.code;
  if (w.details !== undefined) e.details = w.details;
  return e;
}

/** An Error carrying a Caxton error `code`, for the task side of the channel (no CaxtonError there). */
export function codedError(
  code: string,
  message: string,
  details?: unknown,
): Error & { code: string; details?: unknown } {
  const e = new Error(message) as Error & { code: string; details?: unknown };
  e.code = code;
  if (details !== undefined) e.details = details;
  return e;
}
