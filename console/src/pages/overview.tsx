/**
 * Overview: the server at a glance. Figures from GET /api/v1/status/overview, polled every two
 * seconds, with the last few minutes as small charts; agent events live from
 * GET /api/v1/events/stream. Outside dependencies (GET /ready's checks) appear when the server
 * has any; cluster nodes (GET /api/v1/cluster) when it runs with [cluster].
 */
import { useRef, useState } from 'preact/hooks';
import { get } from '../api';
import { ErrorBox, Loading } from '../components/feedback';
import { locationOf } from '../components/issues';
import { LiveStatus } from '../components/live-status';
import { Sparkline } from '../components/sparkline';
import { HistoryCharts, RANGES } from './overview-history';
import { bytes, duration, percent, rate, time } from '../format';
import { useApi, useLive, usePoll } from '../hooks';
import type { PageProps } from '../pages';
import { Link } from '../router';
import { can } from '../session';

interface OverviewData {
  version: string;
  uptime_seconds: number;
  ready: boolean;
  time: string;
  metrics_enabled: boolean;
  agents: { total: number; from_files: number; from_api: number; capabilities: number; invalid_files: number };
  rates: {
    window_seconds: number;
    executions_per_second: number;
    messages_per_second: number;
    errors_per_second: number;
    execution_error_rate: number | null;
    message_error_rate: number | null;
    http_requests_per_second: number;
  };
  totals: { executions: number; execution_errors: number; messages: number; message_failures: number; errors: number };
  queue: {
    depth: number;
    queued: number;
    running: number;
    retrying: number;
    max_queue: number;
    open_conversations: number;
  } | null;
  dead_letters: number | null;
  memory?: { entities: number; relations: number; observations: number; database_bytes?: number };
  tool_servers: {
    total: number;
    loaded: number;
    failed: number;
    tools: number;
    servers: { name: string; origin: string; state: string; tools: number }[];
  } | null;
  tool_sources?: {
    total: number;
    tools: number;
    by_kind: Record<string, number>;
    unavailable: { name: string; kind: string; state: string; error: string | null }[];
  };
  /** Configuration that makes work fail although the server serves (a provider without its key), each with its fix. */
  degraded?: { name: string; problem: string; fix: string }[];
  /** The outside dependencies /ready checks (memory on PostgreSQL, NATS), with why one failed. */
  dependencies?: { name: string; ok: boolean; reason?: string }[];
}

/** GET /api/v1/cluster: a server without [cluster] lists itself with clustered = false. */
interface ClusterData {
  clustered: boolean;
  node: string;
  nodes: {
    node: string;
    url: string | null;
    version: string;
    state: string;
    age_ms: number;
    self: boolean;
    load: Record<string, number>;
  }[];
}

interface Status {
  agent_files: {
    loaded: number;
    invalid: {
      path: string;
      agent?: string;
      errors: { message: string; line?: number; column?: number; field?: string }[];
    }[];
    ignored: string[];
  };
}

interface AgentEvent {
  id: number;
  time: string;
  type: string;
  agent: string;
  trace_id: string | null;
  data: Record<string, unknown> | null;
}

/** Samples kept for the charts: 90 × 2 s = three minutes. */
const KEEP = 90;
const POLL_MS = 2000;

type Series = 'executions' | 'messages' | 'errors' | 'queue';

