/**
 * The operations files in deploy/: the Prometheus alert rules pass `promtool check rules`, and
 * every metric the Grafana dashboard and the alerts query is one a live server exports.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasSystem } from '../helpers/system.js';
import { openaiProvider, removeTempDirs, setTestKeys } from '../execution/helpers/caxton.js';
import { startLlmStub, type LlmStub } from '../execution/helpers/llm-stub.js';
import { repoRoot } from '../cli/helpers/cli.js';
import { startObserved, type Observed } from './helpers/observed.js';

const ALERTS = join(repoRoot, 'deploy/prometheus/alerts.yml');
const DASHBOARD = join(repoRoot, 'deploy/grafana/caxton-dashboard.json');

const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'inf',
  'nan',
  'Inf',
  'NaN',
]);

/** The metric names a PromQL expression selects (not functions, keywords, labels or Grafana variables). */
export function metricNames(expr: string): string[] {
  let s = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  s = s.replace(/\{[^}]*\}/g, ' ');
  s = s.replace(/\[[^\]]*\]/g, ' ');
  s = s.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  s = s.replace(/\$\{?[A-Za-z_][A-Za-z0-9_]*\}?/g, ' ');
  const out: string[] = [];
  for (const m of s.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const prev = s[m.index - 1];
    if (prev !== undefined && /[0-9.]/.test(prev)) continue; // part of a number such as 1e3
    if (KEYWORDS.has(m[0])) continue;
    if (
      s
        .slice(m.index + m[0].length)
        .trimStart()
        .startsWith('(')
    )
      continue; // a function
    out.push(m[0]);
  }
  return out;
}

/** Every PromQL expression in a dashboard (panels, rows' panels, query variables). */
function dashboardExprs(d: { panels: unknown[]; templating?: { list: { query?: unknown }[] } }): string[] {
  const out: string[] = [];
  const walk = (panels: unknown[]) => {
    for (const p of panels as { targets?: { expr?: string }[]; panels?: unknown[] }[]) {
      for (const t of p.targets ?? []) if (t.expr) out.push(t.expr);
      if (p.panels) walk(p.panels);
    }
  };
  walk(d.panels);
  for (const v of d.templating?.list ?? []) {
    const q = typeof v.query === 'string' ? v.query : (v.query as { query?: string } | undefined)?.query;
    const m = q ? /^label_values\((.*),\s*\w+\)$/.exec(q) : null;
    if (m) out.push(m[1]!);
  }
  return out;
}

/** Alert expressions from the rules file (the `expr:` values, single-line or block scalars). */
function alertExprs(yaml: string): string[] {
  const out: string[] = [];
  const lines = yaml.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\s*)expr:\s*(.*)$/.exec(lines[i]!);
    if (!m) continue;
    if (m[2] !== '|' && m[2] !== '>') {
      out.push(m[2]!);
      continue;
    }
    const block: string[] = [];
    while (i + 1 < lines.length && (lines[i + 1]!.trim() === '' || lines[i + 1]!.search(/\S/) > m[1]!.length))
      block.push(lines[++i]!.trim());
    out.push(block.join(' '));
  }
  return out;
}

let stub: LlmStub;
let cx: Observed;
let exported: (name: string) => boolean;

beforeAll(async () => {
  setTestKeys();
  stub = await startLlmStub((hit) => {
    const msgs = hit.body.messages as { role: string }[];
    return msgs.some((m) => m.role === 'tool')
      ? { content: 'forty-two' }
      : { content: '', tool_calls: [{ id: 'c1', name: 'calculator', arguments: { expression: '6 * 7' } }] };
  });
  cx = await startObserved({
    config: { llm: { default_provider: 'stub', providers: { stub: openaiProvider(stub.url) } } },
    agents: [{ name: 'math', capabilities: ['arithmetic'], tools: ['calculator'] }],
  });
  expect(
    (
      await cx.send('POST', '/api/v1/agents/math/invoke', JSON.stringify({ request: 'q' }), {
        'content-type': 'application/json',
      })
    ).status,
  ).toBe(200);
  const text = await (await fetch(cx.server.metricsUrl!)).text();
  const types = new Map<string, string>();
  const samples = new Set<string>();
  for (const line of text.split('\n')) {
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) types.set(t[1]!, t[2]!);
    else if (line !== '' && !line.startsWith('#')) samples.add(/^[^{\s]+/.exec(line)![0]);
  }
  exported = (name) => {
    if (samples.has(name) || types.has(name)) return true;
    const base = name.replace(/_(bucket|sum|count)$/, '');
    const type = types.get(base);
    return (
      (type === 'histogram' && name !== base) || (type === 'summary' && !name.endsWith('_bucket') && name !== base)
    );
  };
});

