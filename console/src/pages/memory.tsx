/**
 * Memory (/ui/memory, /ui/memory/entities/:name): search the knowledge graph (POST
 * /api/v1/memory/search, the query in the URL), one entity with its observations and relations,
 * and its neighbourhood (GET /api/v1/memory/traverse) as an interactive graph with a depth control
 * and, for screen readers, the same neighbours as a list.
 */
import { useEffect, useMemo, useState } from 'preact/hooks';
import { api } from '../api';
import { ErrorBox, Loading } from '../components/feedback';
import { useApi, useReloadOnExecutions } from '../hooks';
import type { PageProps } from '../pages';
import { Link, setQuery } from '../router';
import { MemoryGraph, type GraphEdge, type GraphNode } from './memory-graph';

interface Entity {
  name: string;
  entityType: string;
  observations: string[];
  scope: string;
  created_at?: string;
  updated_at?: string;
}

interface Relation {
  from: string;
  to: string;
  relationType: string;
  scope: string;
}

interface SearchResult {
  entity: Entity;
  score: number;
  similarity: number;
  keyword: number;
}

const MODES = ['hybrid', 'semantic', 'keyword'] as const;
const DEPTHS = ['1', '2', '3'] as const;

export default function Memory({ params, query }: PageProps) {
  return params.name !== undefined ? <EntityPage name={params.name} query={query} /> : <Search query={query} />;
}

