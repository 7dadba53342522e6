import { CaxtonError, ERROR_CODES, isCaxtonError, type ErrorCode } from '../../shared/errors.js';
import type { WireError } from './protocol.js';

function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CODES, code);
}

/**
 * Turns an error thrown by a task's `run` into a CaxtonError. The message is kept verbatim; a
 * `code` that is a Caxton error code (e.g. a CaxtonError thrown by the task) is kept, anything
 * else becomes 'internal'. The task's stack stays on `cause` (for logs), never in the message.
 */
export function taskErrorFromWire(w: WireError): CaxtonError {
  const cause = new Error(w.message);
  cause.name = w.name;
  if (w.stack !== undefined) cause.stack = w.stack;
  return new CaxtonError(isErrorCode(w.code) ? w.code : 'internal', w.message, w.details, { cause });
}

/** Same as taskErrorFromWire for an error thrown in-process (`context` mode). */
export function taskErrorFromLocal(e: unknown): CaxtonError {
  if (isCaxtonError(e)) return e;
  if (e instanceof Error) {
    const { code, details } = e as { code?: unknown; details?: unknown };
    return new CaxtonError(isErrorCode(code) ? code : 'internal', e.message, details, { cause: e });
  }
  return new CaxtonError('internal', `the task failed: ${String(e)}`, undefined, { cause: e });
}

export function describeWire(w: WireError | undefined): string {
  return w ? `${w.name === 'Error' ? '' : `${w.name}: `}${w.message}` : '';
}
