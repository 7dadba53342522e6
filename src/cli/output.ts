import { formatIssue, type SourceIssue } from '../shared/issues.js';

export interface Output {
  json: boolean;
  out(text: string): void;
  err(text: string): void;
  data(value: unknown): void;
}

export function createOutput(json: boolean): Output {
  return {
    json,
    out: (t) => process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
    err: (t) => process.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
    data: (v) => process.stdout.write(`${JSON.stringify(v, null, 2)}\n`),
  };
}

/** A plain aligned table; the last column is not padded. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

export function truncate(s: string, n: number): string {
  const one = s.replace(/\s+/g, ' ').trim();
  return one.length > n ? `${one.slice(0, n - 1)}…` : one;
}

export function issuesText(issues: readonly SourceIssue[]): string {
  return issues.map(formatIssue).join('\n');
}
