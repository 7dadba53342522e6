/**
 * Typed errors. Every error Caxton raises on purpose is a CaxtonError with a stable
 * machine-readable code; the API maps the code to an HTTP status and the CLI to an exit code.
 */
import { scrubSecrets, scrubSecretsIn } from './secrets.js';

export const ERROR_CODES = {
  invalid_request: 400,
  /** OpenAI-compatible endpoint: a parameter Caxton does not implement (never silently dropped). */
  unsupported_parameter: 400,
  /** OpenAI-compatible endpoint: a known parameter with a value Caxton does not implement (`n: 2`). */
  unsupported_value: 400,
  invalid_message: 400,
  validation_failed: 422,
  invalid_agent: 422,
  invalid_config: 422,
  not_utf8: 400,
  unsupported_media_type: 415,
  payload_too_large: 413,
  input_too_deep: 400,
  not_found: 404,
  agent_not_found: 404,
  /** An agent version that was never recorded or is no longer kept ([agents] keep_versions). */
  version_not_found: 404,
  conversation_not_found: 404,
  /** POST /v1/responses' previous_response_id, GET/DELETE /v1/responses/{id}: unknown, expired, or another principal's. */
  response_not_found: 404,
  route_not_found: 404,
  conflict: 409,
  agent_exists: 409,
  agent_managed_by_file: 409,
  /** A rollback with no version whose content differs from the deployed one. */
  no_earlier_version: 409,
  /** A deploy or a rollback to another version while a rollout of the agent runs. */
  rollout_in_progress: 409,
  /** Promote with no rollout running. */
  no_rollout: 409,
  conversation_closed: 409,
  not_ready: 503,
  insufficient_storage: 507,
  configuration_error: 500,
  timeout: 504,
  cancelled: 499,
  /**
   * A durable run paused before a tool call that needs a person's approval: accepted, not failed.
   * `details` name the run, the tool and the call; the run goes on once someone decides.
   */
  awaiting_approval: 202,
  rate_limited: 429,
  queue_full: 429,
  llm_error: 502,
  /** The model's reply is not the JSON (or does not match the JSON schema) the request's response_format asked for. */
  invalid_structured_output: 502,
  /** The request forced a tool call (tool_choice "required" or a named function) and the model made none, or called another tool. */
  tool_choice_not_honoured: 502,
  tool_error: 500,
  tool_not_allowed: 403,
  tool_not_found: 404,
  not_supported: 501,
  isolation_failure: 500,
  unauthenticated: 401,
  forbidden: 403,
  internal: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export function httpStatusFor(code: ErrorCode): number {
  return ERROR_CODES[code];
}

export class CaxtonError extends Error {
  readonly code: ErrorCode;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, details?: unknown, options?: { cause?: unknown }) {
    // Scrubbed here (ADR 0017): an error message or detail built from outside text (a provider's
    // error body, a tool's output) must not carry a configured secret to a response, row or log.
    super(scrubSecrets(message), options);
    this.name = 'CaxtonError';
    this.code = code;
    this.details = scrubSecretsIn(details);
  }

  get status(): number {
    return httpStatusFor(this.code);
  }
}

export function isCaxtonError(e: unknown): e is CaxtonError {
  return e instanceof CaxtonError;
}

/** A message suitable for a human, never a stack trace. */
export function describeError(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
