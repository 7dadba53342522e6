/**
 * Messages: every stored message, newest first (GET /api/v1/messages), filtered on the
 * server by performative, sender, receiver and conversation, with the filters in the URL; refreshed
 * live when a message is sent (the event stream, for a principal with observe:read) or every 5 s.
 * A row opens the message (messages.tsx).
 */
import { Loading } from '../components/feedback';
import { FieldError } from '../components/issues';
import { useApi, useReloadOnEvent } from '../hooks';
import { Link, setQuery } from '../router';
import { FIPA_ACTS } from '../vocabulary';
import { type AclMessage, contentText, targetsOf, when } from './messaging-common';

interface MessagePage {
  messages: AclMessage[];
  total: number;
  limit: number;
  offset: number;
}

const PAGE_SIZE = 50;

const FIELDS = [
  { key: 'sender', label: 'Sender' },
  { key: 'receiver', label: 'Receiver' },
  { key: 'conversation_id', label: 'Conversation' },
] as const;

export function MessageList({ query }: { query: URLSearchParams }) {
  const filters: Record<string, string> = {};
  for (const k of ['performative', 'sender', 'receiver', 'conversation_id']) {
    const v = query.get(k)?.trim();
    if (v) filters[k] = v;
  }
  const offset = Math.max(0, Number(query.get('offset') ?? 0) || 0);
  const list = useApi<MessagePage>('/api/v1/messages', { ...filters, limit: PAGE_SIZE, offset });
  // Live: a message sent reloads the list (at most once a second); polled without the stream.
  useReloadOnEvent('message.sent', list.reload, { throttleMs: 1000, pollMs: 5000 });
  const page = list.data;
  const set = (k: string, v: string) => setQuery({ [k]: v || undefined, offset: undefined });

  return (
    <section class="msg-page" aria-labelledby="messages-title">
      <h1 id="messages-title">Messages</h1>
      <p class="muted">Every stored message, newest first. Open one to see its deliveries and its conversation.</p>
      <form class="filters" aria-label="Filter messages" onSubmit={(e) => e.preventDefault()}>
        <div>
          <label for="msg-performative">Performative</label>
          <select
            id="msg-performative"
            class="narrow"
            value={filters.performative ?? ''}
            onChange={(e) => set('performative', (e.target as HTMLSelectElement).value)}
          >
            <option value="">any</option>
            {FIPA_ACTS.map((a) => (
              <option key={a} value={a}>
                {a}
              </option>
            ))}
          </select>
        </div>
        {FIELDS.map((f) => (
          <div key={f.key}>
            <label for={`msg-${f.key}`}>{f.label}</label>
            <input
              id={`msg-${f.key}`}
              type="search"
              value={query.get(f.key) ?? ''}
              onInput={(e) => set(f.key, (e.target as HTMLInputElement).value)}
              aria-describedby={list.error ? 'msg-filter-error' : undefined}
            />
          </div>
        ))}
      </form>
      {list.error !== undefined && <FieldError error={list.error} id="msg-filter-error" />}
      {!page && list.error === undefined && <Loading what="messages" />}
      {page && (
        <>
          <p class="muted" role="status" data-testid="message-count">
            {page.total === 0
              ? 'No messages match.'
              : `${page.messages.length} shown of ${page.total} message${page.total === 1 ? '' : 's'}`}
          </p>
          {page.messages.length > 0 && (
            <div class="table-wrap" tabIndex={0} role="region" aria-label="Messages">
              <table class="cards" data-testid="messages">
                <caption class="visually-hidden">Messages, newest first</caption>
                <thead>
                  <tr>
                    <th scope="col">Message</th>
                    <th scope="col">Sent</th>
                    <th scope="col">From</th>
                    <th scope="col">To</th>
                    <th scope="col">Content</th>
                  </tr>
                </thead>
                <tbody>
                  {page.messages.map((m) => (
                    <tr key={m.id} data-testid="message-row">
                      <td data-label="Message">
                        <Link to={`/messages/${encodeURIComponent(m.id)}`}>{m.performative}</Link>
                      </td>
                      <td data-label="Sent">{when(m.timestamp)}</td>
                      <td data-label="From">{m.sender}</td>
                      <td data-label="To">{targetsOf(m).join(', ') || '—'}</td>
                      <td data-label="Content" class="clip">
                        {contentText(m.content).slice(0, 120)}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <p class="row">
            {offset > 0 && (
              <button type="button" onClick={() => setQuery({ offset: String(Math.max(0, offset - PAGE_SIZE)) })}>
                Newer
              </button>
            )}
            {offset + PAGE_SIZE < page.total && (
              <button type="button" onClick={() => setQuery({ offset: String(offset + PAGE_SIZE) })}>
                Older
              </button>
            )}
          </p>
        </>
      )}
    </section>
  );
}
