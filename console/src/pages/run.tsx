/**
 * One run: its durable record (GET /api/v1/runs/ID: state, origin, principal, every step it
 * committed with a timeline drawn from their times, the calls it waits on with Approve and Deny)
 * and, once it finished, its execution
 * record (GET /api/v1/executions/ID: version, model, tokens and the timeline of its spans). A run
 * has one id for both. On a server that does not record runs, or for a record older than the
 * run's retention, the execution record alone. The chat, the Runs list and messages link here.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from '../api';
import { ErrorBox, Loading } from '../components/feedback';
import { when } from '../format';
import { useApi } from '../hooks';
import type { PageProps } from '../pages';
import { Link } from '../router';
import { ToolResult } from './agents/tool-result';
import { Waterfall, type WaterfallRun } from './run-waterfall';
import { PendingApprovals, RunSteps, type DurableRun, type Highlight } from './run-steps';
import { StepTimeline } from './run-timeline';
import { RunStatusBadge } from './runs';

interface Run extends WaterfallRun {
  id: string;
  agent: string;
  version: string;
  /** Which version of the agent's history ran (what NAME@VERSION addresses), when known. */
  version_number?: number | null;
  addressed?: boolean;
  status: 'ok' | 'error';
  error: { code: string; message: string } | null;
  started_at: string;
  duration_ms: number;
  model: string | null;
  conversation_id: string | null;
  usage: { input_tokens: number; output_tokens: number };
  turns: number;
  trace_id: string | null;
  request?: string;
  answer?: string | null;
  tool_calls?: {
    id: string;
    name: string;
    arguments: string;
    result: string;
    outcome: 'ok' | 'error';
    duration_ms: number;
  }[];
}

export default function RunPage({ params }: PageProps) {
  const id = params.id ?? '';
  // One page per run: another run starts from nothing, so its heading never stands over the
  // previous run's record while it loads.
  return <RunView key={id} id={id} />;
}

/** Model turns and tokens as the run's steps recorded them. */
function modelUsage(d: DurableRun): string {
  let turns = 0;
  let tokens = 0;
  for (const s of d.steps)
    if (s.kind === 'model') {
      turns++;
      tokens += s.reply.usage.total_tokens;
    }
  return `${turns} model turn${turns === 1 ? '' : 's'} · ${tokens} tokens`;
}

const FINISHED = new Set(['completed', 'failed', 'cancelled']);

