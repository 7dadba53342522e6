/**
 * SQL literals for the PostgreSQL cost benches, which send their statements as plain text (one
 * multi-row statement per group, as a node's batches are) rather than with parameters.
 */
export const q = (v: string | number | null): string =>
  v === null ? 'NULL' : typeof v === 'number' ? String(v) : `'${v.replace(/'/g, "''")}'`;

/** One `VALUES` row of literals. */
export const row = (vs: (string | number | null)[]): string => `(${vs.map(q).join(', ')})`;
