/**
 * The console shows every time in one format (console/src/format.ts `when`: local time with its
 * zone, "2026-01-31 14:05:09 UTC"), so a time copied from one page compares with any other. Read
 * from the sources: a page that formats a date itself (the browser's toLocaleString, which
 * differs by locale and has no zone) or fills a <time> element with anything but `when`/`time`
 * is refused.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/fixtures.js';

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : /\.tsx?$/.test(e.name) ? [join(dir, e.name)] : [],
  );
}

/** The places in `text` that format a time another way. */
function otherTimeFormats(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/new Date\([^()]*\)\.toLocale\w*\(|\.toLocale(?:Date|Time)String\(/g)) out.push(m[0]);
  for (const m of text.matchAll(/<time\b[^>]*>\s*\{([^}]*)\}/g)) if (!/^\s*(?:when|time)\(/.test(m[1]!)) out.push(m[0]);
  return out;
}

describe('one time format in the console', () => {
  it('every page formats its times with format.ts', () => {
    const files = sources(join(repoRoot, 'console/src')).filter((f) => !f.endsWith('format.ts'));
    expect(files.length).toBeGreaterThan(20);
    const bad = files.flatMap((f) =>
      otherTimeFormats(readFileSync(f, 'utf8')).map((m) => `${relative(repoRoot, f)}: ${m}`),
    );
    expect(bad).toEqual([]);
  });

  it('finds a date formatted by the browser and a <time> filled another way', () => {
    expect(otherTimeFormats('<time dateTime={r.time}>{new Date(r.time).toLocaleString()}</time>')).toHaveLength(2);
    expect(otherTimeFormats('<td>{d.toLocaleDateString()}</td>')).toEqual(['.toLocaleDateString(']);
    expect(otherTimeFormats('<time dateTime={r.time}>{when(r.time)}</time> {n.toLocaleString()}')).toEqual([]);
  });
});
