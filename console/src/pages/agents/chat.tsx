/**
 * Chat with an agent: POST /api/v1/agents/NAME/invoke with Accept: text/event-stream streams
 * `token`, `tool_call` and `tool_result` events, then `response` (or `error`). Each tool call sits
 * where it happened, collapsed to one line; each answer links to its run. Threads are the
 * server's (read from the execution records by conversation id, chat-threads.ts): listed beside
 * the chat, the one shown named in the address (?thread=ID), so a reload or another browser
 * finds it; continuing one gives the model its earlier turns. NAME@VERSION chats with any version
 * the agent's history keeps, alone or side by side with the live version, one message going to both.
 */
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { ApiError, send } from '../../api';
import { ErrorBox } from '../../components/feedback';
import { when } from '../../format';
import { useApi } from '../../hooks';
import { readSse } from '../../live';
import { Link, setQuery, useRoute } from '../../router';
import {
  loadThread,
  meta,
  newConversation,
  remember,
  startThread,
  type Part,
  type Thread,
  type ThreadSummary,
  type ToolEntry,
  type Turn,
} from './chat-threads';
import { agentPath, type RolloutStatus, type Versions } from './types';
import { ToolResult } from './tool-result';

/**
 * One thread with one target: its turns, and sending a message along it. `wanted` names the
 * thread to show (undefined: the target's latest); `onAnswered` hears of each finished turn.
 */