afterAll(async () => {
  await cx?.close();
  await stub?.close();
  removeTempDirs();
});

describe('deploy/prometheus/alerts.yml', () => {
  it.skipIf(!hasSystem('promtool'))('passes promtool check rules', () => {
    const r = spawnSync('promtool', ['check', 'rules', ALERTS], { encoding: 'utf8' });
    expect(r.error, 'promtool not found: apt-get install prometheus').toBeUndefined();
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/SUCCESS: \d+ rules found/);
  });

  it('alerts on error rate, latency, dead letters and queue depth, with metrics the server exports', () => {
    const yaml = readFileSync(ALERTS, 'utf8');
    const exprs = alertExprs(yaml);
    expect(exprs.length).toBeGreaterThanOrEqual(8);
    const names = new Set(exprs.flatMap(metricNames));
    for (const needed of [
      'caxton_agent_executions_total',
      'caxton_agent_execution_duration_seconds_bucket',
      'caxton_dead_letters',
      'caxton_queue_depth',
      'caxton_messages_processed_total',
    ])
      expect(names).toContain(needed);
    // `up` is Prometheus's own series for every scrape target.
    const unknown = [...names].filter((n) => n !== 'up' && !exported(n));
    expect(unknown, 'metrics the alerts query but the server does not export').toEqual([]);
  });
});

describe('deploy/grafana/caxton-dashboard.json', () => {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
    uid: string;
    title: string;
    panels: { id: number; type: string; targets?: { expr: string }[] }[];
    templating: { list: { query?: unknown }[] };
  };

  it('is a Grafana dashboard with unique panel ids and a query per panel', () => {
    expect(dashboard.uid).toBe('caxton-overview');
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dashboard.panels.filter((x) => x.type !== 'row'))
      expect(p.targets?.length, `panel ${p.id}`).toBeGreaterThan(0);
  });

  it('queries only metrics a live server exports, and covers every caxton_ metric', () => {
    const exprs = dashboardExprs(dashboard);
    expect(exprs.length).toBeGreaterThan(20);
    const names = new Set(exprs.flatMap(metricNames));
    const unknown = [...names].filter((n) => !exported(n));
    expect(unknown, 'metrics the dashboard queries but the server does not export').toEqual([]);
    // Every metric defined in src/observability/metrics.ts has a panel.
    const defined = [
      ...readFileSync(join(repoRoot, 'src/observability/metrics.ts'), 'utf8').matchAll(
        /(?:name: |gauge\()'(caxton_[a-z_]+)'/g,
      ),
    ].map((m) => m[1]!);
    expect(defined.length).toBeGreaterThan(15);
    const covered = (n: string) => [...names].some((x) => x === n || x.replace(/_(bucket|sum|count)$/, '') === n);
    expect(
      defined.filter((n) => !covered(n)),
      'metrics without a panel',
    ).toEqual([]);
  });

  it('metricNames() finds selectors, not functions, labels, keywords or variables', () => {
    expect(
      metricNames(
        'histogram_quantile(0.95, sum by (le, tool) (rate(caxton_x_bucket{job=~"$job", a="b(c)"}[$__rate_interval])))',
      ),
    ).toEqual(['caxton_x_bucket']);
    expect(metricNames('a_total > 1e3 and on (instance) deriv(b[5m]) > 0 unless c offset 5m')).toEqual([
      'a_total',
      'b',
      'c',
    ]);
  });
});
