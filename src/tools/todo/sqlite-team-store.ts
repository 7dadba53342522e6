/**
 * The single node's team task lists in its SQLite database: the `TeamStore` port (teams.ts) run on
 * the statements written once for both databases (team-store.ts); a cluster runs them on its
 * PostgreSQL (pg-team-store.ts).
 */
import Database from 'better-sqlite3';
import { migrate, storeWriteError, type Db, type Migration } from '../../storage/index.js';
import { teamChange, teamCount, teamRead, teamSweep, type Rows, type TeamDialect, type TeamSql } from './team-store.js';
import type { MemberKey, Team, TeamStore, TeamWork } from './teams.js';

/** The tables, as SQLite's migration; pg-team-store.ts has the same in PostgreSQL's words. */
export const TEAM_MIGRATIONS: readonly Migration[] = [
  {
    id: 'teams-001',
    sql: `
      CREATE TABLE teams (
        id             TEXT PRIMARY KEY,
        name           TEXT,
        description    TEXT,
        lead           TEXT NOT NULL,
        lead_scope     TEXT NOT NULL,
        lead_principal TEXT NOT NULL,
        members        TEXT NOT NULL,
        next           INTEGER NOT NULL,
        at             INTEGER NOT NULL
      );
      CREATE INDEX teams_at ON teams (at);
      CREATE TABLE team_tasks (
        team_id     TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
        id          INTEGER NOT NULL,
        subject     TEXT NOT NULL,
        description TEXT NOT NULL,
        active_form TEXT,
        status      TEXT NOT NULL,
        owner       TEXT,
        blocks      TEXT NOT NULL,
        blocked_by  TEXT NOT NULL,
        metadata    TEXT,
        PRIMARY KEY (team_id, id)
      );
      CREATE TABLE team_memberships (
        scope     TEXT NOT NULL,
        agent     TEXT NOT NULL,
        principal TEXT NOT NULL,
        team_id   TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
        PRIMARY KEY (scope, agent, principal)
      );
      CREATE INDEX team_memberships_team ON team_memberships (team_id, agent);
    `,
  },
];

const SQLITE: TeamDialect = { table: (name) => name, pg: false };

/**
 * The single node's lists, in its SQLite database. A change runs whole inside one synchronous
 * transaction, so nothing else on the node runs between its read and its write.
 */
export class SqliteTeamStore implements TeamStore {
  readonly #db: Db;
  readonly #statements = new Map<string, Database.Statement>();

  /** Wrapped once: better-sqlite3 builds its wrapper functions anew on every `db.transaction()` call. */
  readonly #tx: Database.Transaction<(g: Generator<TeamSql, unknown, Rows>) => unknown>;

  constructor(db: Db) {
    migrate(db, TEAM_MIGRATIONS);
    this.#db = db;
    this.#tx = db.transaction((g: Generator<TeamSql, unknown, Rows>) => {
      let r = g.next();
      while (!r.done) {
        const s = this.#statement(r.value.sql);
        r = g.next(s.reader ? (s.all(...r.value.params) as Rows) : (s.run(...r.value.params), []));
      }
      return r.value;
    });
  }

  /** A store in memory of its own, for what needs a board but keeps nothing (listing the tools offline). */
  static inMemory(): SqliteTeamStore {
    const db = new Database(':memory:');
    db.pragma('foreign_keys = ON');
    db.exec('CREATE TABLE schema_migrations (id TEXT PRIMARY KEY, applied_at TEXT NOT NULL)');
    return new SqliteTeamStore(db);
  }

  find(key: MemberKey, since: number, tasks: boolean): Promise<Team | undefined> {
    return this.#run(teamRead(SQLITE, key, since, tasks), false);
  }

  work<T>(w: TeamWork<T>): Promise<T> {
    return this.#run(teamChange(SQLITE, w), true);
  }

  sweep(since: number, max: number): Promise<void> {
    return this.#run(teamSweep(SQLITE, since, max), true);
  }

  count(since: number): Promise<number> {
    return this.#run(teamCount(SQLITE, since), false);
  }

  /** Runs a generator's statements in one transaction (an IMMEDIATE one when it writes). */
  #run<T>(g: Generator<TeamSql, T, Rows>, writes: boolean): Promise<T> {
    try {
      return Promise.resolve((writes ? this.#tx.immediate(g) : this.#tx(g)) as T);
    } catch (e) {
      return Promise.reject(storeWriteError(e) ?? e);
    }
  }

  #statement(sql: string): Database.Statement {
    let s = this.#statements.get(sql);
    if (s === undefined) {
      s = this.#db.prepare(sql);
      this.#statements.set(sql, s);
    }
    return s;
  }
}
