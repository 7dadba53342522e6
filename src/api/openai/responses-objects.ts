import { randomBytes } from 'node:crypto';
import type { Usage } from '../../llm/index.js';
import type { TranscriptMessage } from './response-store.js';
import { textOf, type InputItem, type ResponsesBody } from './responses-params.js';

/**
 * The Responses API's shapes on the way out: the `response` object, its output items, the SSE
 * event sequence of a streamed response, and input items as the chat transcript the execution
 * runs on. Field sets follow the `openai` package's types (resources/responses/responses.d.ts).
 */

/** OpenAI-style ids: a prefix and 48 hex digits. */
export const newId = (prefix: 'resp' | 'msg' | 'fc'): string => `${prefix}_${randomBytes(24).toString('hex')}`;

export interface OutputText {
  type: 'output_text';
  text: string;
  annotations: never[];
  logprobs: never[];
}

export interface MessageOutput {
  type: 'message';
  id: string;
  status: 'in_progress' | 'completed' | 'incomplete';
  role: 'assistant';
  content: OutputText[];
}

export interface FunctionCallOutput {
  type: 'function_call';
  id: string;
  call_id: string;
  name: string;
  arguments: string;
  status: 'in_progress' | 'completed' | 'incomplete';
}

export type OutputItem = MessageOutput | FunctionCallOutput;

export type ResponseStatus = 'queued' | 'in_progress' | 'completed' | 'incomplete' | 'failed' | 'cancelled';

export interface ResponseState {
  id: string;
  created_at: number;
  model: string;
  status: ResponseStatus;
  output: OutputItem[];
  usage?: Usage;
  error?: { code: string; message: string };
  incomplete?: 'max_output_tokens' | 'content_filter';
  previous_response_id?: string | undefined;
  /** Run without the caller waiting (`background: true`, a durable run). */
  background?: boolean;
  /** What Caxton says about the run (run-metadata.ts), beside the request's metadata. */
  run_metadata?: Record<string, string>;
}

export const outputText = (text: string): OutputText => ({ type: 'output_text', text, annotations: [], logprobs: [] });

/** The `response` object: the state plus the request's settings, echoed as OpenAI echoes them. */
export function responseObject(s: ResponseState, body: ResponsesBody): Record<string, unknown> {
  const format = body.text?.format ?? { type: 'text' };
  return {
    id: s.id,
    object: 'response',
    created_at: s.created_at,
    status: s.status,
    ...(s.status === 'completed' && { completed_at: Math.floor(Date.now() / 1000) }),
    background: s.background === true,
    error: s.error ?? null,
    incomplete_details: s.incomplete ? { reason: s.incomplete } : null,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    metadata: s.run_metadata === undefined ? (body.metadata ?? {}) : { ...body.metadata, ...s.run_metadata },
    model: s.model,
    output: s.output,
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    previous_response_id: s.previous_response_id ?? null,
    store: body.store ?? true,
    temperature: body.temperature ?? null,
    text: { format },
    tool_choice: body.tool_choice ?? 'auto',
    tools: body.tools ?? [],
    top_p: body.top_p ?? null,
    truncation: body.truncation ?? 'disabled',
    usage: s.usage ? usageOf(s.usage) : null,
    ...(body.user !== undefined && { user: body.user }),
  };
}

function usageOf(u: Usage) {
  return {
    input_tokens: u.input_tokens,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: u.output_tokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: u.total_tokens,
  };
}

/**
 * Input items as chat messages (OpenAI chat-completions shape), in order. Consecutive
 * function_call items become one assistant message with several tool calls, joined to the
 * assistant message just before them, as a model's turn is one message in chat completions.
 * `sources`, when given, receives for each message the indices of the items it came from (so that
 * an error about message i can name its item).
 */
export function itemsToMessages(items: InputItem[], sources: number[][] = []): TranscriptMessage[] {
  const out: TranscriptMessage[] = [];
  items.forEach((item, i) => {
    if (item.type === 'function_call') {
      const call = {
        id: item.call_id,
        type: 'function' as const,
        function: { name: item.name, arguments: item.arguments },
      };
      const prev = out.at(-1);
      if (prev?.role === 'assistant') {
        prev.tool_calls = [...(prev.tool_calls ?? []), call];
        // A text message's own index comes first, then one per call (tool_calls[k] is source k + 1).
        if (sources.length === out.length) sources.at(-1)!.push(i);
        return;
      }
      out.push({ role: 'assistant', content: null, tool_calls: [call] });
      // No text message: keep tool_calls[k] at source k + 1 all the same.
      sources.push([i, i]);
      return;
    }
    if (item.type === 'function_call_output')
      out.push({ role: 'tool', tool_call_id: item.call_id, content: textOf(item.output) });
    else out.push({ role: item.role, content: textOf(item.content) });
    sources.push([i]);
  });
  return out;
}

