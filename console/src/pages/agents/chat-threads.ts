/**
 * The chat's threads as the server keeps them (GET /api/v1/agents/NAME/threads, read from the
 * execution records): their shapes, a thread's turns as the chat shows them, and a new thread's
 * conversation id. This tab keeps the threads it showed, so coming back to one needs no request.
 */
import { ApiError, get } from '../../api';
import { agentPath } from './types';

export interface ToolEntry {
  id: string;
  name: string;
  /** The arguments as JSON text. */
  args: string;
  result?: string;
  is_error?: boolean;
  duration_ms?: number;
}

/** The parts of an answer in the order they streamed: text and tool calls interleaved. */
export type Part = { kind: 'text'; text: string } | { kind: 'tool'; tool: ToolEntry };

export interface Turn {
  role: 'user' | 'agent';
  parts: Part[];
  done: boolean;
  error?: unknown;
  meta?: string;
  /** The run that produced this answer (its execution id). */
  run?: string;
}

export interface Thread {
  conversation: string;
  turns: Turn[];
}

/** GET /agents/NAME/threads: one entry. */
export interface ThreadSummary {
  conversation_id: string;
  agent: string;
  title: string;
  turns: number;
  principal: string | null;
  started_at: string;
  last_active_at: string;
  version_number: number | null;
  target: string;
}

interface StoredTurn {
  run: string;
  request: string;
  answer: string | null;
  status: 'ok' | 'error';
  error: { code: string; message: string } | null;
  tool_calls: {
    id: string;
    name: string;
    arguments: string;
    result: string;
    outcome: 'ok' | 'error';
    duration_ms: number;
  }[];
  duration_ms: number;
  model: string | null;
  usage: { input_tokens: number; output_tokens: number };
}

/** A conversation id for a new thread (random; the server keeps the thread under it). */
export function newConversation(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return `chat_${Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')}`;
}

export const meta = (model: string | null, tokens: number, ms: number): string =>
  `${model ?? 'model'} · ${tokens} tokens · ${Math.round(ms)} ms`;

/** A stored turn as the chat shows it: the request, then the tool calls and the answer (or its error). */
function turnsOf(t: StoredTurn): Turn[] {
  const parts: Part[] = t.tool_calls.map((c) => ({
    kind: 'tool',
    tool: {
      id: c.id,
      name: c.name,
      args: c.arguments,
      result: c.result,
      is_error: c.outcome === 'error',
      duration_ms: c.duration_ms,
    },
  }));
  if (t.answer) parts.push({ kind: 'text', text: t.answer });
  return [
    { role: 'user', parts: [{ kind: 'text', text: t.request }], done: true },
    {
      role: 'agent',
      parts,
      done: true,
      run: t.run,
      ...(t.error
        ? { error: new ApiError(0, t.error.code, t.error.message, null) }
        : { meta: meta(t.model, t.usage.input_tokens + t.usage.output_tokens, t.duration_ms) }),
    },
  ];
}

/** Threads this tab has shown, by conversation id; and each target's latest, for coming back to the chat. */
const cache = new Map<string, Thread>();
const latest = new Map<string, string>();

export function remember(target: string, t: Thread): void {
  cache.set(t.conversation, t);
  if (t.turns.length > 0) latest.set(target, t.conversation);
}

/** A new, empty thread for `target`, shown from now on when the chat opens without naming one; its id. */
export function startThread(target: string): string {
  const t = { conversation: newConversation(), turns: [] };
  cache.set(t.conversation, t);
  latest.set(target, t.conversation);
  return t.conversation;
}

/**
 * The thread to show for `target`: `wanted` (a conversation id), else the one this tab last
 * showed, else the newest on the server addressed to `target`; a new one when there is none.
 */
export async function loadThread(name: string, target: string, wanted: string | undefined): Promise<Thread> {
  const id = wanted ?? latest.get(target);
  const had = id === undefined ? undefined : cache.get(id);
  if (had) return had;
  let conversation = id;
  if (conversation === undefined) {
    const list = await get<{ threads: ThreadSummary[] }>(agentPath(name, '/threads'), { limit: 50 });
    conversation = list.threads.find((t) => t.target === target)?.conversation_id;
    if (conversation === undefined) return { conversation: newConversation(), turns: [] };
  }
  try {
    const t = await get<{ turns: StoredTurn[] }>(agentPath(name, `/threads/${encodeURIComponent(conversation)}`));
    return { conversation, turns: t.turns.flatMap(turnsOf) };
  } catch (e) {
    // A thread not found (a new one named in the address, or one gone with its records) starts empty under its id.
    if (e instanceof ApiError && e.status === 404) return { conversation, turns: [] };
    throw e;
  }
}
