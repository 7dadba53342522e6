/** Number formats shared by the pages. */

export const rate = (v: number): string => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

export const percent = (v: number | null | undefined): string =>
  v === null || v === undefined ? '—' : `${(v * 100).toFixed(v < 0.1 ? 1 : 0)} %`;

export function bytes(n: number | undefined): string {
  if (n === undefined) return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v >= 10 || u === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[u]}`;
}

export function duration(seconds: number): string {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
  return `${Math.floor(seconds / 86400)} d ${Math.floor((seconds % 86400) / 3600)} h`;
}

const pad = (n: number): string => String(n).padStart(2, '0');

/** The zone's short name where the browser has one ("UTC", "CET"), else its offset ("UTC+05:30"). */
function zoneOf(d: Date): string {
  const name = new Intl.DateTimeFormat('en-GB', { timeZoneName: 'short' })
    .formatToParts(d)
    .find((p) => p.type === 'timeZoneName')?.value;
  if (name && !/^GMT[+-]/.test(name)) return name === 'GMT' && d.getTimezoneOffset() === 0 ? 'UTC' : name;
  const off = -d.getTimezoneOffset();
  return `UTC${off < 0 ? '-' : '+'}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`;
}

/**
 * The one time format of the console: "2026-01-31 14:05:09 UTC", local time with its zone, so a
 * time copied from one page compares with any other.
 */
export function when(iso: string | number, opts: { ms?: boolean } = {}): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const ms = opts.ms ? `.${String(d.getMilliseconds()).padStart(3, '0')}` : '';
  return `${date} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}${ms} ${zoneOf(d)}`;
}

/** A time in the one format (when). */
export const time = (iso: string): string => when(iso);
