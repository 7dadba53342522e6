/**
 * Memory (/ui/memory): browse the knowledge graph by scope and entity type, 50 entities a page
 * (GET /api/v1/memory/entities), or search it (POST /api/v1/memory/search) within the same scope
 * and type, each result showing the observation that matched with the query's words marked. With
 * memory:write, "Add an entity" creates one; a refusal is shown under the input it concerns.
 * Every choice lives in the URL (?scope=&type=&offset=&q=&mode=).
 */
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api';
import { ErrorBox, Loading } from '../components/feedback';
import { shownOffset, useApi } from '../hooks';
import { Link, navigate, setQuery } from '../router';
import { can } from '../session';
import { entityPath, Marked, refusal, Refusal, type Entity, type SearchResult } from './memory-common';

const MODES = ['hybrid', 'semantic', 'keyword'] as const;
const PAGE = 50;

export function Browse({ query }: { query: URLSearchParams }) {
  const scope = query.get('scope') ?? '';
  const type = query.get('type') ?? '';
  const q = query.get('q') ?? '';
  const mode = query.get('mode') ?? 'hybrid';
  const offset = Math.max(0, Number(query.get('offset')) || 0);
  const [draft, setDraft] = useState(q);
  const [draftMode, setDraftMode] = useState(mode);
  useEffect(() => setDraft(q), [q]);
  const stats = useApi<{ by_scope: Record<string, { entities: number }> }>('/api/v1/memory/stats');
  const list = useApi<{ entities: Entity[]; types: Record<string, number>; total: number }>('/api/v1/memory/entities', {
    ...(scope && { scope }),
    ...(type && { type }),
    limit: q ? 1 : PAGE,
    offset: q ? 0 : offset,
  });
  const scopes = Object.keys(stats.data?.by_scope ?? {}).sort();
  const types = Object.entries(list.data?.types ?? {}).sort(([a], [b]) => a.localeCompare(b));
  const submit = (e: Event) => {
    e.preventDefault();
    setQuery({ q: draft.trim() || undefined, mode: draftMode === 'hybrid' ? undefined : draftMode, offset: undefined });
  };
  return (
    <section aria-labelledby="memory-title">
      <h1 id="memory-title">Memory</h1>
      <form class="filters" role="search" onSubmit={submit} aria-label="Browse and search memory">
        <div class="filter">
          <label for="memory-scope">Scope</label>
          <select
            id="memory-scope"
            value={scope}
            onChange={(e) => setQuery({ scope: (e.target as HTMLSelectElement).value || undefined, offset: undefined })}
          >
            <option value="">every scope</option>
            {scopes.map((s) => (
              <option key={s} value={s}>
                {s} ({stats.data!.by_scope[s]!.entities})
              </option>
            ))}
          </select>
        </div>
        <div class="filter">
          <label for="memory-type">Type</label>
          <select
            id="memory-type"
            value={type}
            onChange={(e) => setQuery({ type: (e.target as HTMLSelectElement).value || undefined, offset: undefined })}
          >
            <option value="">every type</option>
            {types.map(([t, n]) => (
              <option key={t} value={t}>
                {t} ({n})
              </option>
            ))}
            {type && !list.data?.types[type] && <option value={type}>{type}</option>}
          </select>
        </div>
        <div class="filter grow">
          <label for="memory-q">Search</label>
          <input
            id="memory-q"
            type="search"
            value={draft}
            onInput={(e) => setDraft((e.target as HTMLInputElement).value)}
            placeholder="words or a question (empty: list)"
          />
        </div>
        <div class="filter">
          <label for="memory-mode">Mode</label>
          <select
            id="memory-mode"
            value={draftMode}
            onChange={(e) => setDraftMode((e.target as HTMLSelectElement).value)}
          >
            {MODES.map((m) => (
              <option key={m} value={m}>
                {m}
              </option>
            ))}
          </select>
        </div>
        <div class="filter">
          <button type="submit">Search</button>
        </div>
      </form>
      {can('memory:write') && <NewEntity scope={scope} />}
      {q ? (
        <Results q={q} mode={mode} scope={scope} type={type} />
      ) : (
        <>
          {list.error !== undefined && <ErrorBox error={list.error} />}
          {list.loading && !list.data && <Loading what="the entities" />}
          {list.data && <EntityList data={list.data} offset={shownOffset(list)} />}
        </>
      )}
    </section>
  );
}

function EntityList({ data, offset }: { data: { entities: Entity[]; total: number }; offset: number }) {
  if (data.total === 0) return <p class="muted">No entities here yet.</p>;
  const last = Math.min(offset + data.entities.length, data.total);
  return (
    <>
      <h2 class="small muted" id="entities-title">
        Entities {offset + 1}–{last} of {data.total}
      </h2>
      <ul class="results" aria-labelledby="entities-title" data-testid="memory-entities">
        {data.entities.map((e) => (
          <li key={`${e.scope}/${e.name}`}>
            <Link to={entityPath(e.name, e.scope)}>{e.name}</Link> <span class="badge">{e.entityType}</span>{' '}
            <span class="muted small">
              {e.scope} · {e.observations.length} observation{e.observations.length === 1 ? '' : 's'}
            </span>
            {e.observations[0] && <div class="small">{e.observations[0]}</div>}
          </li>
        ))}
      </ul>
      <nav class="pager" aria-label="Pages">
        <button
          type="button"
          class="secondary"
          disabled={offset === 0}
          onClick={() => setQuery({ offset: offset - PAGE > 0 ? String(offset - PAGE) : undefined })}
        >
          Previous
        </button>
        <button
          type="button"
          class="secondary"
          disabled={last >= data.total}
          onClick={() => setQuery({ offset: String(offset + PAGE) })}
        >
          Next
        </button>
      </nav>
    </>
  );
}

