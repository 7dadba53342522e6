/**
 * Tools (/ui/tools, /ui/tools/:name): every tool source with its state (tool servers, MCP
 * servers, built-in and host tools), one source's tools with a call form generated from each
 * tool's input schema (only for principals with tools:call), and the tool audit log with its
 * filters in the URL query.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { ErrorBox, Loading } from '../components/feedback';
import { when } from '../format';
import { useApi, useReloadOnExecutions } from '../hooks';
import type { PageProps } from '../pages';
import { Link, setQuery } from '../router';
import { can } from '../session';
import { ToolCallForm, type ToolSpec } from './tool-form';

interface Source {
  name: string;
  kind: string;
  version: string | null;
  description: string | null;
  origin: string;
  state: string;
  error: string | null;
  tools: string[];
  deployed_at: string | null;
  mcp?: {
    transport: string;
    target: string;
    state: string;
    last_error: string | null;
    reconnects: number;
    attempts: number;
    next_retry_at: string | null;
  };
}

interface SourceView extends Source {
  tool_specs: ToolSpec[];
  limits: {
    memory: number;
    fuel: number;
    timeout_ms: number;
    max_input: number;
    max_output: number;
    max_state: number;
  } | null;
  stats: { calls: number; failures: number; instantiations: number; memory_bytes: number } | null;
  digest: string | null;
  warnings: { message: string }[];
}

interface AuditRecord {
  id: number;
  time: number;
  agent: string;
  execution_id?: string;
  conversation_id?: string;
  server: string;
  tool: string;
  outcome: string;
  error?: string;
  duration_us: number;
  principal?: string;
}

interface McpServer {
  name: string;
  transport: string;
  target: string;
  state: string;
  tool_names: string[];
  last_error: string | null;
  reconnects: number;
}

const OUTCOMES = ['ok', 'failed', 'invalid_input', 'denied', 'timeout', 'fuel_exhausted', 'error'];
const AUDIT_FILTERS = ['agent', 'tool', 'outcome', 'since', 'principal'] as const;

export default function Tools({ params, query }: PageProps) {
  // One page per source: another source starts from nothing, so its heading never stands over the
  // previous source's tools, call forms and audit log while it loads.
  if (params.name === undefined) return <ToolsList query={query} />;
  return <SourcePage key={params.name} name={params.name} query={query} />;
}

function StateBadge({ state }: { state: string }) {
  const good = state === 'loaded' || state === 'ready';
  return <span class={`badge ${good ? 'promoted' : state === 'failed' ? 'rolled_back' : 'running'}`}>{state}</span>;
}

function ToolsList({ query }: { query: URLSearchParams }) {
  const sources = useApi<{ servers: Source[] }>('/api/v1/tools');
  const mcp = useApi<{ servers: McpServer[] }>('/api/v1/mcp/servers');
  // Tool sources change state (loaded, failed, an MCP server reconnecting) while agents run.
  useReloadOnExecutions(() => {
    sources.reload();
    mcp.reload();
  }, 10_000);
  return (
    <section aria-labelledby="tools-title">
      <h1 id="tools-title">Tools</h1>
      <h2>Tool sources</h2>
      {sources.error !== undefined && <ErrorBox error={sources.error} />}
      {sources.loading && !sources.data && <Loading what="the tool sources" />}
      {sources.data && (
        <div class="table-wrap" tabIndex={0} role="region" aria-label="Tool sources">
          <table data-testid="tool-sources">
            <thead>
              <tr>
                <th scope="col">Source</th>
                <th scope="col">Kind</th>
                <th scope="col">Origin</th>
                <th scope="col">State</th>
                <th scope="col">Tools</th>
              </tr>
            </thead>
            <tbody>
              {sources.data.servers.map((s) => (
                <tr key={s.name}>
                  <td>
                    <Link to={`/tools/${encodeURIComponent(s.name)}`}>{s.name}</Link>
                    {s.description && <div class="muted small">{s.description}</div>}
                  </td>
                  <td>{s.kind}</td>
                  <td>{s.origin}</td>
                  <td>
                    <StateBadge state={s.state} />
                    {s.error && <div class="small error-text">{s.error}</div>}
                  </td>
                  <td>{s.tools.length}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <h2>MCP servers</h2>
      {mcp.error !== undefined && <ErrorBox error={mcp.error} />}
      {mcp.data && mcp.data.servers.length === 0 && (
        <p class="muted">No MCP server is mounted ([mcp_servers.NAME] in caxton.toml).</p>
      )}
      {mcp.data && mcp.data.servers.length > 0 && (
        <ul data-testid="mcp-servers">
          {mcp.data.servers.map((m) => (
            <li key={m.name}>
              <Link to={`/tools/${encodeURIComponent(m.name)}`}>{m.name}</Link> ({m.transport} {m.target}){' '}
              <StateBadge state={m.state} /> · {m.tool_names.length} tools · {m.reconnects} reconnects
              {m.last_error && <div class="small error-text">last error: {m.last_error}</div>}
            </li>
          ))}
        </ul>
      )}
      <AuditLog query={query} />
    </section>
  );
}

function SourcePage({ name, query }: { name: string; query: URLSearchParams }) {
  const v = useApi<SourceView>(`/api/v1/tools/${encodeURIComponent(name)}`);
  const [calls, setCalls] = useState(0);
  const mayCall = can('tools:call');
  return (
    <section aria-labelledby="source-title">
      <p class="small">
        <Link to="/tools">← Tools</Link>
      </p>
      <h1 id="source-title">{name}</h1>
      {v.error !== undefined && <ErrorBox error={v.error} />}
      {v.loading && !v.data && <Loading what={name} />}
      {v.data && (
        <>
          <p>
            {v.data.kind} · {v.data.origin}
            {v.data.version && <> · version {v.data.version}</>} · <StateBadge state={v.data.state} />
          </p>
          {v.data.description && <p>{v.data.description}</p>}
          {v.data.error && (
            <p class="error" role="alert">
              {v.data.error}
            </p>
          )}
          {v.data.mcp && (
            <p class="small">
              MCP {v.data.mcp.transport} <code>{v.data.mcp.target}</code> · {v.data.mcp.state} · {v.data.mcp.reconnects}{' '}
              reconnects
              {v.data.mcp.last_error && <> · last error: {v.data.mcp.last_error}</>}
            </p>
          )}
          {v.data.stats && (
            <p class="small muted">
              {v.data.stats.calls} calls · {v.data.stats.failures} failures · {v.data.stats.instantiations}{' '}
              instantiations
              {v.data.limits && (
                <>
                  {' '}
                  · limits: {v.data.limits.timeout_ms} ms, {Math.round(v.data.limits.memory / 1024 / 1024)} MiB, fuel{' '}
                  {v.data.limits.fuel.toLocaleString()}
                </>
              )}
            </p>
          )}
          {!mayCall && (
            <p class="notice" role="note" data-testid="no-call">
              Your key lacks the permission tools:call needed to call tools.
            </p>
          )}
          <h2>Tools</h2>
          {v.data.tool_specs.length === 0 && <p class="muted">No tools registered.</p>}
          {v.data.tool_specs.map((t) => (
            <article key={t.name} class="card tool-card" aria-labelledby={`tool-${t.name.replace(/[^\w-]/g, '_')}`}>
              <h3 id={`tool-${t.name.replace(/[^\w-]/g, '_')}`}>{t.name}</h3>
              <p class="small">{t.description}</p>
              {mayCall ? (
                <details>
                  <summary>Call {t.name}</summary>
                  <ToolCallForm server={name} spec={t} onCalled={() => setCalls((n) => n + 1)} />
                </details>
              ) : (
                <details>
                  <summary>Input schema</summary>
                  <pre class="source">{JSON.stringify(t.input_schema, null, 2)}</pre>
                </details>
              )}
            </article>
          ))}
        </>
      )}
      <AuditLog query={query} server={name} refresh={calls} />
    </section>
  );
}

/** The audit log of tool calls (GET /api/v1/tools/audit), newest first; the filters live in the URL query. */
function AuditLog({ query, server, refresh = 0 }: { query: URLSearchParams; server?: string; refresh?: number }) {
  const filters = Object.fromEntries(AUDIT_FILTERS.map((k) => [k, query.get(k) ?? '']));
  const before = query.get('before_id') ?? '';
  const q: Record<string, string> = {
    ...filters,
    limit: '50',
    ...(before && { before_id: before }),
    ...(server !== undefined && { server }),
  };
  const audit = useApi<{ records: AuditRecord[]; next_before_id: number | null }>('/api/v1/tools/audit', q);
  // After a call from this page, the log shows it; calls by agents appear as their executions finish.
  useRefresh(audit.reload, refresh);
  useReloadOnExecutions(audit.reload);
  const [draft, setDraft] = useState(filters);
  const apply = (e: Event) => {
    e.preventDefault();
    setQuery({ ...draft, before_id: undefined });
  };
  const input = (k: (typeof AUDIT_FILTERS)[number], label: string, hint: string) => (
    <div class="filter">
      <label for={`audit-${k}`}>{label}</label>
      <input
        id={`audit-${k}`}
        type="text"
        placeholder={hint}
        value={draft[k] ?? ''}
        onInput={(e) => setDraft({ ...draft, [k]: (e.target as HTMLInputElement).value })}
      />
    </div>
  );
  return (
    <section aria-labelledby="audit-title">
      <h2 id="audit-title">Audit log{server !== undefined && <> of {server}</>}</h2>
      <form class="filters" onSubmit={apply} aria-label="Audit filters">
        {input('agent', 'Agent', 'api, mcp or an agent')}
        {server === undefined && input('tool', 'Tool', 'SERVER.tool or SERVER.*')}
        <div class="filter">
          <label for="audit-outcome">Outcome</label>
          <select
            id="audit-outcome"
            value={draft.outcome ?? ''}
            onChange={(e) => setDraft({ ...draft, outcome: (e.target as HTMLSelectElement).value })}
          >
            <option value="">any</option>
            {OUTCOMES.map((o) => (
              <option key={o} value={o}>
                {o}
              </option>
            ))}
          </select>
        </div>
        {input('since', 'Since', '15m, 2h or a time')}
        {input('principal', 'Principal', 'key:...')}
        <div class="filter">
          <button type="submit">Apply</button>
        </div>
      </form>
      {audit.error !== undefined && <ErrorBox error={audit.error} />}
      {audit.loading && !audit.data && <Loading what="the audit log" />}
      {audit.data && audit.data.records.length === 0 && (
        <p class="muted" data-testid="audit-empty">
          No tool calls match.
        </p>
      )}
      {audit.data && audit.data.records.length > 0 && (
        <div class="table-wrap" tabIndex={0} role="region" aria-label="Tool calls">
          <table data-testid="audit">
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Tool</th>
                <th scope="col">Agent</th>
                <th scope="col">Outcome</th>
                <th scope="col">Duration</th>
                <th scope="col">Principal</th>
              </tr>
            </thead>
            <tbody>
              {audit.data.records.map((r) => (
                <tr key={r.id} data-testid="audit-row">
                  <td>
                    <time dateTime={new Date(r.time).toISOString()}>{when(r.time)}</time>
                  </td>
                  <td>
                    <code>{r.tool}</code>
                    {/* Calls made for an agent belong to its run; a direct call (API, MCP) has no run record. */}
                    {r.execution_id &&
                      (r.agent === 'api' || r.agent === 'mcp' ? (
                        <div class="muted small">call {r.execution_id}</div>
                      ) : (
                        <div class="small">
                          <Link to={`/runs/${encodeURIComponent(r.execution_id)}`} data-testid="run-link">
                            run {r.execution_id}
                          </Link>
                        </div>
                      ))}
                  </td>
                  <td>
                    {r.agent === 'api' || r.agent === 'mcp' ? (
                      r.agent
                    ) : (
                      <Link to={`/agents/${encodeURIComponent(r.agent)}`}>{r.agent}</Link>
                    )}
                    {r.conversation_id && (
                      <div class="small">
                        <Link to={`/conversations/${encodeURIComponent(r.conversation_id)}`}>conversation</Link>
                      </div>
                    )}
                  </td>
                  <td>
                    {r.outcome}
                    {r.error && <div class="small error-text">{r.error}</div>}
                  </td>
                  <td>{(r.duration_us / 1000).toFixed(1)} ms</td>
                  <td>{r.principal ?? ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <div class="row">
        {before && (
          <button type="button" class="secondary" onClick={() => setQuery({ before_id: undefined })}>
            Newest
          </button>
        )}
        {audit.data?.next_before_id != null && (
          <button
            type="button"
            class="secondary"
            onClick={() => setQuery({ before_id: String(audit.data!.next_before_id) })}
          >
            Older
          </button>
        )}
      </div>
    </section>
  );
}

/** Calls `reload` when `n` changes (not on the first render). */
function useRefresh(reload: () => void, n: number): void {
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    reload();
  }, [n]);
}