function useThread(
  name: string,
  target: string,
  wanted: string | undefined,
  onAnswered: (id: string) => void,
  onFound: (id: string) => void,
) {
  const [thread, setThread] = useState<Thread>(() => ({ conversation: wanted ?? newConversation(), turns: [] }));
  const [loading, setLoading] = useState<unknown>(true);
  const [busy, setBusy] = useState(false);
  const abort = useRef<AbortController>();
  const ref = useRef(thread);
  ref.current = thread;
  useEffect(() => () => abort.current?.abort(), []);
  useEffect(() => {
    if (wanted !== undefined && wanted === ref.current.conversation && loading !== true) return;
    let live = true;
    setLoading(true);
    loadThread(name, target, wanted).then(
      (t) => {
        if (!live) return;
        ref.current = t;
        setThread(t);
        setLoading(false);
        // An earlier thread found without being named: the address names it from now on.
        if (wanted === undefined && t.turns.length > 0) onFound(t.conversation);
      },
      (e: unknown) => live && setLoading(e),
    );
    return () => void (live = false);
  }, [name, target, wanted]);

  const change = (fn: (t: Thread) => Thread) => {
    const next = fn(ref.current);
    ref.current = next;
    remember(target, next);
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
    const conversation = ref.current.conversation;
    try {
      const res = await send('POST', agentPath(target, '/invoke'), {
        json: { request, conversation_id: conversation },
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
      onAnswered(conversation);
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
        parts: [
          ...t.parts,
          { kind: 'tool', tool: { id: call.id, name: call.name, args: JSON.stringify(call.arguments) } },
        ],
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
        usage: { total_tokens: number };
        execution_time_ms: number;
        model: string;
      };
      update((t) => {
        // A model that did not stream tokens: the final content is the answer.
        const hasText = t.parts.some((p) => p.kind === 'text' && p.text.length > 0);
        const parts: Part[] = hasText || !r.content ? t.parts : [...t.parts, { kind: 'text', text: r.content }];
        return {
          ...t,
          parts,
          done: true,
          run: r.execution_id,
          meta: meta(r.model, r.usage.total_tokens, r.execution_time_ms),
        };
      });
    } else if (event === 'error') {
      const env = (data as { error: { code: string; message: string; details?: unknown; request_id?: string } }).error;
      update((t) => ({ ...t, done: true, error: new ApiError(0, env.code, env.message, env.details, env.request_id) }));
    }
  };

  return { thread, loading, busy, ask, stop: () => abort.current?.abort() };
}

export function AgentChat({ name }: { name: string }) {
  const { query } = useRoute();
  const rollout = useApi<RolloutStatus>(agentPath(name, '/rollout'));
  const kept = useApi<Versions>(agentPath(name, '/versions'), { limit: 100 });
  const threads = useApi<{ threads: ThreadSummary[] }>(agentPath(name, '/threads'), { limit: 50 });
  const ro = rollout.data;
  const live = ro?.live_version ?? kept.data?.current ?? undefined;
  const candidate = ro?.running ? ro.rollout?.candidate_version : undefined;
  const asked = Number(query.get('version') ?? '');
  // NAME@VERSION: the version asked for in the URL (?version=N), while it is not the live one.
  const version = Number.isSafeInteger(asked) && asked > 0 && asked !== live ? asked : undefined;
  const both = version !== undefined && query.get('beside') === 'live';
  const target = version !== undefined ? `${name}@${version}` : name;
  const others = (kept.data?.versions ?? []).map((v) => v.version).filter((v) => v !== live);
  if (version !== undefined && !others.includes(version)) others.unshift(version);

  /** A new thread for each pane, named in the address. */
  const newThread = () => setQuery({ thread: startThread(target), ...(both && { live_thread: startThread(name) }) });
  const pick = (t: ThreadSummary) => {
    const at = t.target.lastIndexOf('@');
    setQuery({ thread: t.conversation_id, version: at > 0 ? t.target.slice(at + 1) : undefined, beside: undefined });
  };

  return (
    <div class="chat-layout">
      <div class="chat">
        {(others.length > 0 || candidate !== undefined) && (
          <div class="chat-target row">
            <label for="chat-version">Chat with</label>
            <select
              id="chat-version"
              value={version === undefined ? '' : String(version)}
              onChange={(e) =>
                setQuery({ version: (e.target as HTMLSelectElement).value || undefined, thread: undefined })
              }
            >
              <option value="">
                {name} (live{live !== undefined ? `, version ${live}` : ''})
              </option>
              {others.map((v) => (
                <option key={v} value={String(v)}>{`${name}@${v}${v === candidate ? ' (candidate)' : ''}`}</option>
              ))}
            </select>
            {version !== undefined && (
              <label class="inline">
                <input
                  type="checkbox"
                  checked={both}
                  onChange={(e) =>
                    setQuery(
                      (e.target as HTMLInputElement).checked
                        ? { beside: 'live', live_thread: startThread(name) }
                        : { beside: undefined, live_thread: undefined },
                    )
                  }
                />{' '}
                Side by side with the live version
              </label>
            )}
          </div>
        )}
        <ChatPanes
          key={`${target}|${both}`}
          name={name}
          panes={
            both
              ? [
                  { target: name, param: 'live_thread', wanted: query.get('live_thread') ?? undefined },
                  { target, param: 'thread', wanted: query.get('thread') ?? undefined },
                ]
              : [{ target, param: 'thread', wanted: query.get('thread') ?? undefined }]
          }
          onNew={newThread}
          onAnswered={threads.reload}
        />
      </div>
      <ThreadList
        name={name}
        threads={threads.data?.threads}
        error={threads.error}
        current={query.get('thread') ?? undefined}
        onPick={pick}
        onNew={newThread}
      />
    </div>
  );
}

/** The caller's threads with the agent, newest activity first: pick one to continue it. */
function ThreadList(props: {
  name: string;
  threads: ThreadSummary[] | undefined;
  error: unknown;
  current: string | undefined;
  onPick: (t: ThreadSummary) => void;
  onNew: () => void;
}) {
  const { threads, current } = props;
  return (
    <aside class="chat-threads" aria-labelledby="threads-title">
      <div class="row">
        <h3 id="threads-title">Threads</h3>
        <button type="button" class="secondary" onClick={props.onNew}>
          New thread
        </button>
      </div>
      <ErrorBox error={props.error} />
      {threads && threads.length === 0 && <p class="muted small">No threads with {props.name} yet.</p>}
      {threads && threads.length > 0 && (
        <ul data-testid="thread-list">
          {threads.map((t) => (
            <li key={t.conversation_id}>
              <button
                type="button"
                class="thread-pick"
                aria-current={t.conversation_id === current ? 'true' : undefined}
                onClick={() => props.onPick(t)}
              >
                {t.title || '(empty)'}
              </button>
              <span class="muted small">
                {t.target !== props.name && `${t.target} · `}
                {t.turns} {t.turns === 1 ? 'turn' : 'turns'} · {when(t.last_active_at)}
              </span>
            </li>
          ))}
        </ul>
      )}
    </aside>
  );
}

interface PaneSpec {
  target: string;
  /** The address's query parameter naming its thread. */
  param: 'thread' | 'live_thread';
  wanted: string | undefined;
}

function ChatPanes(props: { name: string; panes: PaneSpec[]; onNew: () => void; onAnswered: () => void }) {
  const specs = props.panes;
  // The address names the thread shown (from its first answer on), so a reload or another browser finds it.
  const name = (spec: PaneSpec) => (id: string) => {
    if (new URLSearchParams(window.location.search).get(spec.param) !== id) setQuery({ [spec.param]: id });
  };
  const answered = (spec: PaneSpec) => (id: string) => {
    name(spec)(id);
    props.onAnswered();
  };
  const first = specs[0]!;
  const second = specs[1] ?? first;
  const a = useThread(props.name, first.target, first.wanted, answered(first), name(first));
  // The second thread exists only side by side; hooks keep their order, so it is always made.
  const b = useThread(props.name, second.target, second.wanted, answered(second), name(second));
  const panes = specs.length > 1 ? [a, b] : [a];
  const [text, setText] = useState('');
  // A message sent while a thread is still loading waits for it, so its turn joins that thread
  // rather than being dropped or starting another.
  const [waiting, setWaiting] = useState<string>();
  const loading = panes.some((p) => p.loading === true);
  const answering = panes.some((p) => p.busy);
  const label = specs.length > 1 ? `${specs[0]!.target} and ${specs[1]!.target}` : first.target;

  const ask = (request: string) => {
    for (const p of panes) void p.ask(request);
  };
  const submit = (e: Event) => {
    e.preventDefault();
    const request = text.trim();
    if (!request || answering || waiting !== undefined) return;
    setText('');
    if (loading) setWaiting(request);
    else ask(request);
  };
  useEffect(() => {
    if (waiting === undefined || loading) return;
    setWaiting(undefined);
    ask(waiting);
  }, [waiting, loading]);

  return (
    <>
      <div class={specs.length > 1 ? 'chat-panes two' : 'chat-panes'}>
        {panes.map((p, i) => (
          <div key={specs[i]!.target}>
            <ErrorBox error={p.loading === true || p.loading === false ? undefined : p.loading} />
            <ChatLog target={specs[i]!.target} turns={p.thread.turns} conversation={p.thread.conversation} />
          </div>
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
          <button type="submit" disabled={answering || waiting !== undefined || text.trim() === ''}>
            Send
          </button>
          {waiting !== undefined && (
            <span class="muted small" role="status">
              Sending once the thread has loaded.
            </span>
          )}
          {answering && (
            <button type="button" class="secondary" onClick={() => panes.forEach((p) => p.stop())}>
              Stop
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

function ChatLog({ target, turns, conversation }: { target: string; turns: Turn[]; conversation: string }) {
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
      data-conversation={conversation}
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
      <pre>{tool.args}</pre>
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