function Results({ q, mode, scope, type }: { q: string; mode: string; scope: string; type: string }) {
  const [state, setState] = useState<{ results?: SearchResult[]; error?: unknown; loading: boolean }>({
    loading: true,
  });
  useEffect(() => {
    const ac = new AbortController();
    setState((s) => ({ ...s, loading: true }));
    api<{ results: SearchResult[] }>('POST', '/api/v1/memory/search', {
      json: { query: q, mode, limit: 20, ...(scope && { scope }), ...(type && { entity_type: type }) },
      signal: ac.signal,
    }).then(
      (r) => setState({ results: r.results, loading: false }),
      (error: unknown) => {
        if (!ac.signal.aborted) setState({ error, loading: false });
      },
    );
    return () => ac.abort();
  }, [q, mode, scope, type]);
  if (state.error !== undefined) return <ErrorBox error={state.error} />;
  if (state.loading && !state.results) return <Loading what="the results" />;
  const results = state.results ?? [];
  if (results.length === 0) return <p class="muted">Nothing matches “{q}”.</p>;
  return (
    <ol class="results" aria-label="Results" data-testid="memory-results">
      {results.map((r) => {
        const i = r.match?.observation ?? null;
        const shown = i !== null ? r.entity.observations[i] : r.entity.observations[0];
        return (
          <li key={`${r.entity.scope}/${r.entity.name}`}>
            <Link to={entityPath(r.entity.name, r.entity.scope)}>
              <Marked text={r.entity.name} terms={r.match?.terms ?? []} />
            </Link>{' '}
            <span class="badge">{r.entity.entityType}</span> <span class="muted small">score {r.score.toFixed(3)}</span>
            {r.entity.scope !== 'workspace' && <span class="muted small"> · {r.entity.scope}</span>}
            {shown !== undefined && (
              <div class="small" data-testid="match">
                {i !== null ? (
                  <Marked text={shown} terms={r.match!.terms} />
                ) : (
                  <>
                    {shown} <span class="muted">(matched by its name, type or meaning)</span>
                  </>
                )}
                {i !== null && r.entity.observations.length > 1 && (
                  <span class="muted">
                    {' '}
                    · observation {i + 1} of {r.entity.observations.length}
                  </span>
                )}
              </div>
            )}
          </li>
        );
      })}
    </ol>
  );
}

function NewEntity({ scope }: { scope: string }) {
  const [name, setName] = useState('');
  const [type, setType] = useState('');
  const [where, setWhere] = useState(scope || 'workspace');
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ReturnType<typeof refusal>>();
  useEffect(() => setWhere(scope || 'workspace'), [scope]);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const observations = text
        .split('\n')
        .map((s) => s.trim())
        .filter(Boolean);
      const r = await api<{ scope: string; created: Entity[] }>('POST', '/api/v1/memory/entities', {
        json: { scope: where.trim(), entities: [{ name: name.trim(), entityType: type.trim(), observations }] },
      });
      if (r.created.length === 0)
        setError({ field: 'name', message: `An entity named “${name.trim()}” is already in ${r.scope}.` });
      else navigate(entityPath(r.created[0]!.name, r.scope));
    } catch (x) {
      setError(refusal(x));
    } finally {
      setBusy(false);
    }
  };
  return (
    <details class="new-entity">
      <summary>Add an entity</summary>
      <form class="inline-form" onSubmit={(e) => void submit(e)} aria-label="Add an entity">
        <div>
          <label for="new-name">Name</label>
          <input
            id="new-name"
            value={name}
            required
            aria-describedby="new-name-error"
            onInput={(e) => setName((e.target as HTMLInputElement).value)}
          />
          <Refusal error={error} field="name" id="new-name-error" />
        </div>
        <div>
          <label for="new-type">Type</label>
          <input
            id="new-type"
            value={type}
            required
            aria-describedby="new-type-error"
            onInput={(e) => setType((e.target as HTMLInputElement).value)}
          />
          <Refusal error={error} field="type" id="new-type-error" />
        </div>
        <div>
          <label for="new-scope">Scope</label>
          <input
            id="new-scope"
            value={where}
            aria-describedby="new-scope-error"
            onInput={(e) => setWhere((e.target as HTMLInputElement).value)}
          />
          <Refusal error={error} field="scope" id="new-scope-error" />
        </div>
        <div class="grow">
          <label for="new-observations">Observations (one a line)</label>
          <textarea
            id="new-observations"
            rows={2}
            value={text}
            aria-describedby="new-observations-error"
            onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
          />
          <Refusal error={error} field="observation" id="new-observations-error" />
        </div>
        <div>
          <button type="submit" disabled={busy}>
            Add
          </button>
          <Refusal error={error} field="form" id="new-entity-error" />
        </div>
      </form>
    </details>
  );
}
