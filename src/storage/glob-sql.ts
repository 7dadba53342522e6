/**
 * Glob patterns of principal scopes (`support-*`: only `*` is special, case-sensitive, as
 * src/auth's globMatch) as SQL conditions, so a scoped read is narrowed in its query and pages of
 * a filtered list stay full. SQLite's GLOB and PostgreSQL's LIKE both compare case-sensitively.
 */

export type SqlDialect = 'sqlite' | 'pg';

/** A pattern for SQLite's GLOB: its own specials `?` and `[` are matched literally. */
function sqliteGlob(pattern: string): string {
  return pattern.replace(/[?[]/g, (c) => `[${c}]`);
}

/** A pattern for LIKE ... ESCAPE '\': `*` is `%`, and `%`, `_`, `\` are literal. */
function likePattern(pattern: string): string {
  return pattern.replace(/[\\%_]/g, (c) => `\\${c}`).replace(/\*/g, '%');
}

/**
 * `expr` matches one of `patterns`; `param` returns the placeholder of each value. No patterns:
 * false (a scope of no agents reaches none).
 */
export function globSql(
  dialect: SqlDialect,
  expr: string,
  patterns: readonly string[],
  param: (v: string) => string,
): string {
  if (patterns.length === 0) return dialect === 'sqlite' ? '0' : 'FALSE';
  if (patterns.includes('*')) return dialect === 'sqlite' ? '1' : 'TRUE';
  const parts = patterns.map((p) =>
    dialect === 'sqlite' ? `${expr} GLOB ${param(sqliteGlob(p))}` : `${expr} LIKE ${param(likePattern(p))} ESCAPE '\\'`,
  );
  return `(${parts.join(' OR ')})`;
}