/** A response's output items as chat messages, for the stored transcript. */
export function outputToMessages(output: OutputItem[]): TranscriptMessage[] {
  return itemsToMessages(
    output.map((o): InputItem =>
      o.type === 'message'
        ? { role: 'assistant', content: o.content.map((c) => c.text).join('') }
        : { type: 'function_call', call_id: o.call_id, name: o.name, arguments: o.arguments },
    ),
  );
}

/**
 * The event sequence of a streamed response (response.created … response.completed), each event
 * with its `type` and a `sequence_number` counting from 0. `send(event, data)` writes one SSE event.
 */
export class ResponseEvents {
  private seq = 0;
  private message: { id: string; index: number; text: string } | undefined;

  constructor(
    private readonly send: (event: string, data: unknown) => void,
    private readonly state: ResponseState,
    private readonly body: ResponsesBody,
  ) {}

  private emit(type: string, payload: Record<string, unknown>): void {
    this.send(type, { type, sequence_number: this.seq++, ...payload });
  }

  private snapshot(): Record<string, unknown> {
    return responseObject(this.state, this.body);
  }

  start(): void {
    this.emit('response.created', { response: this.snapshot() });
    this.emit('response.in_progress', { response: this.snapshot() });
  }

  /** A piece of the reply's text: opens the message item and its text part on the first one. */
  delta(text: string): void {
    if (text === '') return;
    const m = this.openMessage();
    m.text += text;
    this.emit('response.output_text.delta', {
      item_id: m.id,
      output_index: m.index,
      content_index: 0,
      delta: text,
      logprobs: [],
    });
  }

  private openMessage(): { id: string; index: number; text: string } {
    if (this.message) return this.message;
    const m = { id: newId('msg'), index: this.state.output.length, text: '' };
    this.message = m;
    this.state.output.push({ type: 'message', id: m.id, status: 'in_progress', role: 'assistant', content: [] });
    this.emit('response.output_item.added', {
      output_index: m.index,
      item: { type: 'message', id: m.id, status: 'in_progress', role: 'assistant', content: [] },
    });
    this.emit('response.content_part.added', {
      item_id: m.id,
      output_index: m.index,
      content_index: 0,
      part: outputText(''),
    });
    return m;
  }

  /**
   * Closes the message item with the reply's final text (which may differ from the deltas: a
   * structured reply loses its code fence), adds the function calls, and ends the stream with
   * response.completed (or response.incomplete).
   */
  finish(
    text: string,
    calls: Omit<FunctionCallOutput, 'id' | 'status' | 'type'>[],
    end: Pick<ResponseState, 'usage' | 'incomplete' | 'run_metadata'>,
  ): void {
    const done: 'completed' | 'incomplete' = end.incomplete ? 'incomplete' : 'completed';
    // A message item already opened by deltas is closed even when the final text is empty (text
    // streamed in an earlier model turn, before the agent's own tool calls): every item added is done.
    if (text !== '' || this.message !== undefined || calls.length === 0) {
      const m = this.openMessage();
      const item: MessageOutput = {
        type: 'message',
        id: m.id,
        status: done,
        role: 'assistant',
        content: [outputText(text)],
      };
      this.state.output[m.index] = item;
      this.emit('response.output_text.done', {
        item_id: m.id,
        output_index: m.index,
        content_index: 0,
        text,
        logprobs: [],
      });
      this.emit('response.content_part.done', {
        item_id: m.id,
        output_index: m.index,
        content_index: 0,
        part: outputText(text),
      });
      this.emit('response.output_item.done', { output_index: m.index, item });
    }
    for (const c of calls) {
      const index = this.state.output.length;
      const item: FunctionCallOutput = {
        type: 'function_call',
        id: newId('fc'),
        call_id: c.call_id,
        name: c.name,
        arguments: c.arguments,
        status: 'completed',
      };
      this.state.output.push(item);
      this.emit('response.output_item.added', {
        output_index: index,
        item: { ...item, arguments: '', status: 'in_progress' },
      });
      this.emit('response.function_call_arguments.delta', {
        item_id: item.id,
        output_index: index,
        delta: c.arguments,
      });
      this.emit('response.function_call_arguments.done', {
        item_id: item.id,
        output_index: index,
        name: c.name,
        arguments: c.arguments,
      });
      this.emit('response.output_item.done', { output_index: index, item });
    }
    this.state.status = done;
    if (end.usage) this.state.usage = end.usage;
    if (end.incomplete) this.state.incomplete = end.incomplete;
    if (end.run_metadata) this.state.run_metadata = end.run_metadata;
    this.emit(done === 'completed' ? 'response.completed' : 'response.incomplete', { response: this.snapshot() });
  }

  /** Ends the stream with response.failed, carrying the error's code and message. */
  fail(code: string, message: string): void {
    this.state.status = 'failed';
    this.state.error = { code, message };
    if (this.message)
      this.state.output[this.message.index] = {
        type: 'message',
        id: this.message.id,
        status: 'incomplete',
        role: 'assistant',
        content: [outputText(this.message.text)],
      };
    this.emit('response.failed', { response: this.snapshot() });
  }

  get output(): OutputItem[] {
    return this.state.output;
  }
}
