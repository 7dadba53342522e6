/**
 * The audit trail (/ui/audit, audit:read): state-changing operations newest first, filtered by
 * principal, action (or a family such as "key.*"), outcome, target and time, the filters in the
 * URL query, a page of 100 at a time. A filter the server refuses is explained under it.
 */
import { useEffect, useState } from 'preact/hooks';
import { ErrorBox, Loading } from '../components/feedback';
import { fieldErrors } from '../form-errors';
import { when } from '../format';
import { shownOffset, useApi } from '../hooks';
import type { PageProps } from '../pages';
import { setQuery } from '../router';

const PAGE = 100;
const OUTCOMES = ['ok', 'denied', 'error'] as const;

interface AuditRecord {
  id: number;
  time: string;
  principal: string | null;
  source: string | null;
  request_id: string | null;
  action: string;
  method: string | null;
  route: string | null;
  target: string | null;
  outcome: (typeof OUTCOMES)[number];
  status: number | null;
  details: Record<string, unknown> | null;
}

const FILTERS = [
  { id: 'principal', label: 'Principal', hint: 'e.g. key:ci; "-" for requests without one' },
  { id: 'action', label: 'Action', hint: 'e.g. agent.deploy, or a family: key.*' },
  { id: 'target', label: 'Target', hint: 'an agent, tool server, key, memory scope…' },
  { id: 'since', label: 'Since', hint: 'a time (2025-01-31T12:00Z) or a duration ago (1h, 7d)' },
  { id: 'until', label: 'Until', hint: 'a time or a duration ago' },
] as const;

export default function Audit({ query }: PageProps) {
  const q = Object.fromEntries([...FILTERS.map((f) => f.id), 'outcome'].map((k) => [k, query.get(k) ?? '']));
  const offset = Math.max(0, Number(query.get('offset') ?? 0) || 0);
  const [draft, setDraft] = useState<Record<string, string>>(q);
  const key = JSON.stringify(q);
  useEffect(() => setDraft(q), [key]);
  const trail = useApi<{ records: AuditRecord[]; count: number }>('/api/v1/audit', {
    ...Object.fromEntries(Object.entries(q).filter(([, v]) => v !== '')),
    limit: PAGE,
    offset,
  });
  const shown = shownOffset(trail);
  const fields = fieldErrors(trail.error) ?? {};
  const wholeError = Object.keys(fields).length > 0 ? undefined : trail.error;

  const apply = (e: Event) => {
    e.preventDefault();
    setQuery({ ...Object.fromEntries(Object.entries(draft).map(([k, v]) => [k, v.trim()])), offset: undefined });
  };

  return (
    <section aria-labelledby="audit-title">
      <h1 id="audit-title">Audit trail</h1>
      <form class="card filters" aria-label="Filters" onSubmit={apply}>
        <div class="form-grid">
          {FILTERS.map((f) => (
            <div class="field" key={f.id}>
              <label for={`audit-${f.id}`}>{f.label}</label>
              <input
                id={`audit-${f.id}`}
                value={draft[f.id] ?? ''}
                autoComplete="off"
                aria-describedby={`audit-${f.id}-hint${fields[f.id] ? ` audit-${f.id}-error` : ''}`}
                aria-invalid={fields[f.id] ? true : undefined}
                onInput={(e) => setDraft((d) => ({ ...d, [f.id]: (e.target as HTMLInputElement).value }))}
              />
              <p id={`audit-${f.id}-hint`} class="muted small">
                {f.hint}
              </p>
              {fields[f.id] && (
                <p id={`audit-${f.id}-error`} class="field-error" role="alert">
                  {fields[f.id]}
                </p>
              )}
            </div>
          ))}
          <div class="field">
            <label for="audit-outcome">Outcome</label>
            <select
              id="audit-outcome"
              value={draft.outcome ?? ''}
              onChange={(e) => setDraft((d) => ({ ...d, outcome: (e.target as HTMLSelectElement).value }))}
            >
              <option value="">any</option>
              {OUTCOMES.map((o) => (
                <option key={o} value={o}>
                  {o}
                </option>
              ))}
            </select>
          </div>
        </div>
        <div class="row">
          <button type="submit">Apply filters</button>
          <button
            type="button"
            class="secondary"
            onClick={() =>
              setQuery(Object.fromEntries([...Object.keys(q), 'offset'].map((k) => [k, undefined])) as never)
            }
          >
            Clear
          </button>
        </div>
      </form>
      <ErrorBox error={wholeError} />
      {!trail.data ? (
        !trail.error && <Loading what="the audit trail" />
      ) : trail.data.records.length === 0 ? (
        <p class="muted" data-testid="audit-empty">
          No audit records match{shown > 0 ? ' on this page' : ''}.
        </p>
      ) : (
        <div class="table-wrap" tabIndex={0} role="region" aria-label="Audit records">
          <table data-testid="audit">
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Principal</th>
                <th scope="col">Action</th>
                <th scope="col">Target</th>
                <th scope="col">Outcome</th>
                <th scope="col">Request</th>
              </tr>
            </thead>
            <tbody>
              {trail.data.records.map((r) => (
                <tr key={r.id}>
                  <td>
                    <time dateTime={r.time}>{when(r.time)}</time>
                  </td>
                  <td>{r.principal ?? '—'}</td>
                  <td>
                    {r.action}
                    {r.route && (
                      <span class="muted small">
                        {' '}
                        {r.method} {r.route}
                      </span>
                    )}
                  </td>
                  <td>{r.target ?? '—'}</td>
                  <td>
                    <span class={`badge outcome-${r.outcome}`}>{r.outcome}</span>
                    {r.status !== null && <span class="muted small"> {r.status}</span>}
                  </td>
                  <td class="small">
                    {r.request_id ?? '—'}
                    {r.source && <span class="muted"> from {r.source}</span>}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {trail.data && (shown > 0 || trail.data.count === PAGE) && (
        <div class="row">
          <button
            type="button"
            class="secondary"
            disabled={shown === 0}
            onClick={() => setQuery({ offset: shown - PAGE > 0 ? String(shown - PAGE) : undefined })}
          >
            Newer
          </button>
          <span class="muted small">
            Records {shown + 1}–{shown + trail.data.count}
          </span>
          <button
            type="button"
            class="secondary"
            disabled={trail.data.count < PAGE}
            onClick={() => setQuery({ offset: String(shown + PAGE) })}
          >
            Older
          </button>
        </div>
      )}
    </section>
  );
}
