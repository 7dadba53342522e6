import { randomUUID } from 'node:crypto';

/**
 * A UUID version 7 (RFC 9562): the Unix time in milliseconds, then random bits. Records keyed by
 * such ids are inserted at the end of their index, so a commit writes the index's last page
 * instead of one page per row anywhere in it, as a random UUID's key does.
 */
export function timeOrderedUuid(now: number = Date.now()): string {
  const t = now.toString(16).padStart(12, '0');
  // randomUUID's version digit is at offset 14; the variant bits after it stay as they are.
  return `${t.slice(0, 8)}-${t.slice(8, 12)}-7${randomUUID().slice(15)}`;
}
