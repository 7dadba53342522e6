/** Small helpers for reading provider response bodies defensively. */
import { LlmError, type Usage } from './types.js';
import { quoteOutside } from './provider-http.js';

export function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function asString(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** A non-negative integer count, or 0. */
export function count(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.floor(v) : 0;
}

export function makeUsage(input: number, output: number): Usage {
  return { input_tokens: input, output_tokens: output, total_tokens: input + output };
}

/**
 * Tool-call arguments from a JSON string (OpenAI's `arguments`, Anthropic's streamed
 * `input_json_delta`s). Empty means no arguments; anything but a JSON object is malformed.
 */
export function parseToolArguments(
  who: { provider: string; model: string },
  tool: string,
  raw: string,
): Record<string, unknown> {
  if (raw.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new LlmError({
      provider: who.provider,
      model: who.model,
      kind: 'malformed_response',
      message: `the arguments of tool call "${tool}" are not valid JSON: ${quoteOutside(raw, 200)}`,
    });
  }
  if (!isRecord(parsed)) {
    throw new LlmError({
      provider: who.provider,
      model: who.model,
      kind: 'malformed_response',
      message: `the arguments of tool call "${tool}" are not a JSON object`,
    });
  }
  return parsed;
}
