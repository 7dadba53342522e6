/**
 * The server's located problems (agent files: file, line, column, field; JSON bodies: line and
 * column), shown next to the field they concern. `IssueList` for a list of issues, `FieldError`
 * for one ApiError under a form field (give the field aria-describedby={id}).
 */
import { ApiError } from '../api';

export interface Issue {
  severity?: 'error' | 'warning';
  code?: string;
  message: string;
  file?: string;
  line?: number;
  column?: number;
  field?: string;
  expected?: string;
  suggestion?: string;
}

/** "line 3, column 7, field llm.model" — where an issue points. */
export function locationOf(i: Pick<Issue, 'file' | 'line' | 'column' | 'field'>): string {
  const parts: string[] = [];
  if (i.file) parts.push(i.file);
  if (i.line !== undefined) parts.push(`line ${i.line}${i.column !== undefined ? `, column ${i.column}` : ''}`);
  if (i.field) parts.push(`field ${i.field}`);
  return parts.join(', ');
}

/** `onPick`: an issue with a line becomes a button that calls it (the editor moves its cursor there). */
export function IssueList({
  issues,
  id,
  label,
  onPick,
}: {
  issues: readonly Issue[];
  id?: string;
  label: string;
  onPick?: (i: Issue) => void;
}) {
  if (issues.length === 0) return null;
  return (
    <div class="error" role="alert" {...(id !== undefined && { id })}>
      <p>{label}</p>
      <ul class="issues">
        {issues.map((i, n) => (
          <li key={n} data-testid="issue">
            {onPick && i.line !== undefined ? (
              <button type="button" class="text-button issue-link" onClick={() => onPick(i)}>
                <strong>{locationOf(i)}: </strong>
                {i.message}
              </button>
            ) : (
              <>
                {locationOf(i) && <strong>{locationOf(i)}: </strong>}
                {i.message}
              </>
            )}
            {i.suggestion && <span class="muted"> — {i.suggestion}</span>}
          </li>
        ))}
      </ul>
    </div>
  );
}

/** One API error under a field: the message and where it points (details.line/column/field). */
export function FieldError({ error, id }: { error: unknown; id: string }) {
  if (!error) return null;
  const e = error instanceof ApiError ? error : undefined;
  const d = e?.details ?? {};
  const where = locationOf({
    ...(typeof d.line === 'number' && { line: d.line }),
    ...(typeof d.column === 'number' && { column: d.column }),
    ...(typeof d.field === 'string' && { field: d.field }),
  });
  return (
    <p class="field-error" id={id} role="alert">
      {where && <>{where}: </>}
      {e ? e.explanation : error instanceof Error ? error.message : String(error)}
    </p>
  );
}
