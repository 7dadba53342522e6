/**
 * Agents: every deployed agent in a virtualized list searchable by name or capability, and the
 * selected one's definition, versions and rollout (promote, roll back), a chat that runs it with
 * its tool calls shown inline, and an editor that validates before it deploys. The list follows
 * the directory's event stream. URLs: /ui/agents, /ui/agents/NAME[/versions|chat|edit],
 * /ui/agents?q=..., /ui/agents?edit=new.
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { get } from '../api';
import { ErrorBox, Loading } from '../components/feedback';
import { LiveStatus } from '../components/live-status';
import { VirtualList } from '../components/virtual-list';
import { useLive } from '../hooks';
import type { PageProps } from '../pages';
import { Link, navigate, setQuery } from '../router';
import { can } from '../session';
import { AgentDetailView } from './agents/detail';
import { AgentEditor } from './agents/editor';
import type { AgentSummary } from './agents/types';

const PAGE = 10_000;
const ROW = 52;

/** Every agent, read a page at a time (the API returns at most 10,000 per request). */
async function loadAll(signal: AbortSignal): Promise<AgentSummary[]> {
  const all: AgentSummary[] = [];
  for (let offset = 0; ; offset += PAGE) {
    const page = await get<{ agents: AgentSummary[]; total: number }>(
      '/api/v1/agents',
      { limit: PAGE, offset },
      signal,
    );
    all.push(...page.agents);
    if (page.agents.length < PAGE || all.length >= page.total) return all;
  }
}

export function matches(a: AgentSummary, q: string): boolean {
  if (q === '') return true;
  const s = q.toLowerCase();
  return a.name.toLowerCase().includes(s) || a.capabilities.some((c) => c.toLowerCase().includes(s));
}

export default function Agents({ params, query }: PageProps) {
  const [agents, setAgents] = useState<AgentSummary[]>();
  const [error, setError] = useState<unknown>();
  const [generation, setGeneration] = useState(0);
  const q = query.get('q') ?? '';
  const [text, setText] = useState(q);
  useEffect(() => {
    const ac = new AbortController();
    loadAll(ac.signal).then(
      (xs) => {
        setAgents(xs.sort((a, b) => a.name.localeCompare(b.name)));
        setError(undefined);
      },
      (e: unknown) => {
        if (!ac.signal.aborted) setError(e);
      },
    );
    return () => ac.abort();
  }, [generation]);

  // Directory changes (deploys, updates, removals) reload the list, at most once a second.
  const pending = useRef<ReturnType<typeof setTimeout>>();
  const live = useLive(
    {
      path: '/api/v1/directory/events',
      onEvent: (e) => {
        if (e.event !== 'registered' && e.event !== 'updated' && e.event !== 'deregistered') return;
        if (pending.current) return;
        pending.current = setTimeout(() => {
          pending.current = undefined;
          setGeneration((g) => g + 1);
        }, 1000);
      },
    },
    [],
  );
  useEffect(() => () => clearTimeout(pending.current), []);

  // The search box updates the URL (shareable) shortly after typing stops.
  useEffect(() => {
    const t = setTimeout(() => {
      if (text !== q) setQuery({ q: text });
    }, 200);
    return () => clearTimeout(t);
  }, [text]);

  const shown = useMemo(() => (agents ?? []).filter((a) => matches(a, q)), [agents, q]);
  const selected = params.name;
  const editingNew = query.get('edit') === 'new';
  const selectedIndex = selected === undefined ? -1 : shown.findIndex((a) => a.name === selected);

  return (
    <section aria-labelledby="agents-title">
      <div class="row">
        <h1 id="agents-title">Agents</h1>
        <span class="spacer" />
        <LiveStatus state={live} label="Directory" />
        {can('agents:write') && (
          <button type="button" class="secondary" onClick={() => navigate('/agents?edit=new')}>
            Deploy an agent
          </button>
        )}
      </div>
      <div class={`agents-layout${selected !== undefined || editingNew ? ' chosen' : ''}`}>
        <div class="agents-list">
          <label for="agent-search">Search by name or capability</label>
          <input
            id="agent-search"
            type="search"
            value={text}
            onInput={(e) => setText((e.target as HTMLInputElement).value)}
            aria-describedby="agent-count"
            autoComplete="off"
          />
          <p id="agent-count" class="muted small" role="status" data-testid="agent-count">
            {agents ? `${shown.length} of ${agents.length} agents` : 'Loading agents…'}
          </p>
          <ErrorBox error={error} />
          {agents && (
            <VirtualList
              items={shown}
              rowHeight={ROW}
              label="Agents"
              keyOf={(a) => a.name}
              scrollTo={selectedIndex}
              render={(a) => (
                <Link
                  to={`/agents/${encodeURIComponent(a.name)}${q ? `?q=${encodeURIComponent(q)}` : ''}`}
                  {...(a.name === selected && { 'aria-current': 'page' })}
                >
                  {a.name}
                  <span class="caps">{a.capabilities.length > 0 ? a.capabilities.join(', ') : 'no capabilities'}</span>
                </Link>
              )}
            />
          )}
        </div>
        <div>
          {(selected !== undefined || editingNew) && (
            <p class="back-to-list">
              <Link to={`/agents${q ? `?q=${encodeURIComponent(q)}` : ''}`}>← All agents</Link>
            </p>
          )}
          {editingNew ? (
            <AgentEditor onDeployed={(name) => navigate(`/agents/${encodeURIComponent(name)}`)} />
          ) : selected !== undefined ? (
            <AgentDetailView
              key={selected}
              name={selected}
              tab={params.tab ?? 'definition'}
              onChanged={() => setGeneration((g) => g + 1)}
            />
          ) : agents ? (
            <p class="muted">Choose an agent to see its definition, versions and rollout, and to chat with it.</p>
          ) : (
            !error && <Loading what="agents" />
          )}
        </div>
      </div>
    </section>
  );
}
