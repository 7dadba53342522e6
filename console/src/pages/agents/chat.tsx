/**
 * Chat with an agent: POST /api/v1/agents/NAME/invoke with Accept: text/event-stream streams
 * `token`, `tool_call` and `tool_result` events, then `response` (or `error`). Each tool call and
 * its result is shown inline where it happened; later turns keep the conversation id.
 */
import { useRef, useState } from 'preact/hooks';
import { ApiError, send } from '../../api';
import { ErrorBox } from '../../components/feedback';
import { readSse } from '../../live';
import { agentPath } from './types';

interface ToolEntry {
  id: string;
  name: string;
  arguments: Record<string, unknown>;
  result?: string;
  is_error?: boolean;
  duration_ms?: number;
}

/** The parts of an answer in the order they streamed: text and tool calls interleaved. */
type Part = { kind: 'text'; text: string } | { kind: 'tool'; tool: ToolEntry };

interface Turn {
  role: 'user' | 'agent';
  parts: Part[];
  done: boolean;
  error?: unknown;
  meta?: string;
}

export function AgentChat({ name }: { name: string }) {
  const [turns, setTurns] = useState<Turn[]>([]);
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const conversation = useRef<string>();
  const abort = useRef<AbortController>();

  const update = (fn: (t: Turn) => Turn) => setTurns((ts) => [...ts.slice(0, -1), fn(ts[ts.length - 1]!)]);

  const submit = async (e: Event) => {
    e.preventDefault();
    const request = text.trim();
    if (!request || busy) return;
    setText('');
    setBusy(true);
    setTurns((ts) => [
      ...ts,
      { role: 'user', parts: [{ kind: 'text', text: request }], done: true },
      { role: 'agent', parts: [], done: false },
    ]);
    const ac = new AbortController();
    abort.current = ac;
    try {
      const res = await send('POST', agentPath(name, '/invoke'), {
        json: { request, ...(conversation.current && { conversation_id: conversation.current }) },
        accept: 'text/event-stream',
        signal: ac.signal,
      });
      if (!res.body) throw new Error('the server sent no stream');
      await readSse(
        res.body,
        (ev) => {
          const data = JSON.parse(ev.data) as Record<string, unknown>;
          if (ev.event === 'token') {
            update((t) => {
              const last = t.parts[t.parts.length - 1];
              const parts: Part[] =
                last?.kind === 'text'
                  ? [...t.parts.slice(0, -1), { kind: 'text', text: last.text + String(data.text) }]
                  : [...t.parts, { kind: 'text', text: String(data.text) }];
              return { ...t, parts };
            });
          } else if (ev.event === 'tool_call') {
            const call = data.call as { id: string; name: string; arguments: Record<string, unknown> };
            update((t) => ({
              ...t,
              parts: [...t.parts, { kind: 'tool', tool: { id: call.id, name: call.name, arguments: call.arguments } }],
            }));
          } else if (ev.event === 'tool_result') {
            update((t) => ({
              ...t,
              parts: t.parts.map((p) =>
                p.kind === 'tool' && p.tool.id === data.id
                  ? {
                      kind: 'tool',
                      tool: {
                        ...p.tool,
                        result: String(data.content),
                        is_error: data.is_error === true,
                        duration_ms: Number(data.duration_ms),
                      },
                    }
                  : p,
              ),
            }));
          } else if (ev.event === 'response') {
            const r = data as {
              content: string;
              conversation_id?: string;
              usage: { total_tokens: number };
              execution_time_ms: number;
              finish_reason: string;
              model: string;
            };
            if (r.conversation_id) conversation.current = r.conversation_id;
            update((t) => {
              // A model that did not stream tokens: the final content is the answer.
              const hasText = t.parts.some((p) => p.kind === 'text' && p.text.length > 0);
              const parts: Part[] = hasText || !r.content ? t.parts : [...t.parts, { kind: 'text', text: r.content }];
              return {
                ...t,
                parts,
                done: true,
                meta: `${r.model} · ${r.usage.total_tokens} tokens · ${Math.round(r.execution_time_ms)} ms · ${r.finish_reason}`,
              };
            });
          } else if (ev.event === 'error') {
            const env = (data as { error: { code: string; message: string; details?: unknown; request_id?: string } })
              .error;
            update((t) => ({
              ...t,
              done: true,
              error: new ApiError(0, env.code, env.message, env.details, env.request_id),
            }));
          }
        },
        ac.signal,
      );
      update((t) => ({ ...t, done: true }));
    } catch (err) {
      if (!(err instanceof DOMException && err.name === 'AbortError'))
        update((t) => ({ ...t, done: true, error: err }));
      else update((t) => ({ ...t, done: true, meta: 'stopped' }));
    } finally {
      setBusy(false);
      abort.current = undefined;
    }
  };

  return (
    <div class="chat">
      <ol class="chat-log" aria-label={`Conversation with ${name}`} aria-live="polite" data-testid="chat-log">
        {turns.map((t, i) => (
          <li key={i} class={t.role}>
            <span class="who">{t.role === 'user' ? 'You' : name}</span>
            {t.parts.map((p, j) =>
              p.kind === 'text' ? <p key={j}>{p.text}</p> : <ToolCallView key={j} tool={p.tool} />,
            )}
            {!t.done && <p class="muted small">working…</p>}
            {t.meta && <p class="muted small">{t.meta}</p>}
            <ErrorBox error={t.error} />
          </li>
        ))}
      </ol>
      <form onSubmit={submit}>
        <label for="chat-input">Message to {name}</label>
        <textarea
          id="chat-input"
          rows={3}
          value={text}
          onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && !e.shiftKey) {
              e.preventDefault();
              (e.currentTarget as HTMLTextAreaElement).form?.requestSubmit();
            }
          }}
        />
        <div class="row">
          <button type="submit" disabled={busy || text.trim() === ''}>
            Send
          </button>
          {busy && (
            <button type="button" class="secondary" onClick={() => abort.current?.abort()}>
              Stop
            </button>
          )}
          <span class="muted small">Enter sends, Shift+Enter starts a new line.</span>
        </div>
      </form>
    </div>
  );
}

function ToolCallView({ tool }: { tool: ToolEntry }) {
  const failed = tool.is_error === true;
  return (
    <div class={`tool-call${failed ? ' failed' : ''}`} data-testid="tool-call">
      <strong>Tool call {tool.name}</strong>
      <pre>{JSON.stringify(tool.arguments)}</pre>
      {tool.result === undefined ? (
        <span class="muted small">running…</span>
      ) : (
        <>
          <span class="small">
            {failed ? 'Failed' : 'Result'} ({tool.duration_ms} ms):
          </span>
          <pre data-testid="tool-result">{tool.result}</pre>
        </>
      )}
    </div>
  );
}