export default function Overview({ query }: PageProps) {
  const asked = query.get('range');
  const range = RANGES.some((r) => r.id === asked) ? asked! : '1h';
  const [data, setData] = useState<OverviewData>();
  const [error, setError] = useState<unknown>();
  const history = useRef<Record<Series, number[]>>({ executions: [], messages: [], errors: [], queue: [] });
  const [events, setEvents] = useState<AgentEvent[]>([]);
  const lastEvent = useRef(0);

  usePoll(() => {
    get<OverviewData>('/api/v1/status/overview', { window: '10s' }).then(
      (d) => {
        const h = history.current;
        const push = (k: Series, v: number) => {
          h[k] = [...h[k], v].slice(-KEEP);
        };
        push('executions', d.rates.executions_per_second);
        push('messages', d.rates.messages_per_second);
        push('errors', d.rates.errors_per_second);
        push('queue', d.queue?.depth ?? 0);
        setData(d);
        setError(undefined);
      },
      (e: unknown) => setError(e),
    );
  }, POLL_MS);

  const live = useLive(
    {
      path: '/api/v1/events/stream',
      // The last ten minutes first; after a reconnect, only what came after the last event seen.
      query: () => (lastEvent.current > 0 ? { after: lastEvent.current, limit: 50 } : { since: '10m', limit: 50 }),
      onEvent: (e) => {
        if (e.event === 'ready') return;
        try {
          const ev = JSON.parse(e.data) as AgentEvent;
          lastEvent.current = Math.max(lastEvent.current, ev.id);
          setEvents((xs) => [ev, ...xs].slice(0, 20));
        } catch {
          /* not an event */
        }
      },
    },
    [],
  );

  const [cluster, setCluster] = useState<ClusterData>();
  usePoll(() => {
    get<ClusterData>('/api/v1/cluster').then(setCluster, () => setCluster(undefined));
  }, 5000);

  // Invalid agent files, with their located errors, from GET /api/v1/status (read again when their count changes).
  const invalidCount = data?.agents.invalid_files ?? 0;
  const status = useApi<Status>(invalidCount > 0 ? '/api/v1/status' : undefined, { n: invalidCount });

  if (!data) {
    return (
      <section aria-labelledby="overview-title">
        <h1 id="overview-title">Overview</h1>
        {error ? <ErrorBox error={error} /> : <Loading what="the overview" />}
      </section>
    );
  }
  const h = history.current;
  const d = data;
  return (
    <section aria-labelledby="overview-title">
      <div class="row">
        <h1 id="overview-title">Overview</h1>
        <span class="spacer" />
        <span class="muted small">
          Caxton {d.version} · up {duration(d.uptime_seconds)} · {d.ready ? 'ready' : 'not ready'}
        </span>
      </div>
      {d.dependencies && d.dependencies.length > 0 && (
        <ul class="dependencies" aria-label="Outside dependencies" data-testid="dependencies">
          {d.dependencies.map((dep) => (
            <li key={dep.name} class={dep.ok ? 'ok-text' : 'error-text'}>
              {dep.name}: {dep.ok ? 'available' : `unavailable${dep.reason ? ` (${dep.reason})` : ''}`}
            </li>
          ))}
        </ul>
      )}
      {d.degraded && d.degraded.length > 0 && (
        <ul class="notice" aria-label="Degraded" data-testid="degraded">
          {d.degraded.map((p) => (
            <li key={p.name}>
              <strong>{p.problem}</strong> Fix: {p.fix}
            </li>
          ))}
        </ul>
      )}
      {error !== undefined && <ErrorBox error={error} />}
      {!d.metrics_enabled && <p class="notice">Rates stay at 0: [metrics] enabled = false on this server.</p>}
      <h2 id="now">Now</h2>
      <dl class="stats" aria-labelledby="now">
        <div class="stat" data-testid="stat-agents">
          <dt>
            <StatLink to="/agents" permission="agents:read">
              Agents
            </StatLink>
          </dt>
          <dd>
            <span class="value">{d.agents.total}</span>
            <p class="muted small">
              {d.agents.from_files} from files · {d.agents.from_api} from the API · {d.agents.capabilities} capabilities
              {d.agents.invalid_files > 0 && <> · {d.agents.invalid_files} invalid files</>}
            </p>
          </dd>
        </div>
        <div class="stat" data-testid="stat-executions">
          <dt>
            <StatLink to="/logs" permission="observe:read">
              Executions per second
            </StatLink>
          </dt>
          <dd>
            <span class="value">{rate(d.rates.executions_per_second)}</span>
            <Sparkline values={h.executions} label="Executions per second" format={rate} />
            <p class="muted small">
              {d.totals.executions} in all ·{' '}
              <StatLink to="/runs?status=failed" permission="observe:read">
                {`error rate ${percent(d.rates.execution_error_rate)}`}
              </StatLink>
            </p>
          </dd>
        </div>
        <div class="stat" data-testid="stat-messages">
          <dt>
            <StatLink to="/messages" permission="messages:read">
              Messages per second
            </StatLink>
          </dt>
          <dd>
            <span class="value">{rate(d.rates.messages_per_second)}</span>
            <Sparkline values={h.messages} label="Messages per second" format={rate} />
            <p class="muted small">
              {d.totals.messages} in all · failure rate {percent(d.rates.message_error_rate)}
            </p>
          </dd>
        </div>
        <div class="stat" data-testid="stat-errors">
          <dt>
            <StatLink to="/logs" permission="observe:read">
              Errors per second
            </StatLink>
          </dt>
          <dd>
            <span class="value">{rate(d.rates.errors_per_second)}</span>
            <Sparkline values={h.errors} label="Errors per second" format={rate} />
            <p class="muted small">{d.totals.errors} API errors in all</p>
          </dd>
        </div>
        <div class="stat" data-testid="stat-queue">
          <dt>
            <StatLink to="/conversations" permission="messages:read">
              Queue depth
            </StatLink>
          </dt>
          <dd>
            <span class="value">{d.queue ? d.queue.depth : '—'}</span>
            <Sparkline values={h.queue} label="Queue depth" />
            {d.queue && (
              <p class="muted small">
                {d.queue.queued} queued · {d.queue.running} running · {d.queue.retrying} retrying ·{' '}
                {d.queue.open_conversations} open conversations
              </p>
            )}
          </dd>
        </div>
        <div class="stat" data-testid="stat-dead-letters">
          <dt>
            <StatLink to="/dead-letters" permission="messages:read">
              Dead letters
            </StatLink>
          </dt>
          <dd>
            <span class="value">{d.dead_letters ?? '—'}</span>
          </dd>
        </div>
        <div class="stat" data-testid="stat-memory">
          <dt>
            <StatLink to="/memory" permission="memory:read">
              Memory
            </StatLink>
          </dt>
          <dd>
            <span class="value">{d.memory ? d.memory.entities : 'off'}</span>
            {d.memory && (
              <p class="muted small">
                entities · {d.memory.relations} relations · {d.memory.observations} observations ·{' '}
                {bytes(d.memory.database_bytes)}
              </p>
            )}
          </dd>
        </div>
        <div class="stat" data-testid="stat-tools">
          <dt>
            <StatLink to="/tools" permission="tools:read">
              Tool servers
            </StatLink>
          </dt>
          <dd>
            <span class="value">{d.tool_servers ? d.tool_servers.total : '—'}</span>
            {d.tool_servers && (
              <p class="muted small">
                {d.tool_servers.loaded} loaded · {d.tool_servers.failed} failed · {d.tool_servers.tools} tools
                {d.tool_sources && <> · {d.tool_sources.total} tool sources in all</>}
              </p>
            )}
          </dd>
        </div>
      </dl>
      <HistoryCharts range={range} />

      {invalidCount > 0 && status.data && (
        <>
          <h2 id="invalid-files">Invalid agent files</h2>
          <ul aria-labelledby="invalid-files" data-testid="invalid-files">
            {status.data.agent_files.invalid.map((f) => (
              <li key={f.path}>
                <code>{f.path}</code>
                <ul class="issues">
                  {f.errors.map((e, i) => (
                    <li key={i}>
                      {locationOf(e) && <strong>{locationOf(e)}: </strong>}
                      {e.message}
                    </li>
                  ))}
                </ul>
              </li>
            ))}
          </ul>
        </>
      )}

      {d.tool_sources && d.tool_sources.unavailable.length > 0 && (
        <>
          <h2>Unavailable tool sources</h2>
          <ul>
            {d.tool_sources.unavailable.map((u) => (
              <li key={u.name}>
                <strong>{u.name}</strong> ({u.kind}, {u.state}){u.error && <>: {u.error}</>}
              </li>
            ))}
          </ul>
        </>
      )}

      {cluster?.clustered && (
        <>
          <h2 id="cluster">Cluster nodes</h2>
          <div class="table-wrap" tabIndex={0} role="region" aria-labelledby="cluster">
            <table aria-labelledby="cluster">
              <thead>
                <tr>
                  <th scope="col">Node</th>
                  <th scope="col">State</th>
                  <th scope="col">Heartbeat</th>
                  <th scope="col">Queued</th>
                  <th scope="col">Running</th>
                  <th scope="col">URL</th>
                </tr>
              </thead>
              <tbody>
                {cluster.nodes.map((n) => (
                  <tr key={n.node}>
                    <td>
                      {n.node}
                      {n.self && <span class="muted"> (this node)</span>}
                    </td>
                    <td>{n.state}</td>
                    <td>{(n.age_ms / 1000).toFixed(1)} s ago</td>
                    <td>{n.load.queued ?? '—'}</td>
                    <td>{n.load.running ?? '—'}</td>
                    <td>{n.url ?? '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}

      <div class="row">
        <h2 id="events">Recent agent events</h2>
        <span class="spacer" />
        <LiveStatus state={live} label="Events" />
      </div>
      {events.length === 0 ? (
        <p class="muted">No agent events in the last ten minutes.</p>
      ) : (
        <div class="table-wrap" tabIndex={0} role="region" aria-labelledby="events">
          <table aria-labelledby="events" data-testid="events">
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Event</th>
                <th scope="col">Agent</th>
                <th scope="col">Details</th>
              </tr>
            </thead>
            <tbody>
              {events.map((e) => (
                <tr key={e.id}>
                  <td>{time(e.time)}</td>
                  <td>{e.type}</td>
                  <td>
                    {can('agents:read') && e.type !== 'agent.invalid_file' ? (
                      <Link to={`/agents/${encodeURIComponent(e.agent)}`}>{e.agent}</Link>
                    ) : (
                      e.agent
                    )}
                  </td>
                  <td class="small">{summary(e)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function summary(e: AgentEvent): string {
  const d = e.data ?? {};
  const parts: string[] = [];
  for (const k of ['status', 'duration_ms', 'performative', 'sender', 'new_state', 'reason']) {
    const v = d[k];
    if (v !== undefined && v !== null) parts.push(`${k.replace('_', ' ')} ${String(v)}`);
  }
  if (e.trace_id) parts.push(`trace ${e.trace_id}`);
  return parts.join(' · ');
}

/** A card's title: a link to the page with its detail, for a principal who may open it. */
function StatLink({ to, permission, children }: { to: string; permission: string; children: string }) {
  return can(permission) ? <Link to={to}>{children}</Link> : <>{children}</>;
}
