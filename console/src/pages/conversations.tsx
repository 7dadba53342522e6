/**
 * Conversations: the list (GET /api/v1/conversations, state and participant filters in
 * the URL), kept current from the agent event stream (GET /api/v1/events/stream, message.sent) for
 * a principal with observe:read and by polling otherwise; and one conversation as a sequence
 * diagram (GET /api/v1/conversations/:id, then live from its /events stream until it ends).
 */
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError } from '../api';
import { ErrorBox, Loading } from '../components/feedback';
import { LiveStatus } from '../components/live-status';
import { shownOffset, useApi, useLive, useReloadOnEvent } from '../hooks';
import type { PageProps } from '../pages';
import { Link, setQuery } from '../router';
import { can } from '../session';
import { BidsSummary } from './bids-summary';
import { isRoundProtocol, RoundsSummary } from './rounds-summary';
import {
  type AclMessage,
  type Conversation,
  isTerminal,
  MessageFields,
  offsetText,
  StateBadge,
  STATES,
  targetsOf,
  when,
} from './messaging-common';
import { ConversationDeadLetters } from './conversation-dead-letters';
import { RunLinks, useRunsOf } from './message-runs';

export default function Conversations({ params, query }: PageProps) {
  if (params.id !== undefined) return <ConversationView key={params.id} id={params.id} query={query} />;
  return <ConversationList query={query} />;
}

// ------------------------------------------------------------------------------------------ list

interface ConversationPage {
  conversations: Conversation[];
  total: number;
  limit: number;
  offset: number;
}

const PAGE_SIZE = 50;

/** The message of the server's validation issue about `field` (details.issues), if it named one. */
export function issueAbout(error: unknown, field: string): string | undefined {
  if (!(error instanceof ApiError) || error.status !== 400) return undefined;
  const issues = Array.isArray(error.details.issues)
    ? (error.details.issues as { field?: unknown; message?: unknown }[])
    : [];
  const hit = issues.find((i) => i.field === field);
  return hit && typeof hit.message === 'string' ? `${field}: ${hit.message}` : undefined;
}

