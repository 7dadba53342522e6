/**
 * A refused request's problems, by form field, in the console's words: the server names the field
 * it blames (details.field, or details.issues for every field of a query or body); the console
 * shows each message under its own input, without the request's plumbing ("invalid querystring",
 * the option's name as the API spells it).
 */
import { ApiError } from './api';

/** field → message; undefined when the error names no field (show it as a whole instead). */
export function fieldErrors(e: unknown): Record<string, string> | undefined {
  if (!(e instanceof ApiError)) return undefined;
  const out: Record<string, string> = {};
  const issues = e.details.issues;
  if (Array.isArray(issues))
    for (const i of issues as { field?: unknown; message?: unknown }[])
      if (typeof i.field === 'string' && i.field !== '' && typeof i.message === 'string')
        out[i.field] ??= sentence(i.message);
  if (Object.keys(out).length === 0 && e.field !== undefined) out[e.field] = sentence(withoutPrefix(e.message));
  return Object.keys(out).length > 0 ? out : undefined;
}

/** 'canary option "hold": expected ...' → 'expected ...' (the input it is shown under names it). */
function withoutPrefix(m: string): string {
  const at = m.indexOf('": ');
  return at >= 0 && at < 60 ? m.slice(at + 3) : m;
}

const sentence = (m: string): string => (m === '' ? m : m[0]!.toUpperCase() + m.slice(1));