function RunView({ id }: { id: string }) {
  const durable = useApi<DurableRun>(`/api/v1/runs/${encodeURIComponent(id)}`);
  const d = durable.data;
  // The execution record exists once the run finished; a server that does not record runs has only it.
  const finished = d ? FINISHED.has(d.status) : durable.error !== undefined;
  const run = useApi<Run>(finished ? `/api/v1/executions/${encodeURIComponent(id)}` : undefined);
  const r = run.data;
  const settled = r !== undefined || run.error !== undefined;
  // Shown once both records are in, so that nothing of another run or half of this one stands
  // under the heading; then kept while the run moves on and its record comes.
  const shown = useRef(false);
  if (d ? !finished || settled : settled) shown.current = true;
  // A run that goes on is read again: quickly while it runs, slowly while it waits for a person
  // (who may decide elsewhere).
  const status = d?.status;
  useEffect(() => {
    if (status !== 'running' && status !== 'awaiting_approval') return;
    const t = setInterval(
      () => document.visibilityState === 'visible' && durable.reload(),
      status === 'running' ? 1_000 : 5_000,
    );
    return () => clearInterval(t);
  }, [status]);
  const noRecord = run.error instanceof ApiError && run.error.status === 404;
  // The step a timeline span was chosen for: the list scrolls to it and marks it.
  const [highlight, setHighlight] = useState<Highlight>();
  const select = (key: string) => setHighlight((h) => ({ key, n: (h?.n ?? 0) + 1 }));
  return (
    <section aria-labelledby="run-title">
      <p class="crumbs">
        <Link to="/runs">Runs</Link> /
      </p>
      <h1 id="run-title">
        Run <code>{id}</code>
      </h1>
      {!shown.current && <Loading what="the run" />}
      {shown.current && !d && !r && <ErrorBox error={run.error ?? durable.error} />}
      {shown.current && (d || r) && (
        <>
          <dl class="fields">
            <dt>Agent</dt>
            <dd>
              <Link to={`/agents/${encodeURIComponent((r?.agent ?? d!.agent).split('@')[0]!)}`}>
                {r?.agent ?? d!.agent}
              </Link>
              {r &&
                (typeof r.version_number === 'number' ? (
                  <span class="muted" data-testid="run-version">
                    {' '}
                    (version {r.version_number}
                    {r.addressed ? `, addressed as ${r.agent}@${r.version_number}` : ''}; {r.version})
                  </span>
                ) : (
                  r.version && <span class="muted"> (version {r.version})</span>
                ))}
              {!r && d?.version && <span class="muted"> (version {d.version})</span>}
            </dd>
            <dt>{d ? 'State' : 'Outcome'}</dt>
            <dd data-testid="run-status">
              {d ? (
                <>
                  <RunStatusBadge status={d.status} />
                  {d.error && <span class="error-text"> {d.error.message}</span>}
                </>
              ) : r!.status === 'ok' ? (
                'answered'
              ) : (
                `failed: ${r!.error?.message ?? 'no reason given'}`
              )}
            </dd>
            {d && (
              <>
                <dt>Started by</dt>
                <dd>
                  {d.origin}
                  {d.principal !== null && <> · {d.principal}</>}
                  {d.message_id !== null && (
                    <>
                      {' '}
                      · <Link to={`/messages/${encodeURIComponent(d.message_id)}`}>its message</Link>
                    </>
                  )}
                </dd>
              </>
            )}
            <dt>Started</dt>
            <dd>{when(d?.created_at ?? r!.started_at)}</dd>
            {d && (
              <>
                <dt>Last step</dt>
                <dd>
                  {when(d.updated_at)}
                  {d.resumes > 0 && (
                    <span data-testid="run-resumes"> · resumed {d.resumes === 1 ? 'once' : `${d.resumes} times`}</span>
                  )}
                </dd>
              </>
            )}
            {d ? (
              <>
                <dt>Model</dt>
                <dd data-testid="run-usage">
                  {/* From the steps: the execution record of a run that resumed covers its last execution only. */}
                  {modelUsage(d)}
                  {r && (
                    <>
                      {' '}
                      · {Math.round(r.duration_ms)} ms in its last execution{r.model && <> · {r.model}</>}
                    </>
                  )}
                </dd>
              </>
            ) : (
              r && (
                <>
                  <dt>Took</dt>
                  <dd>
                    {Math.round(r.duration_ms)} ms · {r.turns} model turn{r.turns === 1 ? '' : 's'} ·{' '}
                    {r.usage.input_tokens + r.usage.output_tokens} tokens{r.model && <> · {r.model}</>}
                  </dd>
                </>
              )
            )}
            {(r?.conversation_id ?? d?.conversation_id) && (
              <>
                <dt>Conversation</dt>
                <dd>
                  <code>{r?.conversation_id ?? d?.conversation_id}</code>
                </dd>
              </>
            )}
          </dl>
          {(d?.request ?? r?.request) !== undefined && (
            <>
              <h2>Asked</h2>
              <pre class="source">{d?.request ?? r?.request}</pre>
            </>
          )}
          {d && <PendingApprovals run={d} onDecided={durable.reload} />}
          {d && <StepTimeline steps={d.steps} createdAt={d.created_at} onSelect={select} />}
          {r ? (
            <Waterfall run={r} title={d ? 'Trace of its last execution' : 'Timeline'} />
          ) : (
            d &&
            FINISHED.has(d.status) &&
            noRecord && (
              <p class="muted small" data-testid="no-execution-record">
                No execution record of this run is kept, so there is no trace: its steps are below.
              </p>
            )
          )}
          {d ? (
            <RunSteps run={d} highlight={highlight} />
          ) : (
            (r?.tool_calls ?? []).map((c) => (
              <details key={c.id} class={`tool-call${c.outcome === 'error' ? ' failed' : ''}`}>
                <summary>
                  <strong>Tool call {c.name}</strong>{' '}
                  <span class="small muted">
                    {c.outcome === 'error' ? 'failed' : 'result'} in {Math.round(c.duration_ms)} ms
                  </span>
                </summary>
                <pre>{c.arguments}</pre>
                <ToolResult text={c.result} />
              </details>
            ))
          )}
          {(d ? d.response?.content : r?.answer) != null && (
            <>
              <h2>Answered</h2>
              <pre class="source" data-testid="run-answer">
                {d ? d.response?.content : r?.answer}
              </pre>
            </>
          )}
        </>
      )}
    </section>
  );
}
