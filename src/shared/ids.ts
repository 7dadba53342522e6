import { randomUUID } from 'node:crypto';

/**
 * A UUID version 7 (RFC 9562): the Unix time in milliseconds, then random bits. Records keyed by
 * such ids are inserted at the end of their index, so a commit writes the index's last page
 * instead of one page per row anywhere in it, as a random UUID's key does.
 */
export function timeOrderedUuid(now: number = Date.now()): string {
  // randomUUID's version digit is at offset 14; the variant bits after it stay as they are.
  return `${timePrefix(now)}${randomUUID().slice(15)}`;
}

/** The id's first 15 characters for one millisecond, kept while ids are made within it (most are, under load). */
let prefixMs = -1;
let prefix = '';

function timePrefix(now: number): string {
  if (now !== prefixMs) {
    const t = now.toString(16).padStart(12, '0');
    prefix = `${t.slice(0, 8)}-${t.slice(8, 12)}-7`;
    prefixMs = now;
  }
  return prefix;
}
