import { usageError } from './errors.js';

/** Parses a flag's value as a whole number from 1 to `max` (a usage error, exit 2, naming the flag otherwise). */
export function positiveInt(flag: string, max = 1_000_000) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v.trim()) || n < 1 || n > max)
      throw usageError(`${flag} expects a whole number between 1 and ${max}, got "${v}"`);
    return n;
  };
}

/** Parses a flag's value as a whole number, 0 or more. */
export function nonNegativeInt(flag: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v.trim())) throw usageError(`${flag} expects a whole number (0 or more), got "${v}"`);
    return Number(v);
  };
}
