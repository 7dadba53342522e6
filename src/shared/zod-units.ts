import { z } from 'zod';
import { parseDuration, parseSize } from './units.js';

/** A duration field: seconds as a number, or "500ms", "30s", "2m", "1h"; parsed to milliseconds. */
export function durationMs() {
  return z.union([z.number(), z.string()]).transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: 'expected a duration: seconds as a number, or a string such as "500ms", "30s", "2m"' });
      return z.NEVER;
    }
    return ms;
  });
}

/** A size field: bytes as a whole number, or "64KB", "1MB", "2GiB" (K = 1024); parsed to bytes. */
export function sizeBytes() {
  return z.union([z.number(), z.string()]).transform((v, ctx) => {
    const bytes = parseSize(v);
    if (bytes === undefined) {
      ctx.addIssue({ code: 'custom', message: 'expected a size: bytes as a whole number, or a string such as "64KB", "1MB"' });
      return z.NEVER;
    }
    return bytes;
  });
}
