import type { FastifyReply } from 'fastify';
import type { ErrorEnvelope } from '../envelope.js';

/**
 * OpenAI's error shape on /v1/*: `{ error: { message, type, param, code } }`. It is a superset of
 * Caxton's envelope (`code`, `message`, `details` and `request_id` stay), so the `openai` SDK maps
 * the status to its classes (BadRequestError, NotFoundError, ...) and reads `param`, while Caxton
 * clients still find the fields they know.
 */
export type OpenAiErrorBody = { error: ErrorEnvelope['error'] & { type: string; param: string | null } };

/** OpenAI's `type` for a status (a 404 is an invalid_request_error there too, e.g. model_not_found). */
export function openAiErrorType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

/** The parameter an error is about: `details.param`, `details.field`, or the first schema issue's field. */
function paramOf(details: unknown): string | null {
  if (details === null || typeof details !== 'object') return null;
  const d = details as { param?: unknown; field?: unknown; issues?: unknown };
  if (typeof d.param === 'string') return d.param;
  if (typeof d.field === 'string') return d.field;
  if (Array.isArray(d.issues)) {
    const f = (d.issues[0] as { field?: unknown } | undefined)?.field;
    if (typeof f === 'string' && f !== '') return f;
  }
  return null;
}

export function toOpenAiError(status: number, body: ErrorEnvelope): OpenAiErrorBody {
  return { error: { ...body.error, type: openAiErrorType(status), param: paramOf(body.error.details) } };
}

/**
 * Rewrites an error response serialized by the server's error handler (or a hook's refusal:
 * 401/403/429) into the OpenAI shape. Anything else passes through untouched.
 */
export function rewriteErrorPayload(status: number, payload: unknown): unknown {
  if (status < 400 || typeof payload !== 'string' || !payload.startsWith('{"error"')) return payload;
  let body: ErrorEnvelope;
  try {
    body = JSON.parse(payload) as ErrorEnvelope;
  } catch {
    return payload;
  }
  if (
    body.error === null ||
    typeof body.error !== 'object' ||
    typeof body.error.code !== 'string' ||
    'type' in body.error
  )
    return payload;
  return JSON.stringify(toOpenAiError(status, body));
}

/**
 * The payload of a /v1 response as the OpenAI SDKs read it. A run that waits for a person
 * (`awaiting_approval`, 202 on Caxton's own routes) is a 409 here, marked not to be retried: an
 * OpenAI client takes any 2xx for a completed completion and would hand its caller an object with
 * no choices, and it retries a 409 unless told not to. Every other error is rewritten to OpenAI's
 * shape (rewriteErrorPayload).
 */
export function openAiPayload(reply: FastifyReply, payload: unknown): unknown {
  if (
    reply.statusCode === 202 &&
    typeof payload === 'string' &&
    payload.startsWith('{"error":{"code":"awaiting_approval"')
  )
    reply.code(409).header('x-should-retry', 'false');
  return rewriteErrorPayload(reply.statusCode, payload);
}
