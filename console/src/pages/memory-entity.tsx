/**
 * One entity (/ui/memory/entities/:name, ?scope= for another scope than the workspace): its
 * observations and relations, and its neighbourhood (GET /api/v1/memory/traverse) as an
 * interactive graph with a depth control and, for screen readers, the same relations as a list.
 * With memory:write: add, edit and delete observations, add and delete relations, delete the
 * entity (asked first). Whether a write is allowed in this scope is the server's to decide; its
 * refusal is shown under the input or button that asked.
 */
import { useMemo, useState } from 'preact/hooks';
import { api } from '../api';
import { ConfirmDialog } from '../components/confirm';
import { ErrorBox, Loading } from '../components/feedback';
import { useApi, useReloadOnExecutions } from '../hooks';
import { Link, navigate, setQuery } from '../router';
import { can } from '../session';
import { refusal, Refusal, type Entity, type Relation } from './memory-common';
import { MemoryGraph, type GraphEdge, type GraphNode } from './memory-graph';

const DEPTHS = ['1', '2', '3'] as const;

type Refused = ReturnType<typeof refusal> | undefined;

interface Ask {
  title: string;
  label: string;
  body: string;
  run: () => Promise<void>;
}

export function EntityPage({ name, query }: { name: string; query: URLSearchParams }) {
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
  const reload = () => {
    ent.reload();
    trav.reload();
  };
  // Agents write memory as they run (memory tools, auto_store): the entity and its neighbours follow.
  useReloadOnExecutions(reload);
  const nodes = useMemo<GraphNode[]>(
    () => trav.data?.entities.map((e) => ({ name: e.name, entityType: e.entityType, depth: e.depth })) ?? [],
    [trav.data],
  );
  const edges = useMemo<GraphEdge[]>(() => trav.data?.relations ?? [], [trav.data]);
  const scopeQ = scope && scope !== 'workspace' ? `?scope=${encodeURIComponent(scope)}` : '';
  const write = can('memory:write');
  const [ask, setAsk] = useState<Ask>();
  const [asking, setAsking] = useState<{ busy: boolean; error: Refused }>({ busy: false, error: undefined });
  const confirm = async () => {
    if (!ask) return;
    setAsking({ busy: true, error: undefined });
    try {
      await ask.run();
      setAsk(undefined);
      setAsking({ busy: false, error: undefined });
    } catch (e) {
      setAsking({ busy: false, error: refusal(e) });
    }
  };
  return (
    <section aria-labelledby="entity-title">
      <p class="small">
        <Link to={scope && scope !== 'workspace' ? `/memory?scope=${encodeURIComponent(scope)}` : '/memory'}>
          ← Memory
        </Link>
      </p>
      <div class="row">
        <h1 id="entity-title">{name}</h1>
        <span class="spacer" />
        {write && entity && (
          <button
            type="button"
            class="danger"
            onClick={() =>
              setAsk({
                title: `Delete ${name}?`,
                label: 'Delete the entity',
                body: `${name} (${entity.entityType}) in ${entity.scope}, its ${entity.observations.length} observations and every relation from or to it are deleted.`,
                run: async () => {
                  await api('DELETE', `/api/v1/memory/entities/${encodeURIComponent(name)}`, {
                    query: { scope: entity.scope },
                  });
                  navigate(
                    entity.scope === 'workspace' ? '/memory' : `/memory?scope=${encodeURIComponent(entity.scope)}`,
                  );
                },
              })
            }
          >
            Delete entity
          </button>
        )}
      </div>
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
          {!write && (
            <p class="muted small" data-testid="read-only">
              Read only: changing memory needs the permission memory:write.
            </p>
          )}
          <h2>Observations</h2>
          <Observations entity={entity} write={write} onChanged={reload} onAsk={setAsk} />
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
                <MemoryGraph key={`${name}/${depth}`} nodes={nodes} edges={edges} root={name} suffix={scopeQ} />
              )}
              {trav.data.truncated && <p class="notice">Only the first 200 entities are shown.</p>}
              <h3>Relations as a list</h3>
              <ul data-testid="neighbours" class="obs-list">
                {trav.data.relations.map((r) => (
                  <li key={`${r.from}|${r.relationType}|${r.to}`}>
                    <RelationText r={r} name={name} scopeQ={scopeQ} />
                    {write && (
                      <>
                        {' '}
                        <button
                          type="button"
                          class="text-button danger-link"
                          aria-label={`Delete the relation ${r.from} ${r.relationType} ${r.to}`}
                          onClick={() =>
                            setAsk({
                              title: 'Delete this relation?',
                              label: 'Delete the relation',
                              body: `${r.from} ${r.relationType} ${r.to} (in ${entity.scope}).`,
                              run: async () => {
                                await api('POST', '/api/v1/memory/relations/delete', {
                                  json: {
                                    scope: entity.scope,
                                    relations: [{ from: r.from, to: r.to, relationType: r.relationType }],
                                  },
                                });
                                reload();
                              },
                            })
                          }
                        >
                          delete
                        </button>
                      </>
                    )}
                  </li>
                ))}
              </ul>
              {write && <AddRelation entity={entity} onChanged={reload} />}
            </>
          )}
        </>
      )}
      {ask && (
        <ConfirmDialog
          title={ask.title}
          confirmLabel={ask.label}
          danger
          busy={asking.busy}
          onConfirm={() => void confirm()}
          onCancel={() => {
            setAsk(undefined);
            setAsking({ busy: false, error: undefined });
          }}
        >
          <p>{ask.body}</p>
          {asking.error && (
            <p class="field-error" role="alert">
              {asking.error.message}
            </p>
          )}
        </ConfirmDialog>
      )}
    </section>
  );
}

