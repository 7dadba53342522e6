/** Human-friendly durations and sizes used in configuration files. */

/** The longest delay Node.js timers accept (2^31 - 1 ms, about 24.8 days); longer ones fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;
/** The longest period (retention, conversation lifetime) a duration may name: 366 days. */
export const MAX_PERIOD_MS = 366 * 24 * 3_600_000;
/** The largest size a size field may name: 4 GiB. */
export const MAX_SIZE_BYTES = 4 * 1024 ** 3;

/**
 * Why no `^\s*...\s*$` regex: the optional unit between two `\s*` let a value like
 * `"1" + " ".repeat(20000) + "x"` backtrack quadratically (0.6 s for 20 KB, from any agent
 * file). The value is trimmed once and matched by a pattern with a single way to match, and a
 * value longer than any real one is refused before matching.
 */
const MAX_UNIT_TEXT = 64;
const DURATION_RE = /^(\d+(?:\.\d+)?)[ \t]*(ms|s|m|h|d)?$/i;
const SIZE_RE = /^(\d+(?:\.\d+)?)[ \t]*(b|kb|kib|mb|mib|gb|gib)?$/i;

function unitMatch(v: string, re: RegExp): RegExpExecArray | null {
  if (v.length > MAX_UNIT_TEXT * 4) return null;
  const t = v.trim();
  return t.length > MAX_UNIT_TEXT ? null : re.exec(t);
}

/** A number is seconds; a string is `500ms`, `30s`, `2m`, `1h` or `30d`. Returns milliseconds, or undefined if unreadable. */
export function parseDuration(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? Math.round(v * 1000) : undefined;
  if (typeof v !== 'string') return undefined;
  const m = unitMatch(v, DURATION_RE);
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = (m[2] ?? 's').toLowerCase();
  const factor =
    unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : unit === 'h' ? 3_600_000 : 86_400_000;
  return Math.round(n * factor);
}

/** A number is bytes; a string is `512`, `64KB`, `1MB`, `2GiB` (K = 1024). Returns bytes, or undefined. */
export function parseSize(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const m = unitMatch(v, SIZE_RE);
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = (m[2] ?? 'b').toLowerCase();
  const factor = unit === 'b' ? 1 : unit.startsWith('k') ? 1024 : unit.startsWith('m') ? 1024 ** 2 : 1024 ** 3;
  return Math.round(n * factor);
}

/** A duration for messages: "1500 ms", "30 s", "2 min", "1.5 h", "24.8 days". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${+(ms / 1000).toFixed(3)} s`;
  if (ms < 3_600_000) return `${+(ms / 60_000).toFixed(2)} min`;
  if (ms < 48 * 3_600_000) return `${+(ms / 3_600_000).toFixed(2)} h`;
  return `${+(ms / 86_400_000).toFixed(1)} days`;
}

/** A size for messages: "512 B", "64 KiB", "4 GiB". */
export function formatSize(bytes: number): string {
  for (const [unit, f] of [
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const)
    if (bytes >= f) return `${+(bytes / f).toFixed(2)} ${unit}`;
  return `${bytes} B`;
}
