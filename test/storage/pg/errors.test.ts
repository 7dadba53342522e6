/**
 * Which PostgreSQL failures mean "the shared state is unreachable" (a 503 naming
 * cluster-postgresql, retry with the same id) and which are a statement's own error. The messages
 * are node-pg's and PostgreSQL's own, as seen when `pg_ctl stop` ends the sessions of a node
 * under traffic (test/cluster/pg-restart.e2e.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { isUnreachable, stateUnavailable } from '../../../src/storage/pg/index.js';
import { CaxtonError } from '../../../src/shared/errors.js';

const pgError = (message: string, code?: string) =>
  Object.assign(new Error(message), code === undefined ? {} : { code });

describe('isUnreachable', () => {
  it.each([
    ['connect refused', pgError('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED')],
    ['session ended by pg_ctl stop -m fast', pgError('terminating connection due to administrator command', '57P01')],
    ['server starting up', pgError('the database system is starting up', '57P03')],
    ['socket closed by -m immediate', pgError('Connection terminated unexpectedly')],
    [
      'next statement on a client whose connection failed',
      pgError('Client has encountered a connection error and is not queryable'),
    ],
    ['statement on a closed client', pgError('Client was closed and is not queryable')],
  ])('%s: unreachable, a 503 naming cluster-postgresql', (_what, e) => {
    expect(isUnreachable(e)).toBe(true);
    const mapped = stateUnavailable(e) as CaxtonError;
    expect(mapped).toBeInstanceOf(CaxtonError);
    expect(mapped.code).toBe('not_ready');
    expect(mapped.details).toMatchObject({ dependency: 'cluster-postgresql' });
  });

  it.each([
    ['unique violation', pgError('duplicate key value violates unique constraint "messages_id_key"', '23505')],
    ['syntax error', pgError('syntax error at or near "SELEC"', '42601')],
    ['a CaxtonError', new CaxtonError('conversation_closed', 'conversation c is completed')],
  ])('%s: not unreachable, passed through', (_what, e) => {
    expect(isUnreachable(e)).toBe(false);
    expect(stateUnavailable(e)).toBe(e);
  });
});