function RelationText({ r, name, scopeQ }: { r: Relation; name: string; scopeQ: string }) {
  const end = (n: string) =>
    n === name ? <strong>{n}</strong> : <Link to={`/memory/entities/${encodeURIComponent(n)}${scopeQ}`}>{n}</Link>;
  return (
    <span>
      {end(r.from)} <span class="muted">{r.relationType}</span> {end(r.to)}
    </span>
  );
}

function Observations({
  entity,
  write,
  onChanged,
  onAsk,
}: {
  entity: Entity;
  write: boolean;
  onChanged: () => void;
  onAsk: (a: Ask) => void;
}) {
  const [editing, setEditing] = useState<{ index: number; text: string }>();
  const [adding, setAdding] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<{ at: 'edit' | 'add'; why: Refused }>();
  const base = `/api/v1/memory/entities/${encodeURIComponent(entity.name)}/observations`;
  const add = (contents: string[]) => api('POST', base, { json: { scope: entity.scope, contents } });
  const remove = (observations: string[]) =>
    api('POST', '/api/v1/memory/observations/delete', {
      json: { scope: entity.scope, deletions: [{ entityName: entity.name, observations }] },
    });
  const run = async (at: 'edit' | 'add', fn: () => Promise<void>) => {
    setBusy(true);
    setError(undefined);
    try {
      await fn();
      onChanged();
    } catch (e) {
      setError({ at, why: refusal(e) });
    } finally {
      setBusy(false);
    }
  };
  // An edit adds the new text first, then removes the old: a refused addition leaves the observation as it was.
  const save = (old: string, text: string) =>
    run('edit', async () => {
      if (text.trim() !== old) {
        await add([text.trim()]);
        await remove([old]);
      }
      setEditing(undefined);
    });
  const errorFor = (at: 'edit' | 'add') =>
    error?.at === at ? { ...error.why!, field: 'observation' as const } : undefined;
  return (
    <>
      {entity.observations.length === 0 ? (
        <p class="muted">No observations.</p>
      ) : (
        <ul data-testid="observations" class="obs-list">
          {entity.observations.map((o, i) =>
            editing?.index === i ? (
              <li key={`edit-${i}`}>
                <form
                  class="inline-form"
                  aria-label={`Edit observation ${i + 1}`}
                  onSubmit={(e) => {
                    e.preventDefault();
                    void save(o, editing.text);
                  }}
                >
                  <div class="grow">
                    <label for="edit-observation">Observation {i + 1}</label>
                    <input
                      id="edit-observation"
                      value={editing.text}
                      aria-describedby="edit-observation-error"
                      onInput={(e) => setEditing({ index: i, text: (e.target as HTMLInputElement).value })}
                    />
                    <Refusal error={errorFor('edit')} field="observation" id="edit-observation-error" />
                  </div>
                  <div class="row">
                    <button type="submit" disabled={busy}>
                      Save
                    </button>
                    <button type="button" class="secondary" onClick={() => setEditing(undefined)}>
                      Cancel
                    </button>
                  </div>
                </form>
              </li>
            ) : (
              <li key={`${i}-${o}`}>
                <span data-testid="observation">{o}</span>
                {write && (
                  <>
                    {' '}
                    <button
                      type="button"
                      class="text-button"
                      aria-label={`Edit observation ${i + 1}`}
                      onClick={() => {
                        setError(undefined);
                        setEditing({ index: i, text: o });
                      }}
                    >
                      edit
                    </button>{' '}
                    <button
                      type="button"
                      class="text-button danger-link"
                      aria-label={`Delete observation ${i + 1}`}
                      onClick={() =>
                        onAsk({
                          title: 'Delete this observation?',
                          label: 'Delete the observation',
                          body: `“${o}” is removed from ${entity.name}.`,
                          run: async () => {
                            await remove([o]);
                            onChanged();
                          },
                        })
                      }
                    >
                      delete
                    </button>
                  </>
                )}
              </li>
            ),
          )}
        </ul>
      )}
      {write && (
        <form
          class="inline-form"
          aria-label="Add an observation"
          onSubmit={(e) => {
            e.preventDefault();
            void run('add', async () => {
              await add([adding.trim()]);
              setAdding('');
            });
          }}
        >
          <div class="grow">
            <label for="add-observation">New observation</label>
            <input
              id="add-observation"
              value={adding}
              required
              aria-describedby="add-observation-error"
              onInput={(e) => setAdding((e.target as HTMLInputElement).value)}
            />
            <Refusal error={errorFor('add')} field="observation" id="add-observation-error" />
          </div>
          <div>
            <button type="submit" disabled={busy}>
              Add observation
            </button>
          </div>
        </form>
      )}
    </>
  );
}

