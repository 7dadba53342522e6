/**
 * The team task lists of a cluster, in its PostgreSQL: the single node's tables (sqlite-team-store.ts) in
 * the cluster schema, read and changed by every node, so a teammate whose request is delivered on
 * another node works on the same list. A change runs the same statements as on SQLite, in one
 * transaction that first takes the team's row lock (`FOR UPDATE`), so two nodes changing one list
 * apply their changes one after the other, each on what the other stored; a change found by a member
 * key also holds a transaction-scoped advisory lock on that key, so two first calls of one caller
 * make one list, not two. The sweep of idle lists runs on one node at a time (a try-lock; the
 * others skip it).
 */
import type pg from 'pg';
import {
  inTransaction,
  migrateSchema,
  quotedSchema,
  stateUnavailable,
  type PgMigration,
} from '../../storage/pg/index.js';
import { teamChange, teamCount, teamRead, teamSweep, type TeamDialect, type TeamSql } from './team-store.js';
import type { MemberKey, Team, TeamStore, TeamWork } from './teams.js';

const MIGRATIONS: readonly PgMigration[] = [
  {
    // SQLite's teams-001.
    id: 'cluster-teams-001',
    sql: (s) => `
      CREATE TABLE ${s}.teams (
        id             text PRIMARY KEY,
        name           text,
        description    text,
        lead           text NOT NULL,
        lead_scope     text NOT NULL,
        lead_principal text NOT NULL,
        members        text NOT NULL,
        next           integer NOT NULL,
        at             bigint NOT NULL
      );
      CREATE INDEX teams_at ON ${s}.teams (at);
      CREATE TABLE ${s}.team_tasks (
        team_id     text NOT NULL REFERENCES ${s}.teams (id) ON DELETE CASCADE,
        id          integer NOT NULL,
        subject     text NOT NULL,
        description text NOT NULL,
        active_form text,
        status      text NOT NULL,
        owner       text,
        blocks      text NOT NULL,
        blocked_by  text NOT NULL,
        metadata    text,
        PRIMARY KEY (team_id, id)
      );
      CREATE TABLE ${s}.team_memberships (
        scope     text NOT NULL,
        agent     text NOT NULL,
        principal text NOT NULL,
        team_id   text NOT NULL REFERENCES ${s}.teams (id) ON DELETE CASCADE,
        PRIMARY KEY (scope, agent, principal)
      );
      CREATE INDEX team_memberships_team ON ${s}.team_memberships (team_id, agent);
    `,
  },
];

/** `?` placeholders as PostgreSQL's `$1`, `$2`... (the statements hold no literal `?`). */
function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

export interface PgTeamStoreOptions {
  pool: pg.Pool;
  /** The cluster schema (`[cluster.state] schema`); migrated by `PgTeamStore.migrate`. */
  schema: string;
}

export class PgTeamStore implements TeamStore {
  readonly #pool: pg.Pool;
  readonly #schema: string;
  readonly #d: TeamDialect;
  readonly #sql = new Map<string, string>();

  static migrate(pool: pg.Pool, schema: string): Promise<void> {
    return migrateSchema(pool, schema, MIGRATIONS);
  }

  /** Migrates the schema and opens the store on it. */
  static async open(opts: PgTeamStoreOptions): Promise<PgTeamStore> {
    await PgTeamStore.migrate(opts.pool, opts.schema);
    return new PgTeamStore(opts);
  }

  constructor(opts: PgTeamStoreOptions) {
    this.#pool = opts.pool;
    this.#schema = opts.schema;
    const s = quotedSchema(opts.schema);
    this.#d = { table: (name) => `${s}.${name}`, pg: true };
  }

  find(key: MemberKey, since: number, tasks: boolean): Promise<Team | undefined> {
    // With its tasks: one snapshot for the team's row and theirs. Without: one statement.
    return tasks
      ? this.#run('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY', teamRead(this.#d, key, since, tasks))
      : this.#runOne(teamRead(this.#d, key, since, tasks));
  }

  work<T>(w: TeamWork<T>): Promise<T> {
    return this.#run('BEGIN', teamChange(this.#d, w));
  }

  async sweep(since: number, max: number): Promise<void> {
    const d = this.#d;
    const schema = this.#schema;
    await this.#run(
      'BEGIN',
      (function* (): Generator<TeamSql, void, Record<string, unknown>[]> {
        const rows = yield {
          sql: 'SELECT pg_try_advisory_xact_lock(hashtextextended(?, 0)) AS ok',
          params: [`caxton-teams-sweep:${schema}`],
        };
        if ((rows[0] as { ok?: boolean } | undefined)?.ok !== true) return;
        yield* teamSweep(d, since, max);
      })(),
    );
  }

  count(since: number): Promise<number> {
    return this.#run('BEGIN READ ONLY', teamCount(this.#d, since));
  }

  async #run<T>(begin: string, g: Generator<TeamSql, T, Record<string, unknown>[]>): Promise<T> {
    try {
      return await inTransaction(this.#pool, begin, async (c) => {
        let r = g.next();
        while (!r.done) {
          const res = await c.query(this.#numbered(r.value.sql), r.value.params);
          r = g.next(res.rows as Record<string, unknown>[]);
        }
        return r.value;
      });
    } catch (e) {
      throw stateUnavailable(e);
    }
  }

  /** A generator of one statement, outside a transaction. */
  async #runOne<T>(g: Generator<TeamSql, T, Record<string, unknown>[]>): Promise<T> {
    try {
      let r = g.next();
      while (!r.done) {
        const res = await this.#pool.query(this.#numbered(r.value.sql), r.value.params);
        r = g.next(res.rows as Record<string, unknown>[]);
      }
      return r.value;
    } catch (e) {
      throw stateUnavailable(e);
    }
  }

  #numbered(sql: string): string {
    let out = this.#sql.get(sql);
    if (out === undefined) {
      out = numbered(sql);
      this.#sql.set(sql, out);
    }
    return out;
  }
}
