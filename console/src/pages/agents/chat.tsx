/**
 * Chat with an agent: POST /api/v1/agents/NAME/invoke with Accept: text/event-stream streams
 * `token`, `tool_call` and `tool_result` events, then `response` (or `error`). Each tool call sits
 * where it happened, collapsed to one line; each answer links to its run. A thread is kept per
 * agent and version for the session (the server keeps its context under the conversation id, so
 * coming back continues it). NAME@VERSION reaches a version a rollout keeps beside the live one,
 * alone or side by side with the live version, one message going to both.
 */
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { ApiError, send } from '../../api';
import { ErrorBox } from '../../components/feedback';
import { useApi } from '../../hooks';
import { readSse } from '../../live';
import { Link, setQuery, useRoute } from '../../router';
import { agentPath, type RolloutStatus } from './types';
import { ToolResult } from './tool-result';

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
  /** The run that produced this answer (its execution id). */
  run?: string;
}

interface Thread {
  turns: Turn[];
  conversation?: string;
}

const STORE_KEY = 'caxton.chat.';
/** Threads by target (NAME or NAME@VERSION), for this tab: kept across views, restored after a reload. */
const threads = new Map<string, Thread>();

function loadThread(target: string): Thread {
  const had = threads.get(target);
  if (had) return had;
  let t: Thread = { turns: [] };
  try {
    const raw = sessionStorage.getItem(STORE_KEY + target);
    if (raw) t = JSON.parse(raw) as Thread;
  } catch {
    // A thread that cannot be read back starts afresh.
  }
  threads.set(target, t);
  return t;
}

function saveThread(target: string, t: Thread): void {
  threads.set(target, t);
  try {
    // Errors are objects of their own; what is kept is what the thread said.
    const turns = t.turns.map(({ error, ...rest }) => ({
      ...rest,
      done: true,
      ...(error !== undefined && { meta: error instanceof Error ? error.message : 'failed' }),
    }));
    sessionStorage.setItem(STORE_KEY + target, JSON.stringify({ ...t, turns }));
  } catch {
    // Storage full or refused: the thread lives in memory only.
  }
}

