/** One problem found in a configuration or agent file: where it is, what was expected, and what to do. */
export interface SourceIssue {
  severity: 'error' | 'warning';
  /** Stable machine-readable code, e.g. `toml_syntax`, `invalid_type`, `misplaced_key`, `unknown_key`. */
  code: string;
  message: string;
  file?: string;
  line?: number;
  column?: number;
  /** Dotted path of the field, e.g. `memory.scope` or `capabilities.2`. */
  field?: string;
  expected?: string;
  suggestion?: string;
}

export interface Position {
  line: number;
  column: number;
}

/** Maps a dotted field path to where it stands in the source, falling back to its parent. */
export type Locator = (path: readonly (string | number)[]) => Position | undefined;

export function fieldPath(path: readonly PropertyKey[]): string {
  return path.map(String).join('.');
}

/** `file:line:column: error: message (field) — suggestion`, the one-line form used by the CLI and logs. */
export function formatIssue(i: SourceIssue): string {
  const where = [i.file ?? '<input>', i.line, i.column].filter((x) => x !== undefined).join(':');
  const field = i.field ? ` [${i.field}]` : '';
  const expected = i.expected ? ` (expected ${i.expected})` : '';
  const hint = i.suggestion ? `\n    hint: ${i.suggestion}` : '';
  return `${where}: ${i.severity}: ${i.message}${field}${expected}${hint}`;
}
