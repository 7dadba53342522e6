import { CaxtonError, type ErrorCode } from './errors.js';

/**
 * Nesting limits for input from outside (request bodies, agent files, manifests, imports).
 *
 * Why: JSON.parse and the YAML/TOML parsers accept any depth, but everything after them that
 * walks the value recursively (zod, JSON.stringify, structuredClone, the template renderer)
 * overflows the stack on deep input — a 500, or a crash when it happens in a watcher callback.
 * Checking the depth once, iteratively, right after (or before) parsing turns that into a clear
 * 400/422 naming the limit. 64 levels is far beyond any real agent file, message or memory item.
 */
export const MAX_INPUT_DEPTH = 64;

/** The error for input nested deeper than `max`: names where, the limit, and what to do. */
export function tooDeepError(where: string, max: number, code: ErrorCode = 'input_too_deep'): CaxtonError {
  return new CaxtonError(
    code,
    `${where} is nested more than ${max} levels deep; flatten it (the limit is ${max} levels of objects and arrays)`,
    {
      limit: max,
      issues: [{ field: where, message: `nested more than ${max} levels deep` }],
    },
  );
}

/**
 * The deepest nesting of objects and arrays in a value (a container counts as one level),
 * stopping as soon as it exceeds `stopAbove`. Iterative, so it cannot overflow the stack itself;
 * shared sub-objects (YAML aliases) are walked once per path but bounded by `stopAbove` and
 * `maxNodes`, so an alias bomb costs at most `maxNodes` visits.
 */
export function valueDepth(value: unknown, stopAbove = Number.POSITIVE_INFINITY, maxNodes = 1_000_000): number {
  let max = 0;
  let visited = 0;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (d > max) {
      max = d;
      if (max > stopAbove) return max;
    }
    if (++visited > maxNodes) return Number.POSITIVE_INFINITY;
    const children = Array.isArray(v) ? v : Object.values(v as Record<string, unknown>);
    for (const c of children) if (c !== null && typeof c === 'object') stack.push([c, d + 1]);
  }
  return max;
}

/** Throws `tooDeepError(where, max)` when `value` nests deeper than `max` (default MAX_INPUT_DEPTH). */
export function assertValueDepth(value: unknown, where: string, max = MAX_INPUT_DEPTH, code?: ErrorCode): void {
  if (valueDepth(value, max) > max) throw tooDeepError(where, max, code);
}
