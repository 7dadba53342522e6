import { z } from 'zod';
import { formatDuration, formatSize, MAX_SIZE_BYTES, MAX_TIMER_MS, parseDuration, parseSize } from './units.js';

export interface UnitBounds {
  /** Smallest accepted value (ms or bytes); default 1, since 0 means nothing useful for most fields. */
  min?: number;
  /** Largest accepted value; default MAX_TIMER_MS for durations, MAX_SIZE_BYTES for sizes. */
  max?: number;
}

const shown = (v: string | number) =>
  typeof v === 'string' ? JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v) : String(v);

/**
 * A number or a text: what a duration or size field accepts before it is read. One schema for
 * every field: a zod schema is immutable, so fields share it (and `.default()` wraps it).
 */
export const numberOrText = z.union([z.number(), z.string()]);

/**
 * One schema per bounds, shared by every field with those bounds: the configuration and agent
 * schemas use a few bounds for hundreds of fields, and each zod schema made costs a start 15–20 µs.
 */
function perBounds<S>(make: (min: number, max: number) => S, defaultMax: number) {
  const made = new Map<string, S>();
  return (bounds: UnitBounds = {}): S => {
    const min = bounds.min ?? 1;
    const max = bounds.max ?? defaultMax;
    const key = `${min}:${max}`;
    let s = made.get(key);
    if (s === undefined) made.set(key, (s = make(min, max)));
    return s;
  };
}

/**
 * A duration field: seconds as a number, or "500ms", "30s", "2m", "1h"; parsed to milliseconds.
 * Bounded: by default at least 1 ms and at most what a Node.js timer accepts (2^31 - 1 ms, about
 * 24.8 days), because a longer one fires immediately ("Timeout duration was set to 1").
 */
export const durationMs = perBounds((min: number, max: number) => {
  const range = `${min === 0 ? '0' : formatDuration(min)} to ${formatDuration(max)}`;
  return numberOrText.transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a duration: seconds as a number, or a string such as "500ms", "30s", "2m" (got ${shown(v)})`,
      });
      return z.NEVER;
    }
    if (ms < min || ms > max) {
      ctx.addIssue({ code: 'custom', message: `duration ${shown(v)} is out of range: expected ${range}` });
      return z.NEVER;
    }
    return ms;
  });
}, MAX_TIMER_MS);

/** A size field: bytes as a whole number, or "64KB", "1MB", "2GiB" (K = 1024); parsed to bytes. Bounded: by default 1 byte to 4 GiB. */
export const sizeBytes = perBounds((min: number, max: number) => {
  const range = `${min === 0 ? '0' : formatSize(min)} to ${formatSize(max)}`;
  return numberOrText.transform((v, ctx) => {
    const bytes = parseSize(v);
    if (bytes === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a size: bytes as a whole number, or a string such as "64KB", "1MB" (got ${shown(v)})`,
      });
      return z.NEVER;
    }
    if (bytes < min || bytes > max) {
      ctx.addIssue({ code: 'custom', message: `size ${shown(v)} is out of range: expected ${range}` });
      return z.NEVER;
    }
    return bytes;
  });
}, MAX_SIZE_BYTES);

/**
 * A configuration field with a default: a duration of `def` milliseconds (written as seconds, as
 * the file would), or a size of `def` bytes. Bounded as `durationMs` and `sizeBytes` are.
 */
export const durationField = (def: number, bounds?: UnitBounds) =>
  numberOrText.default(def / 1000).pipe(durationMs(bounds));
export const sizeField = (def: number, bounds?: UnitBounds) => numberOrText.default(def).pipe(sizeBytes(bounds));
