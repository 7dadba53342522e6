/** Reading what Caxton's provider clients sent to the LLM stub, in either wire format. */
import type { StubHit } from './llm-stub.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

/** The `messages` array of a chat request. */
export function messagesOf(hit: StubHit): Json[] {
  const m: unknown = hit.body?.messages;
  if (!Array.isArray(m)) throw new Error(`the request to ${hit.path} has no messages array: ${hit.raw.slice(0, 200)}`);
  return m;
}

/** How many assistant messages the request carries (= how many model turns came before). */
export function assistantTurns(hit: StubHit): number {
  return messagesOf(hit).filter((m) => m.role === 'assistant').length;
}

/** The system prompt as sent: a system message (OpenAI) or the top-level `system` (Anthropic). */
export function systemPromptOf(hit: StubHit): string | undefined {
  if (hit.api === 'anthropic') return hit.body.system as string | undefined;
  const sys = messagesOf(hit).find((m) => m.role === 'system');
  return sys?.content as string | undefined;
}

/** The text of the first user message. */
export function firstUserText(hit: StubHit): string {
  const user = messagesOf(hit).find((m) => m.role === 'user');
  if (!user) throw new Error('no user message');
  if (typeof user.content === 'string') return user.content;
  return (user.content as Json[])
    .filter((b) => b.type === 'text')
    .map((b) => b.text as string)
    .join('');
}

export interface WireToolResult {
  id: string;
  content: string;
  /** Anthropic's flag; OpenAI has none (Caxton prefixes the content with "Error: "). */
  is_error?: boolean;
}

/** Every tool result in the request, in order, with the id it echoes. */
export function toolResultsOf(hit: StubHit): WireToolResult[] {
  const out: WireToolResult[] = [];
  for (const m of messagesOf(hit)) {
    if (hit.api === 'openai' && m.role === 'tool') out.push({ id: m.tool_call_id, content: m.content });
    if (hit.api === 'anthropic' && m.role === 'user' && Array.isArray(m.content)) {
      for (const b of m.content as Json[]) {
        if (b.type === 'tool_result')
          out.push({
            id: b.tool_use_id,
            content: typeof b.content === 'string' ? b.content : JSON.stringify(b.content),
            ...(b.is_error !== undefined && { is_error: b.is_error as boolean }),
          });
      }
    }
  }
  return out;
}

/** The tool names offered to the model. */
export function offeredTools(hit: StubHit): string[] {
  const tools = (hit.body?.tools ?? []) as Json[];
  return tools.map((t) => (hit.api === 'openai' ? t.function.name : t.name) as string).sort();
}
