/**
 * The Overview's history charts: GET /api/v1/stats/history for a time range (15 min to 7 days,
 * `?range=` in the URL), drawn as small inline SVG bar and line charts — executions with their
 * errors, message deliveries done and failed, tokens, and latency p50/p95 per bucket. Each chart
 * is one `role="img"` summarised in words; every bar carries its figures as a tooltip.
 */
import { get } from '../api';
import { ErrorBox, Loading } from '../components/feedback';
import { when } from '../format';
import { usePoll } from '../hooks';
import { Link, setQuery } from '../router';
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';

export const RANGES = [
  { id: '15m', label: '15 min' },
  { id: '1h', label: '1 h' },
  { id: '6h', label: '6 h' },
  { id: '24h', label: '24 h' },
  { id: '7d', label: '7 d' },
] as const;

interface Bucket {
  time: string;
  executions: number;
  execution_errors: number;
  input_tokens: number;
  output_tokens: number;
  latency_p50_ms: number | null;
  latency_p95_ms: number | null;
  messages_delivered: number;
  messages_failed: number;
}

interface HistoryData {
  range: string;
  from: string;
  to: string;
  bucket_seconds: number;
  sources: { executions: boolean; messages: boolean };
  buckets: Bucket[];
}

const W = 300;
const H = 80;

const sum = (bs: readonly Bucket[], f: (b: Bucket) => number) => bs.reduce((n, b) => n + f(b), 0);
const ms = (v: number) => (v >= 1000 ? `${(v / 1000).toFixed(v >= 10_000 ? 0 : 1)} s` : `${Math.round(v)} ms`);
const count = (v: number) => (v >= 10_000 ? `${(v / 1000).toFixed(0)}k` : String(v));

/** Stacked bars: `parts` bottom up, each with its CSS class. */
function Bars({
  buckets,
  parts,
  label,
  tip,
}: {
  buckets: readonly Bucket[];
  parts: readonly { value: (b: Bucket) => number; cls: string }[];
  label: string;
  tip: (b: Bucket) => string;
}) {
  const max = Math.max(1, ...buckets.map((b) => parts.reduce((n, p) => n + p.value(b), 0)));
  const step = W / buckets.length;
  return (
    <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={label} preserveAspectRatio="none" class="history-chart">
      <line x1="0" y1={H - 0.5} x2={W} y2={H - 0.5} class="chart-axis" />
      {buckets.map((b, i) => {
        let y = H;
        return (
          <g key={b.time}>
            <title>{tip(b)}</title>
            <rect x={i * step} y={0} width={step} height={H} class="chart-hit" />
            {parts.map((p) => {
              const h = (p.value(b) / max) * (H - 4);
              y -= h;
              return h > 0 ? (
                <rect key={p.cls} x={i * step + step * 0.12} y={y} width={step * 0.76} height={h} class={p.cls} />
              ) : null;
            })}
          </g>
        );
      })}
    </svg>
  );
}