function Search({ query }: { query: URLSearchParams }) {
  const q = query.get('q') ?? '';
  const mode = query.get('mode') ?? 'hybrid';
  const [draft, setDraft] = useState(q);
  const [draftMode, setDraftMode] = useState(mode);
  const [state, setState] = useState<{ results?: SearchResult[]; error?: unknown; loading: boolean }>({
    loading: false,
  });
  useEffect(() => {
    if (!q) return setState({ loading: false });
    const ac = new AbortController();
    setState((s) => ({ ...s, loading: true }));
    api<{ results: SearchResult[] }>('POST', '/api/v1/memory/search', {
      json: { query: q, mode, limit: 20 },
      signal: ac.signal,
    }).then(
      (r) => setState({ results: r.results, loading: false }),
      (error: unknown) => {
        if (!ac.signal.aborted) setState({ error, loading: false });
      },
    );
    return () => ac.abort();
  }, [q, mode]);
  const submit = (e: Event) => {
    e.preventDefault();
    setQuery({ q: draft.trim(), mode: draftMode === 'hybrid' ? undefined : draftMode });
  };
  return (
    <section aria-labelledby="memory-title">
      <h1 id="memory-title">Memory</h1>
      <form class="filters" role="search" onSubmit={submit} aria-label="Search memory">
        <div class="filter grow">
          <label for="memory-q">Search</label>
          <input
            id="memory-q"
            type="search"
            value={draft}
            onInput={(e) => setDraft((e.target as HTMLInputElement).value)}
            placeholder="words or a question"
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
      {state.error !== undefined && <ErrorBox error={state.error} />}
      {state.loading && <Loading what="the results" />}
      {!q && (
        <p class="muted">
          Search entities by meaning and by keyword; open one to see its observations and its neighbours.
        </p>
      )}
      {state.results && state.results.length === 0 && <p class="muted">Nothing matches “{q}”.</p>}
      {state.results && state.results.length > 0 && (
        <ol class="results" aria-label="Results" data-testid="memory-results">
          {state.results.map((r) => (
            <li key={`${r.entity.scope}/${r.entity.name}`}>
              <Link
                to={`/memory/entities/${encodeURIComponent(r.entity.name)}${r.entity.scope !== 'workspace' ? `?scope=${encodeURIComponent(r.entity.scope)}` : ''}`}
              >
                {r.entity.name}
              </Link>{' '}
              <span class="badge">{r.entity.entityType}</span>{' '}
              <span class="muted small">score {r.score.toFixed(3)}</span>
              {r.entity.scope !== 'workspace' && <span class="muted small"> · {r.entity.scope}</span>}
              {r.entity.observations[0] && <div class="small">{r.entity.observations[0]}</div>}
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

function EntityPage({ name, query }: { name: string; query: URLSearchParams }) {
  const scopeParam = query.get('scope') ?? undefined;
  const depth = DEPTHS.includes(query.get('depth') as (typeof DEPTHS)[number]) ? query.get('depth')! : '1';
  const ent = useApi<{ entities: Entity[]; relations: Relation[] }>(
    `/api/v1/memory/entities/${encodeURIComponent(name)}`,
    scopeParam ? { scope: scopeParam } : undefined,
  );
  const entity = ent.data?.entities.find((e) => e.scope === (scopeParam ?? 'workspace')) ?? ent.data?.entities[0];
  const scope = entity?.scope;
  const trav = useApi<{
    root: string;
    entities: (Entity & { depth: number })[];
    relations: Relation[];
    truncated: boolean;
  }>(
    scope === undefined ? undefined : '/api/v1/memory/traverse',
    scope === undefined ? undefined : { from: name, scope, max_depth: depth, direction: 'both', limit: 200 },
  );
  // Agents write memory as they run (memory tools, auto_store): the entity and its neighbours follow.
  useReloadOnExecutions(() => {
    ent.reload();
    trav.reload();
  });
  const nodes = useMemo<GraphNode[]>(
    () => trav.data?.entities.map((e) => ({ name: e.name, entityType: e.entityType, depth: e.depth })) ?? [],
    [trav.data],
  );
  const edges = useMemo<GraphEdge[]>(() => trav.data?.relations ?? [], [trav.data]);
  const scopeQ = scope && scope !== 'workspace' ? `?scope=${encodeURIComponent(scope)}` : '';
  return (
    <section aria-labelledby="entity-title">
      <p class="small">
        <Link to="/memory">← Memory</Link>
      </p>
      <h1 id="entity-title">{name}</h1>
      {ent.error !== undefined && <ErrorBox error={ent.error} />}
      {ent.loading && !ent.data && <Loading what={name} />}
      {entity && (
        <>
          <p>
            <span class="badge">{entity.entityType}</span> <span class="muted small">scope {entity.scope}</span>
            {ent.data && ent.data.entities.length > 1 && (
              <span class="muted small">
                {' '}
                · also in{' '}
                {ent.data.entities
                  .filter((e) => e !== entity)
                  .map((e) => e.scope)
                  .join(', ')}
              </span>
            )}
          </p>
          <h2>Observations</h2>
          {entity.observations.length === 0 ? (
            <p class="muted">No observations.</p>
          ) : (
            <ul data-testid="observations">
              {entity.observations.map((o, i) => (
                <li key={i}>{o}</li>
              ))}
            </ul>
          )}
          <h2 id="graph-title">Neighbourhood</h2>
          <div class="row">
            <label for="graph-depth">Depth</label>
            <select
              id="graph-depth"
              class="narrow"
              value={depth}
              onChange={(e) =>
                setQuery({
                  depth:
                    (e.target as HTMLSelectElement).value === '1' ? undefined : (e.target as HTMLSelectElement).value,
                })
              }
            >
              {DEPTHS.map((d) => (
                <option key={d} value={d}>
                  {d}
                </option>
              ))}
            </select>
            <span class="muted small">
              Tab to a node and press Enter, or click it, to open that entity and centre the graph on it.
            </span>
          </div>
          {trav.error !== undefined && <ErrorBox error={trav.error} />}
          {trav.loading && !trav.data && <Loading what="the neighbours" />}
          {trav.data && (
            <>
              {trav.data.entities.length <= 1 ? (
                <p class="muted">No relations: {name} stands alone.</p>
              ) : (
                <MemoryGraph nodes={nodes} edges={edges} root={name} suffix={scopeQ} />
              )}
              {trav.data.truncated && <p class="notice">Only the first 200 entities are shown.</p>}
              <h3>Neighbours as a list</h3>
              <ul data-testid="neighbours">
                {trav.data.relations.map((r, i) => (
                  <li key={i}>
                    {r.from === name ? (
                      <strong>{r.from}</strong>
                    ) : (
                      <Link to={`/memory/entities/${encodeURIComponent(r.from)}${scopeQ}`}>{r.from}</Link>
                    )}{' '}
                    <span class="muted">{r.relationType}</span>{' '}
                    {r.to === name ? (
                      <strong>{r.to}</strong>
                    ) : (
                      <Link to={`/memory/entities/${encodeURIComponent(r.to)}${scopeQ}`}>{r.to}</Link>
                    )}
                  </li>
                ))}
              </ul>
            </>
          )}
        </>
      )}
    </section>
  );
}
