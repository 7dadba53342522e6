/**
 * The strict core every stand-in LLM server in the suite shares: a request the real OpenAI or
 * Anthropic API would refuse is refused the same way (HTTP 400 in the provider's error shape, and a
 * line on stderr saying why, as the test's own failure may be far from the cause), and the answers
 * built here are checked against the provider's published schemas before they are sent.
 */
import type { ServerResponse } from 'node:http';
import { apiOf, assertValidAnswer, checkRequest, type Provider, type Refusal } from './provider-spec.js';

export { apiOf, checkRequest, refusalBody, warmUp, type Provider, type Refusal } from './provider-spec.js';

/**
 * For a POST to an LLM endpoint, refuses (answering 400 on `res`) what the real API would refuse.
 * Returns the refusal when it answered, undefined when the stand-in should answer as scripted.
 */
export function refuseInvalid(
  method: string | undefined,
  path: string,
  body: unknown,
  res: ServerResponse,
): Refusal | undefined {
  const provider = apiOf(path);
  if (provider === undefined || method !== 'POST') return undefined;
  const refusal = checkRequest(provider, body);
  if (refusal === undefined) return undefined;
  process.stderr.write(`[stand-in ${provider}] refused ${path}: ${refusal.message}\n`);
  res.writeHead(refusal.status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(refusal.body));
  return refusal;
}

/** Parses a request body as the stand-ins see it: JSON, or undefined. */
export function parseBody(raw: string): unknown {
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return undefined;
  }
}

export interface StandInToolCall {
  id: string;
  name: string;
  /** Already JSON-encoded arguments, or an object to encode. */
  arguments: string | Record<string, unknown>;
}

export interface StandInAnswer {
  content?: string;
  tool_calls?: StandInToolCall[];
  model: string;
  usage?: { input: number; output: number };
  id?: string;
}

const args = (a: string | Record<string, unknown>): string => (typeof a === 'string' ? a : JSON.stringify(a));
const now = (): number => Math.floor(Date.now() / 1000);

/** A CreateChatCompletionResponse with the fields OpenAI's servers always send. */
export function openaiCompletion(a: StandInAnswer): Record<string, unknown> {
  const calls = a.tool_calls ?? [];
  const content = a.content ?? '';
  const usage = a.usage ?? { input: 10, output: 5 };
  const value = {
    id: a.id ?? 'chatcmpl-standin',
    object: 'chat.completion',
    created: now(),
    model: a.model,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: calls.length > 0 && content === '' ? null : content,
          refusal: null,
          annotations: [],
          ...(calls.length > 0 && {
            tool_calls: calls.map((c) => ({
              id: c.id,
              type: 'function',
              function: { name: c.name, arguments: args(c.arguments) },
            })),
          }),
        },
        logprobs: null,
        finish_reason: calls.length > 0 ? 'tool_calls' : 'stop',
      },
    ],
    usage: openaiUsage(usage),
    service_tier: 'default',
    system_fingerprint: 'fp_standin',
  };
  assertValidAnswer('openai', 'response', value);
  return value;
}

function openaiUsage(u: { input: number; output: number }): Record<string, unknown> {
  return {
    prompt_tokens: u.input,
    completion_tokens: u.output,
    total_tokens: u.input + u.output,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: 0,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  };
}

/** An Anthropic Message. */
export function anthropicMessage(a: StandInAnswer): Record<string, unknown> {
  const calls = a.tool_calls ?? [];
  const content = a.content ?? '';
  const usage = a.usage ?? { input: 10, output: 5 };
  const value = {
    id: a.id ?? 'msg_standin',
    type: 'message',
    role: 'assistant',
    model: a.model,
    content: [
      ...(content !== '' ? [{ type: 'text', text: content }] : []),
      ...calls.map((c) => ({
        type: 'tool_use',
        id: c.id,
        name: c.name,
        input: typeof c.arguments === 'string' ? (JSON.parse(c.arguments) as unknown) : c.arguments,
      })),
    ],
    stop_reason: calls.length > 0 ? 'tool_use' : 'end_turn',
    stop_sequence: null,
    usage: { input_tokens: usage.input, output_tokens: usage.output },
  };
  assertValidAnswer('anthropic', 'response', value);
  return value;
}

/** Writes a 200 JSON answer. */
export function sendJson(res: ServerResponse, value: unknown): void {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value));
}