function ConversationList({ query }: { query: URLSearchParams }) {
  const state = query.get('state') ?? '';
  const participant = query.get('participant') ?? '';
  const offset = Math.max(0, Number(query.get('offset') ?? 0) || 0);
  const list = useApi<ConversationPage>('/api/v1/conversations', {
    state: state || undefined,
    participant: participant || undefined,
    limit: PAGE_SIZE,
    offset,
  });
  const [participantDraft, setParticipantDraft] = useState(participant);
  useEffect(() => setParticipantDraft(participant), [participant]);

  // Live: every message sent reloads the page (at most four times a second); polled every 3 s
  // otherwise, including when the stream is refused (events disabled, a 403).
  const observe = can('observe:read');
  const { live, streaming } = useReloadOnEvent('message.sent', list.reload, {
    throttleMs: 250,
    pollMs: 3_000,
    streamingPollMs: 15_000,
  });

  const stateError = issueAbout(list.error, 'state');
  const shown = shownOffset(list);
  const participantError = issueAbout(list.error, 'participant') ?? issueAbout(list.error, 'offset');
  const otherError = list.error && !stateError && !participantError ? list.error : undefined;
  const page = list.data;

  return (
    <section class="msg-page" aria-labelledby="conversations-title">
      <h1 id="conversations-title">Conversations</h1>
      <form
        class="filters"
        aria-label="Filter conversations"
        onSubmit={(e) => {
          e.preventDefault();
          setQuery({ participant: participantDraft.trim() || undefined, offset: undefined });
        }}
      >
        <div>
          <label for="conv-state">State</label>
          <select
            id="conv-state"
            value={state}
            onChange={(e) => setQuery({ state: (e.target as HTMLSelectElement).value || undefined, offset: undefined })}
            aria-invalid={stateError ? true : undefined}
            {...(stateError && { 'aria-describedby': 'conv-state-error' })}
          >
            <option value="">Any state</option>
            {STATES.map((s) => (
              <option key={s} value={s}>
                {s.replace('_', ' ')}
              </option>
            ))}
            {state && !(STATES as readonly string[]).includes(state) && (
              <option value={state}>{state} (unknown)</option>
            )}
          </select>
          {stateError && (
            <p class="field-error" id="conv-state-error" role="alert">
              {stateError}
            </p>
          )}
        </div>
        <div>
          <label for="conv-participant">Participant</label>
          <input
            id="conv-participant"
            type="search"
            placeholder="agent or sender"
            value={participantDraft}
            onInput={(e) => setParticipantDraft((e.target as HTMLInputElement).value)}
            aria-invalid={participantError ? true : undefined}
            {...(participantError && { 'aria-describedby': 'conv-participant-error' })}
          />
          {participantError && (
            <p class="field-error" id="conv-participant-error" role="alert">
              {participantError}
            </p>
          )}
        </div>
        <div class="filters-actions">
          <button type="submit">Filter</button>
        </div>
      </form>
      <LiveStatus state={live} label="Live updates (agent events)" />
      {!observe && <p class="muted small">Refreshed every 3 s (following the event stream needs observe:read).</p>}
      {observe && !streaming && <p class="muted small">Refreshed every 3 s instead.</p>}
      <ErrorBox error={otherError} />
      {!page && !list.error && <Loading what="conversations" />}
      {page && (
        <>
          <p class="muted" role="status" data-testid="conversation-count">
            {page.total === 0
              ? 'No conversations match.'
              : `${page.total} conversation${page.total === 1 ? '' : 's'}${page.total > page.conversations.length ? `, showing ${shown + 1}–${shown + page.conversations.length}` : ''}`}
          </p>
          {page.conversations.length > 0 && (
            <div class="table-wrap">
              <table class="cards" data-testid="conversations">
                <caption class="visually-hidden">Conversations, newest first</caption>
                <thead>
                  <tr>
                    <th scope="col">Conversation</th>
                    <th scope="col">State</th>
                    <th scope="col">Protocol</th>
                    <th scope="col">Initiator</th>
                    <th scope="col">Participants</th>
                    <th scope="col">Turns</th>
                    <th scope="col">Updated</th>
                  </tr>
                </thead>
                <tbody>
                  {page.conversations.map((c) => (
                    <tr key={c.id} data-testid="conversation-row" data-state={c.state}>
                      <td data-label="Conversation">
                        <Link to={`/conversations/${encodeURIComponent(c.id)}`}>
                          <code>{c.id}</code>
                        </Link>
                      </td>
                      <td data-label="State">
                        <StateBadge state={c.state} />
                      </td>
                      <td data-label="Protocol">{c.protocol ?? '—'}</td>
                      <td data-label="Initiator">{c.initiator}</td>
                      <td data-label="Participants">{c.participants.join(', ')}</td>
                      <td data-label="Turns">{c.turns}</td>
                      <td data-label="Updated">{when(c.updated_at)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          {page.total > PAGE_SIZE && (
            <nav class="pager" aria-label="Pages of conversations">
              <button
                type="button"
                class="secondary"
                disabled={shown === 0}
                onClick={() => setQuery({ offset: String(Math.max(0, shown - PAGE_SIZE)) })}
              >
                Newer
              </button>
              <button
                type="button"
                class="secondary"
                disabled={shown + PAGE_SIZE >= page.total}
                onClick={() => setQuery({ offset: String(shown + PAGE_SIZE) })}
              >
                Older
              </button>
            </nav>
          )}
        </>
      )}
    </section>
  );
}

// ------------------------------------------------------------------------------------------ one conversation

interface ConversationDoc {
  conversation: Conversation;
  messages: AclMessage[];
}

function ConversationView({ id, query }: { id: string; query: URLSearchParams }) {
  const path = `/api/v1/conversations/${encodeURIComponent(id)}`;
  const doc = useApi<ConversationDoc>(path);
  const [conv, setConv] = useState<Conversation>();
  const [byId, setById] = useState<Map<string, AclMessage>>(new Map());
  const [ended, setEnded] = useState(false);

  useEffect(() => {
    if (!doc.data) return;
    setConv(doc.data.conversation);
    setById((prev) => merge(prev, doc.data!.messages));
  }, [doc.data]);

  const follow = doc.data !== undefined && !isTerminal(doc.data.conversation.state) && !ended;
  const live = useLive(
    follow
      ? {
          path: `${path}/events`,
          onEvent: (e) => {
            try {
              if (e.event === 'message') setById((prev) => merge(prev, [JSON.parse(e.data) as AclMessage]));
              else if (e.event === 'state') setConv(JSON.parse(e.data) as Conversation);
              else if (e.event === 'end') setEnded(true);
            } catch {
              /* not JSON: ignore */
            }
          },
        }
      : undefined,
    [id, follow],
  );

  const messages = useMemo(
    () => [...byId.values()].sort((a, b) => Date.parse(a.timestamp) - Date.parse(b.timestamp)),
    [byId],
  );
  const t0 = messages.length > 0 ? Date.parse(messages[0]!.timestamp) : 0;
  // Reloaded as messages arrive and when the conversation ends: a run is recorded once it finishes.
  const runs = useRunsOf(id, `${messages.length}:${conv?.state ?? ''}`);
  const selectedId = query.get('m') ?? undefined;
  const selected = messages.find((m) => m.id === selectedId);
  const detailRef = useRef<HTMLHeadingElement>(null);
  const chosen = useRef(false);
  // A layout effect, not an effect: focus moves in the commit that shows the message, so
  // nothing (a keystroke, a screen reader, a test) sees the detail before focus is on it.
  useLayoutEffect(() => {
    if (chosen.current && selected) detailRef.current?.focus();
    chosen.current = false;
  }, [selectedId, selected !== undefined]);
  const select = (mid: string) => {
    chosen.current = true;
    setQuery({ m: mid });
  };

  if (doc.error) {
    return (
      <section class="msg-page" aria-labelledby="conversation-title">
        <h1 id="conversation-title">Conversation</h1>
        <ErrorBox error={doc.error} />
        <p>
          <Link to="/conversations">All conversations</Link>
        </p>
      </section>
    );
  }
  if (!conv) return <Loading what="the conversation" />;

  return (
    <section class="msg-page" aria-labelledby="conversation-title">
      <p class="crumbs">
        <Link to="/conversations">Conversations</Link> /
      </p>
      <h1 id="conversation-title">
        Conversation <code>{conv.id}</code>
      </h1>
      <dl class="fields">
        <dt>State</dt>
        <dd data-testid="conversation-state">
          <StateBadge state={conv.state} />
          {conv.reason && <span class="muted"> — {conv.reason}</span>}
        </dd>
        <dt>Protocol</dt>
        <dd>{conv.protocol ?? '—'}</dd>
        <dt>Initiator</dt>
        <dd>{conv.initiator}</dd>
        <dt>Turns</dt>
        <dd>
          {conv.turns} of at most {conv.max_turns}
        </dd>
        <dt>Started</dt>
        <dd>{when(conv.created_at)}</dd>
      </dl>
      {conv.state === 'failed' && <ConversationDeadLetters id={conv.id} participants={conv.participants} />}
      {follow && <LiveStatus state={live} label="Following the conversation" />}
      {ended && (
        <p class="muted small" role="status">
          The conversation ended ({conv.state}).
        </p>
      )}
      {isRoundProtocol(conv.protocol) ? (
        <RoundsSummary protocol={conv.protocol!} messages={messages} />
      ) : (
        (conv.protocol === 'fipa-contract-net' || messages.some((m) => m.performative === 'cfp')) && (
          <ContractNetSummary messages={messages} />
        )
      )}
      {messages.some((m) => m.performative === 'cfp') && (
        <BidsSummary path={path} version={`${messages.length}:${conv.state}`} />
      )}
      <h2>Messages</h2>
      {messages.length === 0 ? (
        <p class="muted">No messages yet.</p>
      ) : (
        <>
          <SequenceDiagram conversation={conv} messages={messages} t0={t0} selected={selectedId} onSelect={select} />
          <details class="seq-table">
            <summary>The same messages as a table ({messages.length})</summary>
            <div class="table-wrap">
              <table data-testid="message-table">
                <caption class="visually-hidden">Messages of conversation {conv.id}, oldest first</caption>
                <thead>
                  <tr>
                    <th scope="col">#</th>
                    <th scope="col">Time</th>
                    <th scope="col">Performative</th>
                    <th scope="col">From</th>
                    <th scope="col">To</th>
                    <th scope="col">In reply to</th>
                    <th scope="col">Run</th>
                    <th scope="col">
                      <span class="visually-hidden">Show</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {messages.map((m, i) => {
                    const replied = m.in_reply_to ? messages.findIndex((x) => x.id === m.in_reply_to) : -1;
                    return (
                      <tr key={m.id}>
                        <td>{i + 1}</td>
                        <td>{offsetText(Date.parse(m.timestamp) - t0)}</td>
                        <td>{m.performative}</td>
                        <td>{m.sender}</td>
                        <td>{targetsOf(m).join(', ')}</td>
                        <td>{m.in_reply_to ? replied >= 0 ? `#${replied + 1}` : <code>{m.in_reply_to}</code> : '—'}</td>
                        <td>
                          <RunLinks runs={runs.get(m.id)} compact />
                        </td>
                        <td>
                          <button
                            type="button"
                            class="secondary small"
                            onClick={() => select(m.id)}
                            aria-label={`Show message ${i + 1}: ${m.performative} from ${m.sender}`}
                          >
                            Show
                          </button>
                        </td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </div>
          </details>
        </>
      )}
      {selected && (
        <section class="card message-detail" aria-labelledby="message-detail-title" data-testid="message-detail">
          <h2 id="message-detail-title" tabIndex={-1} ref={detailRef}>
            Message {messages.indexOf(selected) + 1}: {selected.performative} from {selected.sender}
          </h2>
          <MessageFields m={selected} offset={offsetText(Date.parse(selected.timestamp) - t0)} />
          {runs.has(selected.id) && (
            <p>
              Handled by <RunLinks runs={runs.get(selected.id)} />
            </p>
          )}
          <button type="button" class="secondary" onClick={() => setQuery({ m: undefined })}>
            Close
          </button>
        </section>
      )}
    </section>
  );
}

function merge(prev: Map<string, AclMessage>, add: readonly AclMessage[]): Map<string, AclMessage> {
  if (add.every((m) => prev.has(m.id))) return prev;
  const next = new Map(prev);
  for (const m of add) next.set(m.id, m);
  return next;
}

/** A Contract Net at a glance: the call, who bid, who refused, who won and who lost. */
function ContractNetSummary({ messages }: { messages: readonly AclMessage[] }) {
  const of = (p: string) => messages.filter((m) => m.performative === p);
  const cfp = of('cfp')[0];
  const bidders = cfp ? targetsOf(cfp) : [];
  const names = (ms: AclMessage[], side: 'sender' | 'to') =>
    ms.length === 0 ? 'none' : ms.map((m) => (side === 'sender' ? m.sender : targetsOf(m).join(', '))).join(', ');
  return (
    <section class="card cnp" aria-labelledby="cnp-title" data-testid="cnp-summary">
      <h2 id="cnp-title">Contract Net</h2>
      <ul>
        <li>
          Call for proposals: {cfp ? `${cfp.sender} → ${bidders.join(', ')}` : 'not seen yet'}{' '}
          {cfp && <span class="muted">({typeof cfp.content === 'string' ? cfp.content : 'structured content'})</span>}
        </li>
        <li data-testid="cnp-proposals">
          Proposals ({of('propose').length}): {names(of('propose'), 'sender')}
        </li>
        {of('refuse').length > 0 && (
          <li>
            Refused ({of('refuse').length}): {names(of('refuse'), 'sender')}
          </li>
        )}
        <li data-testid="cnp-accepted">Accepted: {names(of('accept-proposal'), 'to')}</li>
        <li data-testid="cnp-rejected">Rejected: {names(of('reject-proposal'), 'to')}</li>
      </ul>
    </section>
  );
}

// ------------------------------------------------------------------------------------------ the diagram

const COL = 150;
const PAD = 16;
const HEAD = 34;
const TOP = HEAD + 28;
const ROW = 44;

const COLORS: Record<string, string> = {
  cfp: '#0b5cad',
  propose: '#6f42c1',
  'accept-proposal': '#1a7f37',
  agree: '#1a7f37',
  'reject-proposal': '#b42318',
  refuse: '#b42318',
  failure: '#b42318',
  'not-understood': '#b42318',
  cancel: '#9a6700',
};

/** Lifelines: the initiator first, then the conversation's participants, then anyone else in the order they appear. */
export function lifelinesOf(
  conv: Pick<Conversation, 'initiator' | 'participants'>,
  messages: readonly AclMessage[],
): string[] {
  const out: string[] = [];
  const add = (n: string) => {
    if (!out.includes(n)) out.push(n);
  };
  for (const m of messages) {
    add(m.sender);
    for (const t of targetsOf(m)) add(t);
  }
  // The initiator leads when it took part; participants who have not spoken yet come last.
  const ordered = out.includes(conv.initiator) ? [conv.initiator, ...out.filter((n) => n !== conv.initiator)] : out;
  for (const p of conv.participants) if (!ordered.includes(p)) ordered.push(p);
  return ordered;
}

const short = (s: string, n = 20) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

interface Arrow {
  m: AclMessage;
  i: number;
  y: number;
  sx: number;
  txs: number[];
  x0: number;
  x1: number;
  self: boolean;
  label: string;
  describe: string;
}

function SequenceDiagram({
  conversation,
  messages,
  t0,
  selected,
  onSelect,
}: {
  conversation: Conversation;
  messages: readonly AclMessage[];
  t0: number;
  selected: string | undefined;
  onSelect: (id: string) => void;
}) {
  const lines = lifelinesOf(conversation, messages);
  const x = (name: string) => PAD + COL / 2 + Math.max(0, lines.indexOf(name)) * COL;
  const width = PAD * 2 + lines.length * COL;
  const height = TOP + messages.length * ROW + 16;
  const arrows: Arrow[] = messages.map((m, i) => {
    const sx = x(m.sender);
    const targets = targetsOf(m);
    const txs = targets.map(x);
    const self = txs.every((t) => t === sx);
    const xs = [sx, ...txs];
    const offset = offsetText(Date.parse(m.timestamp) - t0);
    return {
      m,
      i,
      y: TOP + i * ROW + 22,
      sx,
      txs,
      x0: Math.min(...xs),
      x1: self ? sx + 40 : Math.max(...xs),
      self,
      label: `${m.performative} ${offset}`,
      describe: `Message ${i + 1}, ${offset}: ${m.performative} from ${m.sender} to ${targets.join(', ')}${m.in_reply_to ? ', a reply' : ''}`,
    };
  });
  const title = `Sequence diagram of conversation ${conversation.id}: ${messages.length} message${messages.length === 1 ? '' : 's'} between ${lines.join(', ')}`;
  return (
    <div
      class="seq-scroll"
      role="region"
      aria-label="Sequence diagram (scrolls sideways on narrow screens)"
      tabIndex={0}
    >
      <div class="seq">
        <svg
          role="img"
          aria-labelledby="seq-title"
          width={width}
          height={height}
          viewBox={`0 0 ${width} ${height}`}
          data-testid="sequence-diagram"
          class="seq-art"
        >
          <title id="seq-title">{title}</title>
          {lines.map((n) => (
            <g key={n}>
              <line x1={x(n)} y1={HEAD} x2={x(n)} y2={height - 4} stroke="#8c959f" stroke-dasharray="4 4" />
              <rect
                x={x(n) - COL / 2 + 8}
                y={4}
                width={COL - 16}
                height={HEAD - 4}
                rx={4}
                fill="#eaf2fb"
                stroke="#0b5cad"
              />
              <text
                x={x(n)}
                y={4 + (HEAD - 4) / 2 + 5}
                text-anchor="middle"
                font-size="13"
                font-weight="600"
                fill="#1b1f24"
                data-testid="lifeline"
              >
                {short(n)}
              </text>
            </g>
          ))}
          {arrows.map((a) => {
            const color = COLORS[a.m.performative] ?? '#1b1f24';
            const on = a.m.id === selected;
            const far = a.self
              ? a.sx + 40
              : a.txs.reduce((f, t) => (Math.abs(t - a.sx) > Math.abs(f - a.sx) ? t : f), a.txs[0]!);
            return (
              <g key={a.m.id} data-testid="arrow-art" data-performative={a.m.performative}>
                {on && (
                  <rect x={a.x0 - 8} y={a.y - 24} width={a.x1 - a.x0 + 16} height={ROW - 4} rx={4} fill="#fff4e0" />
                )}
                {a.self ? (
                  <path
                    d={`M ${a.sx} ${a.y - 6} h 40 v 12 h -34`}
                    fill="none"
                    stroke={color}
                    stroke-width={on ? 3 : 1.6}
                  />
                ) : (
                  <line
                    x1={a.x0}
                    y1={a.y}
                    x2={a.x1}
                    y2={a.y}
                    stroke={color}
                    stroke-width={on ? 3 : 1.6}
                    {...(a.m.in_reply_to && { 'stroke-dasharray': '6 3' })}
                  />
                )}
                {(a.self ? [a.sx + 6] : a.txs.filter((t) => t !== a.sx)).map((t, k) => {
                  const d = a.self ? -1 : t > a.sx ? 1 : -1;
                  const y = a.self ? a.y + 6 : a.y;
                  return (
                    <polygon key={k} points={`${t},${y} ${t - 9 * d},${y - 5} ${t - 9 * d},${y + 5}`} fill={color} />
                  );
                })}
                <circle cx={a.sx} cy={a.self ? a.y - 6 : a.y} r={3} fill={color} />
                <text
                  x={a.self ? a.sx + 46 : (a.sx + far) / 2}
                  y={a.y - 7}
                  text-anchor={a.self ? 'start' : 'middle'}
                  font-size="12"
                  fill={color}
                  font-weight={on ? '700' : '400'}
                >
                  {a.label}
                </text>
              </g>
            );
          })}
        </svg>
        {/* The arrows' keyboard and pointer targets, over the picture (a role="img" may not hold controls). */}
        <svg
          class="seq-hits"
          width={width}
          height={height}
          viewBox={`0 0 ${width} ${height}`}
          role="group"
          aria-label="Messages in the diagram: Enter shows one"
        >
          {arrows.map((a) => (
            <g
              key={a.m.id}
              class="seq-hit"
              role="button"
              tabindex={0}
              aria-label={a.describe}
              aria-pressed={a.m.id === selected}
              data-testid="arrow"
              data-performative={a.m.performative}
              data-message-id={a.m.id}
              onClick={() => onSelect(a.m.id)}
              onKeyDown={(e) => {
                if (e.key === 'Enter' || e.key === ' ') {
                  e.preventDefault();
                  onSelect(a.m.id);
                }
              }}
            >
              <rect x={a.x0 - 8} y={a.y - 24} width={a.x1 - a.x0 + 16} height={ROW - 4} rx={4} fill="transparent" />
            </g>
          ))}
        </svg>
      </div>
    </div>
  );
}