/** One thread with one target: its turns, and sending a message along it. */
function useThread(target: string) {
  const [thread, setThread] = useState<Thread>(() => loadThread(target));
  const [busy, setBusy] = useState(false);
  const abort = useRef<AbortController>();
  const ref = useRef(thread);
  ref.current = thread;
  useEffect(() => () => abort.current?.abort(), []);

  const change = (fn: (t: Thread) => Thread) => {
    const next = fn(ref.current);
    ref.current = next;
    saveThread(target, next);
    setThread(next);
  };
  const update = (fn: (t: Turn) => Turn) =>
    change((th) => ({ ...th, turns: [...th.turns.slice(0, -1), fn(th.turns[th.turns.length - 1]!)] }));

  const ask = async (request: string) => {
    setBusy(true);
    change((th) => ({
      ...th,
      turns: [
        ...th.turns,
        { role: 'user', parts: [{ kind: 'text', text: request }], done: true },
        { role: 'agent', parts: [], done: false },
      ],
    }));
    const ac = new AbortController();
    abort.current = ac;
    try {
      const conversation = ref.current.conversation;
      const res = await send('POST', agentPath(target, '/invoke'), {
        json: { request, ...(conversation && { conversation_id: conversation }) },
        accept: 'text/event-stream',
        signal: ac.signal,
      });
      if (!res.body) throw new Error('the server sent no answer');
      await readSse(res.body, (ev) => onEvent(ev.event, JSON.parse(ev.data) as Record<string, unknown>), ac.signal);
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

  const onEvent = (event: string, data: Record<string, unknown>) => {
    if (event === 'token') {
      update((t) => {
        const last = t.parts[t.parts.length - 1];
        const parts: Part[] =
          last?.kind === 'text'
            ? [...t.parts.slice(0, -1), { kind: 'text', text: last.text + String(data.text) }]
            : [...t.parts, { kind: 'text', text: String(data.text) }];
        return { ...t, parts };
      });
    } else if (event === 'tool_call') {
      const call = data.call as { id: string; name: string; arguments: Record<string, unknown> };
      update((t) => ({
        ...t,
        parts: [...t.parts, { kind: 'tool', tool: { id: call.id, name: call.name, arguments: call.arguments } }],
      }));
    } else if (event === 'tool_result') {
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
    } else if (event === 'response') {
      const r = data as {
        content: string;
        execution_id: string;
        conversation_id?: string;
        usage: { total_tokens: number };
        execution_time_ms: number;
        model: string;
      };
      if (r.conversation_id) change((th) => ({ ...th, conversation: r.conversation_id }));
      update((t) => {
        // A model that did not stream tokens: the final content is the answer.
        const hasText = t.parts.some((p) => p.kind === 'text' && p.text.length > 0);
        const parts: Part[] = hasText || !r.content ? t.parts : [...t.parts, { kind: 'text', text: r.content }];
        return {
          ...t,
          parts,
          done: true,
          run: r.execution_id,
          meta: `${r.model} · ${r.usage.total_tokens} tokens · ${Math.round(r.execution_time_ms)} ms`,
        };
      });
    } else if (event === 'error') {
      const env = (data as { error: { code: string; message: string; details?: unknown; request_id?: string } }).error;
      update((t) => ({ ...t, done: true, error: new ApiError(0, env.code, env.message, env.details, env.request_id) }));
    }
  };

  const clear = () => change(() => ({ turns: [] }));
  return { thread, busy, ask, stop: () => abort.current?.abort(), clear };
}

export function AgentChat({ name }: { name: string }) {
  const { query } = useRoute();
  const rollout = useApi<RolloutStatus>(agentPath(name, '/rollout'));
  const ro = rollout.data;
  const live = ro?.live_version ?? undefined;
  const candidate = ro?.running ? ro.rollout?.candidate_version : undefined;
  const asked = Number(query.get('version') ?? '');
  // NAME@VERSION: the version asked for in the URL (?version=N), while it is not the live one.
  const version = Number.isSafeInteger(asked) && asked > 0 && asked !== live ? asked : undefined;
  const both = version !== undefined && query.get('beside') === 'live';
  const target = version !== undefined ? `${name}@${version}` : name;

  return (
    <div class="chat">
      {(candidate !== undefined || version !== undefined) && (
        <div class="chat-target row">
          <label for="chat-version">Chat with</label>
          <select
            id="chat-version"
            value={version === undefined ? '' : String(version)}
            onChange={(e) => setQuery({ version: (e.target as HTMLSelectElement).value || undefined })}
          >
            <option value="">
              {name} (live{live !== undefined ? `, version ${live}` : ''})
            </option>
            {candidate !== undefined && <option value={String(candidate)}>{`${name}@${candidate} (candidate)`}</option>}
            {version !== undefined && version !== candidate && (
              <option value={String(version)}>{`${name}@${version}`}</option>
            )}
          </select>
          {version !== undefined && (
            <label class="inline">
              <input
                type="checkbox"
                checked={both}
                onChange={(e) => setQuery({ beside: (e.target as HTMLInputElement).checked ? 'live' : undefined })}
              />{' '}
              Side by side with the live version
            </label>
          )}
        </div>
      )}
      <ChatPanes key={`${target}|${both}`} targets={both ? [name, target] : [target]} />
    </div>
  );
}

function ChatPanes({ targets }: { targets: string[] }) {
  const a = useThread(targets[0]!);
  // The second thread exists only side by side; hooks keep their order, so it is always made.
  const b = useThread(targets[1] ?? targets[0]!);
  const panes = targets.length > 1 ? [a, b] : [a];
  const [text, setText] = useState('');
  const busy = panes.some((p) => p.busy);
  const label = targets.length > 1 ? `${targets[0]} and ${targets[1]}` : targets[0]!;

  const submit = (e: Event) => {
    e.preventDefault();
    const request = text.trim();
    if (!request || busy) return;
    setText('');
    for (const p of panes) void p.ask(request);
  };

  return (
    <>
      <div class={targets.length > 1 ? 'chat-panes two' : 'chat-panes'}>
        {panes.map((p, i) => (
          <ChatLog key={targets[i]} target={targets[i]!} turns={p.thread.turns} />
        ))}
      </div>
      <form onSubmit={submit} class="chat-form">
        <label for="chat-input">Message to {label}</label>
        <textarea
          id="chat-input"
          rows={2}
          value={text}
          onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && !e.shiftKey) {
              e.preventDefault();
              (e.currentTarget as HTMLTextAreaElement).form?.requestSubmit();
            }
          }}
          aria-describedby="chat-help"
        />
        <div class="row">
          <button type="submit" disabled={busy || text.trim() === ''}>
            Send
          </button>
          {busy && (
            <button type="button" class="secondary" onClick={() => panes.forEach((p) => p.stop())}>
              Stop
            </button>
          )}
          {!busy && panes.some((p) => p.thread.turns.length > 0) && (
            <button type="button" class="secondary" onClick={() => panes.forEach((p) => p.clear())}>
              New conversation
            </button>
          )}
          <span id="chat-help" class="muted small">
            Enter sends, Shift+Enter starts a new line.
          </span>
        </div>
      </form>
    </>
  );
}

