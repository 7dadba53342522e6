/**
 * A run's trace as a waterfall: every span this node kept for the trace (HTTP request, agent
 * execution, model turns, tool calls, messages and the executions they caused in other agents),
 * one row each, indented under its parent, with a bar placed by its start and length. Tool rows
 * carry the arguments the execution record stored for that call. Without kept spans (tracing
 * off, or the trace ran on another node) the record's own model turns and tool calls are drawn.
 */
import { useApi } from '../hooks';

interface Span {
  span_id: string;
  parent_span_id: string | null;
  name: string;
  start: string;
  duration_ms: number;
  status: 'unset' | 'ok' | 'error';
  attributes: Record<string, string | number | boolean>;
}

interface ModelTurn {
  turn: number;
  model: string;
  latency_ms: number;
  /** Tool calls the model asked for in this turn. */
  tool_calls: number;
}

interface ToolCall {
  name: string;
  arguments: string;
  duration_ms: number;
  outcome: 'ok' | 'error';
}

export interface WaterfallRun {
  trace_id: string | null;
  started_at: string;
  duration_ms: number;
  model_turns?: ModelTurn[];
  tool_calls?: ToolCall[];
}

interface Row {
  key: string;
  label: string;
  detail?: string;
  depth: number;
  offset: number;
  length: number;
  failed: boolean;
}

const ms = (n: number) => (n < 1 ? 'under 1 ms' : `${Math.round(n)} ms`);

/** Rows from spans, parents before children, children by start time. */
function spanRows(spans: Span[], run: WaterfallRun): Row[] {
  const t0 = Math.min(...spans.map((s) => Date.parse(s.start)));
  const ids = new Set(spans.map((s) => s.span_id));
  const children = new Map<string | null, Span[]>();
  for (const s of spans) {
    const parent = s.parent_span_id !== null && ids.has(s.parent_span_id) ? s.parent_span_id : null;
    children.set(parent, [...(children.get(parent) ?? []), s]);
  }
  const calls = [...(run.tool_calls ?? [])];
  const rows: Row[] = [];
  const walk = (parent: string | null, depth: number) => {
    for (const s of (children.get(parent) ?? []).sort((a, b) => Date.parse(a.start) - Date.parse(b.start))) {
      let detail: string | undefined;
      const tool = /^tool\.call (.+)$/.exec(s.name)?.[1];
      if (tool !== undefined) {
        const i = calls.findIndex((c) => c.name === tool);
        if (i >= 0) detail = calls.splice(i, 1)[0]!.arguments;
      }
      const model = s.attributes['gen_ai.request.model'] ?? s.attributes['gen_ai.response.model'];
      if (detail === undefined && typeof model === 'string') detail = model;
      rows.push({
        key: s.span_id,
        label: s.name,
        ...(detail !== undefined && { detail }),
        depth,
        offset: Date.parse(s.start) - t0,
        length: s.duration_ms,
        failed: s.status === 'error',
      });
      walk(s.span_id, depth + 1);
    }
  };
  walk(null, 0);
  return rows;
}

/** Rows from the record alone: the model turns, each followed by the tool calls it asked for, laid end to end. */
function recordRows(run: WaterfallRun): Row[] {
  const rows: Row[] = [{ key: 'run', label: 'execution', depth: 0, offset: 0, length: run.duration_ms, failed: false }];
  let at = 0;
  const calls = [...(run.tool_calls ?? [])];
  for (const t of run.model_turns ?? []) {
    rows.push({
      key: `turn${t.turn}`,
      label: `model turn ${t.turn}`,
      detail: t.model,
      depth: 1,
      offset: at,
      length: t.latency_ms,
      failed: false,
    });
    at += t.latency_ms;
    for (const [i, c] of calls.splice(0, t.tool_calls).entries()) {
      const failed = c.outcome === 'error';
      rows.push({
        key: `${t.turn}.${i}`,
        label: `tool ${c.name}`,
        detail: c.arguments,
        depth: 1,
        offset: at,
        length: c.duration_ms,
        failed,
      });
      at += c.duration_ms;
    }
  }
  return rows;
}

export function Waterfall({ run, title = 'Timeline' }: { run: WaterfallRun; title?: string }) {
  const trace = useApi<{ spans: Span[] }>(run.trace_id ? `/api/v1/traces/${run.trace_id}` : undefined);
  const spans = trace.data?.spans ?? [];
  if (run.trace_id && !trace.data && !trace.error) return <p class="muted">Loading the trace…</p>;
  const rows = spans.length > 0 ? spanRows(spans, run) : recordRows(run);
  const end = Math.max(1, ...rows.map((r) => r.offset + r.length));
  return (
    <section aria-labelledby="waterfall-title" data-testid="waterfall">
      <h2 id="waterfall-title">{title}</h2>
      <p class="small muted">
        {spans.length > 0
          ? `${spans.length} spans of trace ${run.trace_id} kept by this node`
          : 'From the execution record (no spans of this run are kept on this node)'}
      </p>
      <ol class="waterfall">
        {rows.map((r) => (
          <li key={r.key} data-testid="waterfall-row" class={r.failed ? 'failed' : undefined}>
            <span class="waterfall-label" style={{ paddingLeft: `${r.depth}rem` }}>
              {r.label}
              {r.detail !== undefined && <code class="waterfall-detail"> {r.detail}</code>}
            </span>
            <span class="waterfall-track" aria-hidden="true">
              <span
                class="waterfall-bar"
                style={{ left: `${(100 * r.offset) / end}%`, width: `${Math.max(0.5, (100 * r.length) / end)}%` }}
              />
            </span>
            <span class="waterfall-time small muted">{ms(r.length)}</span>
          </li>
        ))}
      </ol>
    </section>
  );
}
