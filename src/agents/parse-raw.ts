import type { SourceIssue as AgentIssue, Locator } from '../shared/issues.js';
import { MAX_INPUT_DEPTH } from '../shared/depth.js';

/** What a format's reader hands to validation: the document, where its fields are written, and what it found. */
export interface Raw {
  doc: Record<string, unknown>;
  locate: Locator;
  issues: AgentIssue[];
}

/** The issue for a field nested deeper than MAX_INPUT_DEPTH: names the field and the limit. */
export function tooDeepIssue(
  field: string | undefined,
  limit = MAX_INPUT_DEPTH,
): Omit<AgentIssue, 'file' | 'line' | 'column' | 'field'> {
  return {
    severity: 'error',
    code: 'input_too_deep',
    message: `${field !== undefined ? `"${field}"` : 'the document'} is nested more than ${limit} levels deep (the limit is ${limit} levels of tables, objects and arrays)`,
    suggestion: 'flatten the structure; agent parameters and metadata rarely need more than a few levels',
  };
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** The 1-based line and column of a character offset in `text`. */
export function offsetToLineCol(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let last = -1;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      last = i;
    }
  }
  return { line, column: offset - last };
}
