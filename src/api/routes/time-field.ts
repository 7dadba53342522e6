import { z } from 'zod';
import { parseDuration } from '../../shared/units.js';

/**
 * A query field holding an ISO 8601 time or a duration ago ("30s", "5m", "2h"), as epoch ms;
 * `what` starts its description (what the time bounds).
 */
export const timeField = (what: string) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return undefined;
      const ago = /^\d/.test(v) && !/^\d{4}-/.test(v) ? parseDuration(v) : undefined;
      if (ago !== undefined) return Date.now() - ago;
      const t = /^\d{4}-\d{2}-\d{2}/.test(v) ? Date.parse(v) : NaN;
      if (Number.isNaN(t)) {
        ctx.addIssue({
          code: 'custom',
          message: `expected an ISO 8601 time (e.g. "2025-01-31T12:00:00Z") or a duration ago (e.g. "30s", "5m", "2h"), got ${JSON.stringify(v)}`,
        });
        return z.NEVER;
      }
      return t;
    })
    .describe(`${what}: ISO 8601, or a duration ago such as "5m"`);
