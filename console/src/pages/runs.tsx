/**
 * Runs: every durable run, newest first (GET /api/v1/runs), filtered on the server by agent,
 * state and origin with the filters in the URL; the runs waiting for a person one button away,
 * with their count. `/runs/ID` is one run (run.tsx). Refreshed when an execution finishes and
 * every 3 s, since a run starting or stopping to wait for approval sends no event.
 */
import { Loading } from '../components/feedback';
import { FieldError } from '../components/issues';
import { when } from '../format';
import { useApi, useReloadOnEvent } from '../hooks';
import type { PageProps } from '../pages';
import { Link, setQuery } from '../router';
import { RUN_ORIGINS, RUN_STATUSES, type RunStatus } from '../vocabulary';
import RunPage from './run';
import type { RunSummary } from './run-entries';

const PAGE_SIZE = 50;
/** The most waiting runs counted; more show as "500+". */
const WAITING_COUNTED = 500;

export const STATUS_LABELS: Record<RunStatus, string> = {
  running: 'running',
  awaiting_approval: 'waiting for approval',
  completed: 'completed',
  failed: 'failed',
  cancelled: 'cancelled',
};

export function RunStatusBadge({ status }: { status: RunStatus }) {
  return <span class={`badge run-${status}`}>{STATUS_LABELS[status]}</span>;
}

export default function Runs({ params, query }: PageProps) {
  if (params.id !== undefined) return <RunPage params={params} query={query} />;
  return <RunList query={query} />;
}

function RunList({ query }: { query: URLSearchParams }) {
  const filters: Record<string, string> = {};
  for (const k of ['agent', 'status', 'origin', 'cursor']) {
    const v = query.get(k)?.trim();
    if (v) filters[k] = v;
  }
  const list = useApi<{ runs: RunSummary[]; next_cursor?: string }>('/api/v1/runs', { ...filters, limit: PAGE_SIZE });
  const waiting = useApi<{ runs: RunSummary[] }>('/api/v1/runs', {
    status: 'awaiting_approval',
    limit: WAITING_COUNTED,
    ...(filters.agent !== undefined && { agent: filters.agent }),
  });
  useReloadOnEvent(
    'execution.finished',
    () => {
      list.reload();
      waiting.reload();
    },
    { throttleMs: 1000, pollMs: 3000, streamingPollMs: 3000 },
  );
  const page = list.data;
  const set = (k: string, v: string) => setQuery({ [k]: v || undefined, cursor: undefined });
  const onlyWaiting = filters.status === 'awaiting_approval';
  const nWaiting = waiting.data?.runs.length;
  const waitingText =
    nWaiting === undefined ? '' : ` (${nWaiting >= WAITING_COUNTED ? `${WAITING_COUNTED}+` : nWaiting})`;

  return (
    <section class="msg-page" aria-labelledby="runs-title">
      <h1 id="runs-title">Runs</h1>
      <p class="muted">
        Every agent run the server recorded step by step, newest first. Open one to see its steps and to approve or deny
        a call it waits on.
      </p>
      <p class={`row waiting-filter${nWaiting ? ' has-waiting' : ''}`}>
        <button
          type="button"
          aria-pressed={onlyWaiting}
          data-testid="waiting-filter"
          onClick={() => set('status', onlyWaiting ? '' : 'awaiting_approval')}
        >
          Waiting for approval{waitingText}
        </button>
        {onlyWaiting && <span class="muted small">Only runs that wait for a person are shown.</span>}
      </p>
      <form class="filters" aria-label="Filter runs" onSubmit={(e) => e.preventDefault()}>
        <div>
          <label for="runs-agent">Agent</label>
          <input
            id="runs-agent"
            type="search"
            value={query.get('agent') ?? ''}
            onInput={(e) => set('agent', (e.target as HTMLInputElement).value)}
            aria-describedby={list.error ? 'runs-filter-error' : undefined}
          />
        </div>
        <div>
          <label for="runs-status">State</label>
          <select
            id="runs-status"
            class="narrow"
            value={filters.status ?? ''}
            onChange={(e) => set('status', (e.target as HTMLSelectElement).value)}
          >
            <option value="">any</option>
            {RUN_STATUSES.map((s) => (
              <option key={s} value={s}>
                {STATUS_LABELS[s]}
              </option>
            ))}
          </select>
        </div>
        <div>
          <label for="runs-origin">Started by</label>
          <select
            id="runs-origin"
            class="narrow"
            value={filters.origin ?? ''}
            onChange={(e) => set('origin', (e.target as HTMLSelectElement).value)}
          >
            <option value="">anything</option>
            {RUN_ORIGINS.map((o) => (
              <option key={o} value={o}>
                {o}
              </option>
            ))}
          </select>
        </div>
      </form>
      {list.error !== undefined && <FieldError error={list.error} id="runs-filter-error" />}
      {!page && list.error === undefined && <Loading what="runs" />}
      {page && (
        <>
          <p class="muted" role="status" data-testid="run-count">
            {page.runs.length === 0
              ? 'No runs match.'
              : `${page.runs.length} run${page.runs.length === 1 ? '' : 's'} shown${page.next_cursor !== undefined ? ', older ones on the next page' : ''}`}
          </p>
          {page.runs.length > 0 && (
            <div class="table-wrap" tabIndex={0} role="region" aria-label="Runs">
              <table class="cards" data-testid="runs">
                <caption class="visually-hidden">Runs, newest first</caption>
                <thead>
                  <tr>
                    <th scope="col">Run</th>
                    <th scope="col">Agent</th>
                    <th scope="col">Version</th>
                    <th scope="col">State</th>
                    <th scope="col">Started by</th>
                    <th scope="col">Principal</th>
                    <th scope="col">Started</th>
                    <th scope="col">Last step</th>
                    <th scope="col">Resumes</th>
                  </tr>
                </thead>
                <tbody>
                  {page.runs.map((r) => (
                    <tr key={r.id} data-testid="run-row" data-status={r.status}>
                      <td data-label="Run">
                        <Link to={`/runs/${encodeURIComponent(r.id)}`}>
                          <code>{r.id}</code>
                        </Link>
                      </td>
                      <td data-label="Agent">{r.agent}</td>
                      <td data-label="Version">{r.version ?? '—'}</td>
                      <td data-label="State">
                        <RunStatusBadge status={r.status} />
                        {r.error && <span class="error-text small"> {r.error.message}</span>}
                      </td>
                      <td data-label="Started by">{r.origin}</td>
                      <td data-label="Principal">{r.principal ?? '—'}</td>
                      <td data-label="Started">{when(r.created_at)}</td>
                      <td data-label="Last step">{when(r.updated_at)}</td>
                      <td data-label="Resumes">{r.resumes}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <p class="row">
            {filters.cursor !== undefined && (
              <button type="button" onClick={() => setQuery({ cursor: undefined })}>
                Newest
              </button>
            )}
            {page.next_cursor !== undefined && (
              <button type="button" onClick={() => setQuery({ cursor: page.next_cursor })}>
                Older
              </button>
            )}
          </p>
        </>
      )}
    </section>
  );
}
