import type pg from 'pg';

/**
 * Runs `fn` in one transaction on a connection of `pool` (`begin`: the BEGIN statement to send).
 * While the connection is held it has an `error` listener of its own: pg-pool removes the pool's
 * from a checked-out connection, and a connection that dies between two statements (a database
 * restart, a cut link) would otherwise emit an unhandled `error` and end the process. A connection
 * that failed, or whose ROLLBACK failed, is released as broken, so the pool replaces it.
 */
export async function inTransaction<T>(pool: pg.Pool, begin: string, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const c = await pool.connect();
  let broken: Error | undefined;
  const onError = (e: Error) => (broken = e);
  c.on('error', onError);
  try {
    await c.query(begin);
    const out = await fn(c);
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
