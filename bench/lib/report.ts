import { mkdirSync, writeFileSync } from 'node:fs';
import { arch, cpus, freemem, loadavg, release, totalmem, type as osType } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One row of a suite's table: the measured value beside the same-run baseline and the target. */
export interface Row {
  metric: string;
  value: string;
  baseline: string;
  target?: string;
  /** `pass`/`fail` against the target; omitted for context figures. */
  verdict?: 'pass' | 'fail';
}

export interface SuiteReport {
  rows: Row[];
  /** Free-form notes printed under the table. */
  notes?: string[];
  /** Everything measured, written to the JSON results file. */
  raw: unknown;
}

export interface Suite {
  name: string;
  description: string;
  run(): Promise<SuiteReport>;
}

export interface Machine {
  node: string;
  v8: string;
  platform: string;
  arch: string;
  cpu_model: string;
  cpu_count: number;
  total_mem_gb: number;
  free_mem_gb: number;
  gc_exposed: boolean;
  /** 1/5/15-minute load averages when the run started: > cpu_count means the figures are contended. */
  load_avg: number[];
}

export function machine(): Machine {
  const c = cpus();
  return {
    node: process.version,
    v8: process.versions.v8,
    platform: `${osType()} ${release()}`,
    arch: arch(),
    cpu_model: c[0]?.model.trim() ?? 'unknown',
    cpu_count: c.length,
    total_mem_gb: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    free_mem_gb: Math.round((freemem() / 2 ** 30) * 10) / 10,
    gc_exposed: typeof (globalThis as { gc?: unknown }).gc === 'function',
    load_avg: loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

export function machineLine(m: Machine): string {
  return `Node ${m.node} (V8 ${m.v8}), ${m.platform} ${m.arch}, ${m.cpu_count} × ${m.cpu_model}, ${m.total_mem_gb} GB RAM, load average ${m.load_avg.join(' / ')} at start${m.gc_exposed ? '' : ', WITHOUT --expose-gc (memory figures are approximate)'}`;
}

const esc = (s: string) => s.replace(/\|/g, '\\|');

export function markdownTable(rows: Row[]): string {
  const hasTarget = rows.some((r) => r.target !== undefined);
  const head = hasTarget
    ? ['Metric', 'Caxton', 'Baseline (same run)', 'Target', 'Result']
    : ['Metric', 'Caxton', 'Baseline (same run)'];
  const lines = [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`];
  for (const r of rows) {
    const cells = [r.metric, r.value, r.baseline];
    if (hasTarget)
      cells.push(r.target ?? '', r.verdict === undefined ? '' : r.verdict === 'pass' ? 'pass' : '**FAIL**');
    lines.push(`| ${cells.map(esc).join(' | ')} |`);
  }
  return lines.join('\n');
}

export const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'results');

/** Writes `bench/results/<suite>-<timestamp>.json` and returns its path relative to the cwd. */
export function writeResults(suite: string, data: unknown, at = new Date()): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const stamp = at.toISOString().replace(/[:.]/g, '-');
  const file = join(RESULTS_DIR, `${suite}-${stamp}.json`);
  writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
  return relative(process.cwd(), file);
}
