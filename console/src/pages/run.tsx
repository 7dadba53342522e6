/**
 * One run (an execution record, GET /api/v1/executions/ID): what was asked, what it answered, on
 * which version and model, its tool calls and its error. The chat links each answer here.
 */
import { ErrorBox, Loading } from '../components/feedback';
import { when } from '../format';
import { useApi } from '../hooks';
import type { PageProps } from '../pages';
import { Link } from '../router';
import { ToolResult } from './agents/tool-result';
import { Waterfall, type WaterfallRun } from './run-waterfall';

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

function RunView({ id }: { id: string }) {
  const run = useApi<Run>(`/api/v1/executions/${encodeURIComponent(id)}`);
  const r = run.data;
  return (
    <section aria-labelledby="run-title">
      <h1 id="run-title">
        Run <code>{id}</code>
      </h1>
      <ErrorBox error={run.error} />
      {!r && !run.error && <Loading what="the run" />}
      {r && (
        <>
          <dl class="fields">
            <dt>Agent</dt>
            <dd>
              <Link to={`/agents/${encodeURIComponent(r.agent)}`}>{r.agent}</Link>
              {typeof r.version_number === 'number' ? (
                <span class="muted" data-testid="run-version">
                  {' '}
                  (version {r.version_number}
                  {r.addressed ? `, addressed as ${r.agent}@${r.version_number}` : ''}; {r.version})
                </span>
              ) : (
                r.version && <span class="muted"> (version {r.version})</span>
              )}
            </dd>
            <dt>Outcome</dt>
            <dd data-testid="run-status">
              {r.status === 'ok' ? 'answered' : `failed: ${r.error?.message ?? 'no reason given'}`}
            </dd>
            <dt>Started</dt>
            <dd>{when(r.started_at)}</dd>
            <dt>Took</dt>
            <dd>
              {Math.round(r.duration_ms)} ms · {r.turns} model turn{r.turns === 1 ? '' : 's'} ·{' '}
              {r.usage.input_tokens + r.usage.output_tokens} tokens{r.model && <> · {r.model}</>}
            </dd>
            {r.conversation_id && (
              <>
                <dt>Conversation</dt>
                <dd>
                  <code>{r.conversation_id}</code>
                </dd>
              </>
            )}
          </dl>
          {r.request !== undefined && (
            <>
              <h2>Asked</h2>
              <pre class="source">{r.request}</pre>
            </>
          )}
          <Waterfall run={r} />
          {(r.tool_calls ?? []).map((c) => (
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
          ))}
          {r.answer !== undefined && r.answer !== null && (
            <>
              <h2>Answered</h2>
              <pre class="source">{r.answer}</pre>
            </>
          )}
        </>
      )}
    </section>
  );
}
