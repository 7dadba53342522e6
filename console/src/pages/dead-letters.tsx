/**
 * Dead letters: deliveries that failed for good (GET /api/v1/dead-letters, polled, as
 * the API has no event stream for them), filtered by the server by receiver and error text, one
 * dead letter with its message, each attempt's error with its time and the runs that handled it,
 * and replay (POST /api/v1/dead-letters/:id/replay) for a principal with
 * dead_letters:replay, after a confirmation.
 */
import { useLayoutEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError } from '../api';
import { ErrorBox, Loading } from '../components/feedback';
import { FieldError } from '../components/issues';
import { shownOffset, useApi, usePoll } from '../hooks';
import type { PageProps } from '../pages';
import { Link, setQuery } from '../router';
import { can, session } from '../session';
import { BulkActions } from './dead-letter-bulk';
import { RunLinks, useRunsOf } from './message-runs';
import { type DeadLetter, MessageFields, when } from './messaging-common';

export default function DeadLetters({ params, query }: PageProps) {
  if (params.id !== undefined) return <DeadLetterView key={params.id} id={params.id} />;
  return <DeadLetterList query={query} />;
}

interface DeadLetterPage {
  dead_letters: DeadLetter[];
  total: number;
  limit: number;
  offset: number;
}

const PAGE_SIZE = 200;

