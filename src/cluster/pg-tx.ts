import type pg from 'pg';

/**
 * Gives every connection `pool` opens an `error` listener of its own, for as long as it lives, so
 * that a connection never emits `error` with no listener (which ends the process). Why: pg-pool
 * removes its listener from a connection it hands out, and a connection released by `pool.query`
 * inside the reply's read is handed to a waiting caller at once, while that caller attaches its
 * own listener a tick later; a server's "terminating connection" that arrived in the same read as
 * the last reply then found no listener, and `pg_ctl stop -m fast` under traffic crashed a node
 * (test/cluster/pg-restart.e2e.test.ts, test/cluster/pg-tx.test.ts; node-postgres issue 2762).
 * The listener does nothing more: the query in flight fails on its own, a connection that failed
 * is no longer queryable and pg-pool drops it when it is released, and an idle one's failure still
 * reaches the pool's `error` listeners.
 */
export function guardConnections(pool: pg.Pool): pg.Pool {
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}

/**
 * Runs `fn` in one transaction on a connection of `pool` (`begin`: the BEGIN statement to send).
 * While the connection is held it has an `error` listener of its own: pg-pool removes the pool's
 * from a checked-out connection, and a connection that dies between two statements (a database
 * restart, a cut link) would otherwise emit an unhandled `error` and end the process. A connection
 * that failed, or whose ROLLBACK failed, is released as broken, so the pool replaces it.
 */
export async function inTransaction<T>(pool: pg.Pool, begin: string, fn: (c: pg.PoolClient, started: pg.QueryResult | pg.QueryResult[]) => Promise<T>): Promise<T> {
  const c = await pool.connect();
  let broken: Error | undefined;
  const onError = (e: Error) => (broken = e);
  c.on('error', onError);
  try {
    const started = (await c.query(begin)) as pg.QueryResult | pg.QueryResult[];
    const out = await fn(c, started);
    await c.query('COMMIT');
    return out;
  } catch (e) {
    if (!broken) await c.query('ROLLBACK').catch((err: unknown) => (broken = err instanceof Error ? err : new Error(String(err))));
    throw e;
  } finally {
    c.off('error', onError);
    c.release(broken);
  }
}

/**
 * `text` as a PostgreSQL string literal (for the one multi-statement query that cannot take
 * parameters), as pg's `escapeLiteral` writes it: quotes doubled, and with a backslash the `E''`
 * form with backslashes doubled, so it reads the same whatever standard_conforming_strings says.
 * A NUL, which no text column can hold, is refused.
 */
export function escapeLiteral(text: string): string {
  if (text.includes('\0')) throw new Error('a conversation id cannot contain NUL');
  const quoted = text.replace(/'/g, "''");
  return text.includes('\\') ? ` E'${quoted.replace(/\\/g, '\\\\')}'` : `'${quoted}'`;
}