function ChatLog({ target, turns }: { target: string; turns: Turn[] }) {
  const ref = useRef<HTMLOListElement>(null);
  // The newest turn stays in view as it grows (within the log's own scroll box).
  useLayoutEffect(() => {
    const el = ref.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [turns]);
  return (
    <ol
      class="chat-log"
      ref={ref}
      aria-label={`Conversation with ${target}`}
      aria-live="polite"
      data-testid="chat-log"
      data-target={target}
      tabIndex={turns.length > 0 ? 0 : -1}
    >
      {turns.map((t, i) => (
        <li key={i} class={t.role}>
          <span class="who">{t.role === 'user' ? 'You' : target}</span>
          {t.parts.map((p, j) =>
            p.kind === 'text' ? <p key={j}>{p.text}</p> : <ToolCallView key={j} tool={p.tool} />,
          )}
          {!t.done && <p class="muted small">working…</p>}
          {(t.meta || t.run) && (
            <p class="muted small">
              {t.meta}
              {t.run && (
                <>
                  {' · '}
                  <Link to={`/runs/${encodeURIComponent(t.run)}`} data-testid="run-link">
                    its run
                  </Link>
                </>
              )}
            </p>
          )}
          <ErrorBox error={t.error} />
        </li>
      ))}
    </ol>
  );
}

/** A tool call on one line (its name and the start of its result); open it for the arguments and the whole result. */
function ToolCallView({ tool }: { tool: ToolEntry }) {
  const failed = tool.is_error === true;
  const preview =
    tool.result === undefined
      ? 'running…'
      : `${failed ? 'failed' : 'result'}${tool.duration_ms !== undefined ? ` in ${tool.duration_ms < 1 ? 'under 1' : Math.round(tool.duration_ms)} ms` : ''}: ${oneLine(tool.result)}`;
  return (
    <details class={`tool-call${failed ? ' failed' : ''}`} data-testid="tool-call">
      <summary>
        <strong>Tool call {tool.name}</strong> <span class="small muted">{preview}</span>
      </summary>
      <p class="small">Arguments:</p>
      <pre>{JSON.stringify(tool.arguments)}</pre>
      {tool.result !== undefined && (
        <>
          <p class="small">{failed ? 'Error' : 'Result'}:</p>
          <ToolResult text={tool.result} />
        </>
      )}
    </details>
  );
}

function oneLine(s: string): string {
  const flat = s.replace(/\s+/g, ' ').trim();
  return flat.length > 80 ? `${flat.slice(0, 79)}…` : flat;
}