/** One SSE frame of a stand-in's stream, checked as a stream chunk (OpenAI) or event (Anthropic). */
export function streamFrame(provider: Provider, data: Record<string, unknown>): string {
  assertValidAnswer(provider, 'chunk', data);
  const event = provider === 'anthropic' ? `event: ${String(data.type)}\n` : '';
  return `${event}data: ${JSON.stringify(data)}\n\n`;
}

export const OPENAI_DONE = 'data: [DONE]\n\n';

/** The frames of an OpenAI streamed completion for this answer, as the API sends them. */
export function openaiStream(a: StandInAnswer & { includeUsage: boolean; pieces: string[] }): string[] {
  const calls = a.tool_calls ?? [];
  const usage = a.usage ?? { input: 10, output: 5 };
  const base = {
    id: a.id ?? 'chatcmpl-standin',
    object: 'chat.completion.chunk',
    created: now(),
    model: a.model,
    service_tier: 'default',
    system_fingerprint: 'fp_standin',
  };
  // With include_usage every chunk carries `usage: null` and a last chunk with no choices has it.
  const chunk = (delta: Record<string, unknown>, finish: string | null): string =>
    streamFrame('openai', {
      ...base,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
      ...(a.includeUsage && { usage: null }),
    });
  const frames = [chunk({ role: 'assistant', content: '', refusal: null }, null)];
  for (const p of a.pieces) frames.push(chunk({ content: p }, null));
  calls.forEach((c, index) => {
    const text = args(c.arguments);
    const half = Math.floor(text.length / 2);
    frames.push(
      chunk(
        {
          tool_calls: [
            { index, id: c.id, type: 'function', function: { name: c.name, arguments: text.slice(0, half) } },
          ],
        },
        null,
      ),
    );
    frames.push(chunk({ tool_calls: [{ index, function: { arguments: text.slice(half) } }] }, null));
  });
  frames.push(chunk({}, calls.length > 0 ? 'tool_calls' : 'stop'));
  if (a.includeUsage) frames.push(streamFrame('openai', { ...base, choices: [], usage: openaiUsage(usage) }));
  frames.push(OPENAI_DONE);
  return frames;
}

/** Whether an OpenAI request asked for the usage chunk at the end of its stream. */
export function wantsUsage(body: unknown): boolean {
  const opts = (body as { stream_options?: { include_usage?: unknown } } | undefined)?.stream_options;
  return opts?.include_usage === true;
}

/** The events of an Anthropic streamed message for this answer, as the API sends them. */
export function anthropicStream(a: StandInAnswer & { pieces: string[] }): string[] {
  const calls = a.tool_calls ?? [];
  const usage = a.usage ?? { input: 10, output: 5 };
  const stopReason = calls.length > 0 ? 'tool_use' : 'end_turn';
  const ev = (data: Record<string, unknown>): string => streamFrame('anthropic', data);
  const frames = [
    ev({
      type: 'message_start',
      message: {
        id: a.id ?? 'msg_standin',
        type: 'message',
        role: 'assistant',
        model: a.model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: usage.input, output_tokens: 1 },
      },
    }),
  ];
  let index = 0;
  if (a.pieces.length > 0) {
    frames.push(ev({ type: 'content_block_start', index, content_block: { type: 'text', text: '' } }));
    for (const p of a.pieces)
      frames.push(ev({ type: 'content_block_delta', index, delta: { type: 'text_delta', text: p } }));
    frames.push(ev({ type: 'content_block_stop', index }));
    index++;
  }
  for (const c of calls) {
    const text = args(c.arguments);
    const half = Math.floor(text.length / 2);
    frames.push(
      ev({
        type: 'content_block_start',
        index,
        content_block: { type: 'tool_use', id: c.id, name: c.name, input: {} },
      }),
    );
    frames.push(
      ev({
        type: 'content_block_delta',
        index,
        delta: { type: 'input_json_delta', partial_json: text.slice(0, half) },
      }),
    );
    frames.push(
      ev({ type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: text.slice(half) } }),
    );
    frames.push(ev({ type: 'content_block_stop', index }));
    index++;
  }
  frames.push(
    ev({
      type: 'message_delta',
      delta: { stop_reason: stopReason, stop_sequence: null },
      usage: { output_tokens: usage.output },
    }),
  );
  frames.push(ev({ type: 'message_stop' }));
  return frames;
}