/** Lines with gaps where a bucket has no value. */
function Lines({
  buckets,
  lines,
  label,
  tip,
}: {
  buckets: readonly Bucket[];
  lines: readonly { value: (b: Bucket) => number | null; cls: string }[];
  label: string;
  tip: (b: Bucket) => string;
}) {
  const max = Math.max(1, ...buckets.flatMap((b) => lines.map((l) => l.value(b) ?? 0)));
  const step = W / buckets.length;
  const x = (i: number) => i * step + step / 2;
  const y = (v: number) => H - 2 - (v / max) * (H - 6);
  return (
    <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={label} preserveAspectRatio="none" class="history-chart">
      <line x1="0" y1={H - 0.5} x2={W} y2={H - 0.5} class="chart-axis" />
      {lines.map((l) => {
        const d = buckets
          .map((b, i) => {
            const v = l.value(b);
            if (v === null) return '';
            const prev = i > 0 ? l.value(buckets[i - 1]!) : null;
            return `${prev === null ? 'M' : 'L'}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
          })
          .join(' ');
        return <path key={l.cls} d={d || 'M0,0'} class={l.cls} vector-effect="non-scaling-stroke" />;
      })}
      {buckets.map((b, i) =>
        lines.map((l) => {
          const v = l.value(b);
          return v === null ? null : (
            <rect key={`${b.time}-${l.cls}`} x={x(i) - 1} y={y(v) - 1} width={2} height={2} class={`${l.cls}-dot`} />
          );
        }),
      )}
      {buckets.map((b, i) => (
        <rect key={b.time} x={i * step} y={0} width={step} height={H} class="chart-hit">
          <title>{tip(b)}</title>
        </rect>
      ))}
    </svg>
  );
}

function Chart({
  title,
  value,
  note,
  children,
}: {
  title: string;
  value: string;
  note: ComponentChildren;
  children: unknown;
}) {
  return (
    <figure class="history" data-testid={`history-${title.toLowerCase().split(' ')[0]}`}>
      <figcaption>
        <span>{title}</span> <strong>{value}</strong>
      </figcaption>
      {children}
      <p class="muted small">{note}</p>
    </figure>
  );
}

export function HistoryCharts({ range }: { range: string }) {
  const [data, setData] = useState<HistoryData>();
  const [error, setError] = useState<unknown>();
  // Short ranges move fast; longer ones change little between polls.
  usePoll(
    () => {
      get<HistoryData>('/api/v1/stats/history', { range }).then(
        (d) => {
          setData(d);
          setError(undefined);
        },
        (e: unknown) => setError(e),
      );
    },
    range === '15m' || range === '1h' ? 5000 : 30_000,
    [range],
  );
  const current = data?.range === range ? data : undefined;
  const bs = current?.buckets ?? [];
  const at = (b: Bucket) => when(b.time);
  const span = current
    ? `${when(current.from)} to ${when(current.to)}, ${bs.length} buckets of ${current.bucket_seconds >= 3600 ? `${current.bucket_seconds / 3600} h` : current.bucket_seconds >= 60 ? `${current.bucket_seconds / 60} min` : `${current.bucket_seconds} s`}`
    : '';
  const p95s = bs.map((b) => b.latency_p95_ms).filter((v): v is number => v !== null);
  const executions = sum(bs, (b) => b.executions);
  const errors = sum(bs, (b) => b.execution_errors);
  const delivered = sum(bs, (b) => b.messages_delivered);
  const failed = sum(bs, (b) => b.messages_failed);
  const tokens = sum(bs, (b) => b.input_tokens + b.output_tokens);
  return (
    <section aria-labelledby="history-title" data-testid="history">
      <div class="row">
        <h2 id="history-title">History</h2>
        <span class="spacer" />
        <div role="group" aria-label="Time range" class="range-switch">
          {RANGES.map((r) => (
            <button
              key={r.id}
              type="button"
              aria-pressed={r.id === range}
              onClick={() => setQuery({ range: r.id === '1h' ? undefined : r.id })}
            >
              {r.label}
            </button>
          ))}
        </div>
      </div>
      {error !== undefined && <ErrorBox error={error} />}
      {!current && error === undefined && <Loading what="the history" />}
      {current && (
        <>
          <p class="muted small" data-testid="history-span">
            {span}
          </p>
          {!current.sources.executions && (
            <p class="notice">
              Execution records are off on this server ([executions] enabled = false): no executions, tokens or latency
              to show.
            </p>
          )}
          <div class="history-grid">
            <Chart
              title="Executions"
              value={String(executions)}
              note={errors > 0 ? <Link to="/runs?status=failed">{`${errors} failed`}</Link> : `${errors} failed`}
            >
              <Bars
                buckets={bs}
                parts={[
                  { value: (b) => b.executions - b.execution_errors, cls: 'bar-ok' },
                  { value: (b) => b.execution_errors, cls: 'bar-bad' },
                ]}
                label={`Executions per bucket, ${span}: ${executions} in all, ${errors} failed`}
                tip={(b) => `${at(b)}: ${b.executions} executions, ${b.execution_errors} failed`}
              />
            </Chart>
            <Chart title="Messages delivered" value={String(delivered)} note={`${failed} failed (dead letters)`}>
              <Bars
                buckets={bs}
                parts={[
                  { value: (b) => b.messages_delivered, cls: 'bar-ok' },
                  { value: (b) => b.messages_failed, cls: 'bar-bad' },
                ]}
                label={`Message deliveries per bucket, ${span}: ${delivered} delivered, ${failed} failed`}
                tip={(b) => `${at(b)}: ${b.messages_delivered} delivered, ${b.messages_failed} failed`}
              />
            </Chart>
            <Chart
              title="Tokens"
              value={count(tokens)}
              note={`${count(sum(bs, (b) => b.input_tokens))} in · ${count(sum(bs, (b) => b.output_tokens))} out`}
            >
              <Bars
                buckets={bs}
                parts={[
                  { value: (b) => b.input_tokens, cls: 'bar-in' },
                  { value: (b) => b.output_tokens, cls: 'bar-out' },
                ]}
                label={`Tokens per bucket, ${span}: ${tokens} in all`}
                tip={(b) => `${at(b)}: ${b.input_tokens} in, ${b.output_tokens} out`}
              />
            </Chart>
            <Chart
              title="Latency"
              value={p95s.length > 0 ? `p95 ≤ ${ms(Math.max(...p95s))}` : '—'}
              note="p50 (solid) and p95 (dashed) per bucket"
            >
              <Lines
                buckets={bs}
                lines={[
                  { value: (b) => b.latency_p50_ms, cls: 'line-p50' },
                  { value: (b) => b.latency_p95_ms, cls: 'line-p95' },
                ]}
                label={`Execution latency per bucket, ${span}: ${p95s.length > 0 ? `highest p95 ${ms(Math.max(...p95s))}` : 'no executions'}`}
                tip={(b) =>
                  b.latency_p50_ms === null
                    ? `${at(b)}: no executions`
                    : `${at(b)}: p50 ${ms(b.latency_p50_ms)}, p95 ${ms(b.latency_p95_ms ?? 0)}`
                }
              />
            </Chart>
          </div>
        </>
      )}
    </section>
  );
}
