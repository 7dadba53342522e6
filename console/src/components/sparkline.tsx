/** A small time-series chart: inline SVG (no library), described for screen readers by its range. */

export function Sparkline({
  values,
  label,
  format = (v) => String(v),
}: {
  values: readonly number[];
  label: string;
  format?: (v: number) => string;
}) {
  const w = 120;
  const h = 32;
  if (values.length < 2) {
    return (
      <svg viewBox={`0 0 ${w} ${h}`} role="img" aria-label={`${label}: collecting samples`} preserveAspectRatio="none">
        <line x1="0" y1={h - 1} x2={w} y2={h - 1} class="spark-line" />
      </svg>
    );
  }
  const max = Math.max(...values);
  const min = Math.min(0, ...values);
  const span = max - min || 1;
  const step = w / (values.length - 1);
  const pts = values.map((v, i) => `${(i * step).toFixed(1)},${(h - 1 - ((v - min) / span) * (h - 2)).toFixed(1)}`);
  return (
    <svg
      viewBox={`0 0 ${w} ${h}`}
      role="img"
      aria-label={`${label}: last ${values.length} samples, from ${format(min)} to ${format(max)}, now ${format(values[values.length - 1]!)}`}
      preserveAspectRatio="none"
    >
      <polygon class="spark-area" points={`0,${h} ${pts.join(' ')} ${w},${h}`} />
      <polyline class="spark-line" points={pts.join(' ')} vector-effect="non-scaling-stroke" />
    </svg>
  );
}