function DeadLetterList({ query }: { query: URLSearchParams }) {
  const receiver = query.get('receiver') ?? '';
  const errorText = query.get('error') ?? '';
  const offset = Math.max(0, Number(query.get('offset') ?? 0) || 0);
  const r = receiver.trim();
  const t = errorText.trim();
  const filtered = r !== '' || t !== '';
  const list = useApi<DeadLetterPage>('/api/v1/dead-letters', {
    limit: PAGE_SIZE,
    offset,
    ...(r && { receiver: r }),
    ...(t && { error: t }),
  });
  // The count of all dead letters beside a filtered one.
  const all = useApi<DeadLetterPage>(filtered ? '/api/v1/dead-letters' : undefined, { limit: 1 });
  // No event stream for dead letters: refreshed every 5 s while the tab is visible.
  const first = useRef(true);
  usePoll(() => {
    if (first.current) first.current = false;
    else {
      list.reload();
      if (filtered) all.reload();
    }
  }, 5_000);

  const page = list.data;
  const shown = page?.dead_letters ?? [];
  // The count is worded by the filter the rows shown answer, not the one typed: while a new filter
  // loads, the rows of the last one are still shown.
  const answered = list.query ?? {};
  const shownFiltered = answered['receiver'] !== undefined || answered['error'] !== undefined;
  // The pager moves from the page shown, not the one asked for: while the next page loads, the
  // rows of the last one are still shown.
  const shownAt = shownOffset(list);

  return (
    <section class="msg-page" aria-labelledby="dead-letters-title">
      <h1 id="dead-letters-title">Dead letters</h1>
      <p class="muted">
        Deliveries that failed for good, oldest first.{' '}
        {can('dead_letters:replay') ? 'Open one to replay it, or act on many at once by a filter.' : ''}
      </p>
      <form class="filters" aria-label="Filter dead letters" onSubmit={(e) => e.preventDefault()}>
        <div>
          <label for="dl-receiver">Receiver</label>
          <input
            id="dl-receiver"
            type="search"
            value={receiver}
            onInput={(e) => setQuery({ receiver: (e.target as HTMLInputElement).value || undefined })}
            aria-describedby="dl-filter-help"
          />
        </div>
        <div>
          <label for="dl-error">Error contains</label>
          <input
            id="dl-error"
            type="search"
            value={errorText}
            onInput={(e) => setQuery({ error: (e.target as HTMLInputElement).value || undefined })}
            aria-describedby="dl-filter-help"
          />
        </div>
        <p id="dl-filter-help" class="muted small filters-help">
          Text anywhere in the receiver's name or the last error, any case.
        </p>
      </form>
      {can('dead_letters:replay') && (
        <BulkActions
          initialReceiver={r}
          onDone={() => {
            list.reload();
            if (filtered) all.reload();
          }}
        />
      )}
      <ErrorBox error={list.error} />
      {!page && !list.error && <Loading what="dead letters" />}
      {page && (
        <>
          <p class="muted" role="status" data-testid="dead-letter-count">
            {shownFiltered
              ? `${page.total} of ${all.data?.total ?? '…'} dead letters match`
              : page.total === 0
                ? 'No dead letters.'
                : `${shown.length} shown of ${page.total} dead letter${page.total === 1 ? '' : 's'}`}
          </p>
          {shown.length > 0 && (
            <div class="table-wrap">
              <table class="cards" data-testid="dead-letters">
                <caption class="visually-hidden">Dead letters</caption>
                <thead>
                  <tr>
                    <th scope="col">Dead letter</th>
                    <th scope="col">Receiver</th>
                    <th scope="col">Message</th>
                    <th scope="col">Attempts</th>
                    <th scope="col">Last error</th>
                    <th scope="col">Failed</th>
                  </tr>
                </thead>
                <tbody>
                  {shown.map((d) => (
                    <tr key={d.id} data-testid="dead-letter-row" data-message-id={d.message_id}>
                      <td data-label="Dead letter">
                        <Link to={`/dead-letters/${d.id}`}>#{d.id}</Link>
                      </td>
                      <td data-label="Receiver">{d.receiver}</td>
                      <td data-label="Message">
                        {d.message.performative} from {d.message.sender}
                      </td>
                      <td data-label="Attempts">{d.attempts}</td>
                      <td data-label="Last error" class="error-text">
                        {d.last_error ?? '—'}
                      </td>
                      <td data-label="Failed">{when(d.updated_at)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          {page.total > PAGE_SIZE && (
            <nav class="pager" aria-label="Pages of dead letters">
              <button
                type="button"
                class="secondary"
                disabled={shownAt === 0}
                onClick={() => setQuery({ offset: String(Math.max(0, shownAt - PAGE_SIZE)) })}
              >
                Previous
              </button>
              <button
                type="button"
                class="secondary"
                disabled={shownAt + PAGE_SIZE >= page.total}
                onClick={() => setQuery({ offset: String(shownAt + PAGE_SIZE) })}
              >
                Next
              </button>
            </nav>
          )}
        </>
      )}
    </section>
  );
}

interface ReplayResult {
  id: number;
  message_id: string;
  receiver: string;
  conversation_id: string;
}

function DeadLetterView({ id }: { id: string }) {
  const dl = useApi<DeadLetter>(`/api/v1/dead-letters/${encodeURIComponent(id)}`);
  const runs = useRunsOf(dl.data?.message.conversation_id);
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const [result, setResult] = useState<ReplayResult>();
  const resultRef = useRef<HTMLDivElement>(null);
  const confirmRef = useRef<HTMLButtonElement>(null);
  // Layout effects: focus moves in the commit that shows the button or result, never a frame later.
  useLayoutEffect(() => {
    if (confirming) confirmRef.current?.focus();
  }, [confirming]);
  useLayoutEffect(() => {
    if (result) resultRef.current?.focus();
  }, [result]);
  const mayReplay = can('dead_letters:replay');
  const replay = async () => {
    setBusy(true);
    setError(undefined);
    try {
      setResult(await api<ReplayResult>('POST', `/api/v1/dead-letters/${encodeURIComponent(id)}/replay`));
      setConfirming(false);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  if (result) {
    return (
      <section class="msg-page" aria-labelledby="dl-title">
        <p class="crumbs">
          <Link to="/dead-letters">Dead letters</Link> /
        </p>
        <h1 id="dl-title">Dead letter #{id}</h1>
        <div class="notice ok" role="status" tabIndex={-1} ref={resultRef} data-testid="replay-result">
          <p>
            Replayed: the message <code>{result.message_id}</code> is queued again for {result.receiver}, with fresh
            attempts.
          </p>
          <p>
            Follow its delivery on{' '}
            <Link to={`/messages/${encodeURIComponent(result.message_id)}`}>the message page</Link> or in{' '}
            <Link to={`/conversations/${encodeURIComponent(result.conversation_id)}`}>its conversation</Link>.
          </p>
        </div>
      </section>
    );
  }
  if (dl.error) {
    const gone = dl.error instanceof ApiError && dl.error.status === 404;
    return (
      <section class="msg-page" aria-labelledby="dl-title">
        <p class="crumbs">
          <Link to="/dead-letters">Dead letters</Link> /
        </p>
        <h1 id="dl-title">Dead letter #{id}</h1>
        <ErrorBox error={dl.error} />
        {gone && <p class="muted">A replayed dead letter leaves the list: its delivery is on the message's page.</p>}
      </section>
    );
  }
  const d = dl.data;
  if (!d) return <Loading what={`dead letter #${id}`} />;
  const role = session().state === 'signed-in' ? (session() as { who: { role: string } }).who.role : '';
  return (
    <section class="msg-page" aria-labelledby="dl-title">
      <p class="crumbs">
        <Link to="/dead-letters">Dead letters</Link> /
      </p>
      <h1 id="dl-title">Dead letter #{d.id}</h1>
      <dl class="fields">
        <dt>Receiver</dt>
        <dd>
          <Link to={`/agents/${encodeURIComponent(d.receiver)}`}>{d.receiver}</Link>
        </dd>
        <dt>Attempts</dt>
        <dd data-testid="attempts">{d.attempts}</dd>
        <dt>Failed</dt>
        <dd>{when(d.updated_at)}</dd>
        <dt>Last error</dt>
        <dd>
          <pre class="source error-text" data-testid="last-error">
            {d.last_error ?? '—'}
          </pre>
        </dd>
        {runs.has(d.message_id) && (
          <>
            <dt>Runs</dt>
            <dd>
              <RunLinks runs={runs.get(d.message_id)} />
            </dd>
          </>
        )}
      </dl>
      <h2>Attempts</h2>
      {d.attempt_errors.length === 0 ? (
        <p class="muted">No attempt was recorded with its error.</p>
      ) : (
        <ol class="attempts" data-testid="attempt-errors">
          {d.attempt_errors.map((a, i) => (
            <li key={i} data-testid="attempt-error">
              <time dateTime={a.at}>{when(a.at)}</time>
              <pre class="source error-text">{a.error}</pre>
            </li>
          ))}
        </ol>
      )}
      {d.attempts > d.attempt_errors.length && d.attempt_errors.length > 0 && (
        <p class="muted small">
          The earliest attempts' errors are not kept; these are the last {d.attempt_errors.length}.
        </p>
      )}
      <div class="replay">
        {mayReplay ? (
          confirming ? (
            <div class="confirm" role="group" aria-labelledby="replay-q">
              <p id="replay-q">
                Deliver message <code>{d.message_id}</code> to {d.receiver} again? A conversation that failed because of
                it is reopened.
              </p>
              <button
                type="button"
                ref={confirmRef}
                onClick={() => void replay()}
                disabled={busy}
                aria-describedby={error ? 'replay-error' : undefined}
              >
                {busy ? 'Replaying…' : 'Yes, replay it'}
              </button>{' '}
              <button type="button" class="secondary" onClick={() => setConfirming(false)} disabled={busy}>
                Cancel
              </button>
              <FieldError error={error} id="replay-error" />
            </div>
          ) : (
            <>
              <button
                type="button"
                onClick={() => setConfirming(true)}
                aria-describedby={error ? 'replay-error' : undefined}
              >
                Replay…
              </button>
              <FieldError error={error} id="replay-error" />
            </>
          )
        ) : (
          <p class="muted" data-testid="replay-needs">
            Replaying needs the permission dead_letters:replay{role ? ` (your role, ${role}, does not have it)` : ''}.
          </p>
        )}
      </div>
      <h2>The message</h2>
      <MessageFields m={d.message} />
    </section>
  );
}
