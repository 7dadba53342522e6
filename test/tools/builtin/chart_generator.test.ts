/**
 * Built-in `chart_generator`: bar, line and pie charts as standalone SVG documents (checked to be
 * well-formed XML), from labels + series or from csv_parser's rows.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { loadBuiltin, type Loaded } from './helpers.js';

let chart: Loaded;
let csv: Loaded;
beforeAll(() => {
  chart = loadBuiltin('chart_generator');
  csv = loadBuiltin('csv_parser');
});

/** Checks that `svg` is one well-formed XML element tree rooted at <svg>; returns the tag counts. */
function wellFormed(svg: string): Record<string, number> {
  expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
  const stack: string[] = [];
  const counts: Record<string, number> = {};
  const re = /<(\/?)([a-zA-Z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|<|&(?!(?:amp|lt|gt|quot|#\d+);)/g;
  let m: RegExpExecArray | null;
  let roots = 0;
  while ((m = re.exec(svg))) {
    if (m[2] === undefined) throw new Error(`stray "${m[0]}" at ${m.index}: ${svg.slice(m.index, m.index + 60)}`);
    const [, close, name, , selfClose] = m;
    if (close) {
      expect(stack.pop(), `</${name}> at ${m.index}`).toBe(name);
      continue;
    }
    if (stack.length === 0) roots++;
    counts[name!] = (counts[name!] ?? 0) + 1;
    if (!selfClose) stack.push(name!);
  }
  expect(stack).toEqual([]);
  expect(roots).toBe(1);
  return counts;
}

const render = async (args: Record<string, unknown>) => {
  const r = await chart.call('render', args);
  if (r.is_error) throw new Error(r.content);
  return r.content;
};

describe('chart_generator', () => {
  it('declares one tool, render, whose output is SVG text (no JSON output schema)', () => {
    expect(chart.server.tools.map((t) => t.name)).toEqual(['chart_generator.render']);
    expect(chart.server.manifest.tools[0]!.output_schema).toBeUndefined();
  });

  it('renders a bar chart: one bar per value, labels, title and escaped text', async () => {
    const svg = await render({
      type: 'bar',
      title: 'Sales <2026> & "more"',
      labels: ['Jan', 'Feb', 'Mar'],
      series: [{ name: 'sales', values: [10, 15.5, '7'] }],
      x_label: 'month',
      y_label: 'EUR',
    });
    const tags = wellFormed(svg);
    expect(svg.match(/<rect class="bar"/g)).toHaveLength(3);
    expect(svg).toContain('data-label="Feb" data-value="15.5"');
    expect(svg).toContain('data-label="Mar" data-value="7"');
    expect(svg).toContain('Sales &lt;2026&gt; &amp; &quot;more&quot;');
    expect(svg).toMatch(/class="x-label"[^>]*>month</);
    expect(tags.svg).toBe(1);
  });

  it('renders line charts with several series and a legend', async () => {
    const svg = await render({
      type: 'line',
      labels: [1, 2, 3, 4],
      series: [
        { name: 'a', values: [1, -2, 3, null] },
        { name: 'b', values: [0, 1, 1, 2] },
      ],
    });
    wellFormed(svg);
    expect(svg.match(/<polyline class="line"/g)).toHaveLength(2);
    expect(svg.match(/<circle class="point"/g)).toHaveLength(7);
    expect(svg.match(/class="legend-item"/g)).toHaveLength(2);
  });

  it('renders a pie chart with percentages', async () => {
    const svg = await render({
      type: 'pie',
      title: 'Share',
      labels: ['x', 'y', 'z'],
      series: [{ values: [1, 1, 2] }],
      width: 500,
      height: 300,
    });
    wellFormed(svg);
    expect(svg.match(/<path class="slice"/g)).toHaveLength(3);
    expect(svg).toContain('z (50%)');
    expect(svg).toContain('width="500" height="300"');
  });

  it('charts csv_parser output directly (rows + label_key; numeric strings accepted)', async () => {
    const parsed = await csv.json<{ rows: Record<string, string>[] }>('parse', {
      text: 'month,sales,costs\nJan,10,4\nFeb,12.5,6\nMar,9,5\n',
    });
    const svg = await render({ type: 'bar', rows: parsed.rows, label_key: 'month' });
    wellFormed(svg);
    expect(svg.match(/<rect class="bar"/g)).toHaveLength(6);
    expect(svg).toContain('data-series="sales"');
    expect(svg).toContain('data-series="costs"');
    const only = await render({ type: 'line', rows: parsed.rows, label_key: 'month', value_keys: ['costs'] });
    expect(only.match(/<circle class="point"/g)).toHaveLength(3);
  });

  it('malformed input gets a clear error naming the field', async () => {
    const failure = async (args: Record<string, unknown>) => {
      const r = await chart.call('render', args);
      expect(r.is_error).toBe(true);
      return r.content;
    };
    expect(await failure({ labels: ['a'], series: [{ values: [1] }] })).toMatch(
      /\(invalid_input\): .*must have required property 'type'/,
    );
    expect(await failure({ type: 'donut', labels: ['a'], series: [{ values: [1] }] })).toMatch(
      /\(invalid_input\): .*\/type must be equal to one of the allowed values \("bar", "line", "pie"\)/,
    );
    expect(await failure({ type: 'bar', labels: ['a'], series: [{ values: [true] }] })).toMatch(
      /\(invalid_input\): .*\/series\/0\/values\/0 must be number,string,null/,
    );
    expect(await failure({ type: 'bar', width: 10, labels: ['a'], series: [{ values: [1] }] })).toMatch(
      /\(invalid_input\): .*\/width must be >= 200/,
    );
    expect(await failure({ type: 'bar' })).toBe(
      'tool "chart_generator.render" failed (error): pass "labels" and "series" (or "rows" with "label_key" and "value_keys")',
    );
    expect(await failure({ type: 'bar', labels: ['a', 'b'], series: [{ name: 's', values: [1] }] })).toMatch(
      /\(error\): series "s" has 1 values for 2 labels/,
    );
    expect(await failure({ type: 'bar', labels: ['a'], series: [{ name: 's', values: ['lots'] }] })).toMatch(
      /\(error\): series "s" value 0 is "lots", not a number/,
    );
    expect(await failure({ type: 'bar', rows: [{ m: 'a', v: 1 }] })).toMatch(
      /\(error\): "label_key" is required with "rows"/,
    );
    expect(await failure({ type: 'bar', rows: [{ m: 'a', v: 'x' }], label_key: 'm', value_keys: ['v'] })).toMatch(
      /\(error\): rows\[0\]\.v is "x", not a number/,
    );
    expect(await failure({ type: 'bar', rows: [{ v: 1 }], label_key: 'm', value_keys: ['v'] })).toMatch(
      /\(error\): rows\[0\] has no member "m" \(label_key\)/,
    );
    expect(await failure({ type: 'pie', labels: ['a', 'b'], series: [{ values: [1, -1] }] })).toMatch(
      /\(error\): a pie chart cannot show negative values/,
    );
    expect(await failure({ type: 'pie', labels: ['a'], series: [{ values: [1] }, { values: [2] }] })).toMatch(
      /\(error\): a pie chart takes exactly one series/,
    );
  });
});