function AddRelation({ entity, onChanged }: { entity: Entity; onChanged: () => void }) {
  const [type, setType] = useState('');
  const [other, setOther] = useState('');
  const [outgoing, setOutgoing] = useState(true);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Refused>();
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const rel = outgoing
        ? { from: entity.name, to: other.trim(), relationType: type.trim() }
        : { from: other.trim(), to: entity.name, relationType: type.trim() };
      const r = await api<{ created: Relation[] }>('POST', '/api/v1/memory/relations', {
        json: { scope: entity.scope, relations: [rel] },
      });
      if (r.created.length === 0) setError({ field: 'relation', message: 'That relation is already there.' });
      else {
        setType('');
        setOther('');
        onChanged();
      }
    } catch (x) {
      const why = refusal(x);
      setError(
        why.field === 'form' || why.field === 'scope' || why.field === 'name' ? { ...why, field: 'target' } : why,
      );
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="inline-form" aria-label="Add a relation" onSubmit={(e) => void submit(e)}>
      <div>
        <label for="rel-direction">Direction</label>
        <select
          id="rel-direction"
          value={outgoing ? 'out' : 'in'}
          onChange={(e) => setOutgoing((e.target as HTMLSelectElement).value === 'out')}
        >
          <option value="out">{entity.name} → other</option>
          <option value="in">other → {entity.name}</option>
        </select>
      </div>
      <div>
        <label for="rel-type">Relation</label>
        <input
          id="rel-type"
          value={type}
          required
          placeholder="e.g. works_at"
          aria-describedby="rel-type-error"
          onInput={(e) => setType((e.target as HTMLInputElement).value)}
        />
        <Refusal error={error} field="relation" id="rel-type-error" />
      </div>
      <div class="grow">
        <label for="rel-other">Other entity</label>
        <input
          id="rel-other"
          value={other}
          required
          aria-describedby="rel-other-error"
          onInput={(e) => setOther((e.target as HTMLInputElement).value)}
        />
        <Refusal error={error} field="target" id="rel-other-error" />
      </div>
      <div>
        <button type="submit" disabled={busy}>
          Add relation
        </button>
      </div>
    </form>
  );
}
