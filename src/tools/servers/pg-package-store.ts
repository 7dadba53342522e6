/**
 * The tool packages of a cluster in PostgreSQL (ADR 0043): the table the
 * single-node ToolPackageStore keeps in SQLite (src/tools/servers/sqlite-package-store.ts), in the cluster's
 * schema, behind the same port and shared test suite. A package deployed through any node is a row
 * here; every node loads the rows at start and reloads a name when told it changed
 * (tool-sync.ts). The module bytes live only here (`bytea`): NATS carries names and revisions.
 *
 * `revision` comes from one sequence: every write of a row takes the next value, so a revision is
 * never reused (not by a replacement, not by a name removed and deployed again), and a node can
 * tell whether its copy is current from (name, revision) alone.
 */
import type pg from 'pg';
import { guardReads, migrateSchema, quotedSchema, type PgMigration } from '../../storage/pg/index.js';
import type { StoredToolPackage, ToolPackageInput, ToolPackageStorePort, ToolPackageVersion } from './package-store.js';

const MIGRATIONS: readonly PgMigration[] = [
  {
    id: 'cluster-tools-001',
    sql: (s) => `
      CREATE SEQUENCE ${s}.tool_package_revisions;
      CREATE TABLE ${s}.tool_packages (
        name        text PRIMARY KEY,
        manifest    text NOT NULL,
        wasm        bytea NOT NULL,
        digest      text NOT NULL,
        deployed_at text NOT NULL,
        revision    bigint NOT NULL
      );
    `,
  },
];

export interface PgToolPackageStoreOptions {
  pool: pg.Pool;
  /** The cluster's schema (created if missing). */
  schema: string;
}

interface Row {
  name: string;
  manifest: string;
  wasm: Buffer;
  digest: string;
  deployed_at: string;
  revision: string;
}

const fromRow = (r: Row): StoredToolPackage => ({
  name: r.name,
  manifest: r.manifest,
  wasm: new Uint8Array(r.wasm.buffer, r.wasm.byteOffset, r.wasm.byteLength),
  digest: r.digest,
  deployed_at: r.deployed_at,
  revision: Number(r.revision),
});

const COLUMNS = 'name, manifest, wasm, digest, deployed_at, revision';

export class PgToolPackageStore implements ToolPackageStorePort {
  readonly #pool: pg.Pool;
  readonly #s: string;

  private constructor(pool: pg.Pool, s: string) {
    this.#pool = pool;
    this.#s = s;
  }

  /**
   * Creates the table if missing (under the schema's migration lock). A method that cannot reach
   * PostgreSQL rejects with a 503 `not_ready` naming it (a deploy through the API then answers
   * 503, not 500), as the message state's routes do.
   */
  static async open(opts: PgToolPackageStoreOptions): Promise<PgToolPackageStore> {
    const s = quotedSchema(opts.schema);
    await migrateSchema(opts.pool, opts.schema, MIGRATIONS);
    return guardReads(new PgToolPackageStore(opts.pool, s));
  }

  async put(p: ToolPackageInput): Promise<StoredToolPackage> {
    const r = await this.#pool.query<{ revision: string }>(
      `INSERT INTO ${this.#s}.tool_packages (name, manifest, wasm, digest, deployed_at, revision)
       VALUES ($1, $2, $3, $4, $5, nextval('${this.#s}.tool_package_revisions'))
       ON CONFLICT (name) DO UPDATE SET manifest = excluded.manifest, wasm = excluded.wasm, digest = excluded.digest, deployed_at = excluded.deployed_at, revision = excluded.revision
       RETURNING revision`,
      [p.name, p.manifest, Buffer.from(p.wasm.buffer, p.wasm.byteOffset, p.wasm.byteLength), p.digest, p.deployed_at],
    );
    return { ...p, revision: Number(r.rows[0]!.revision) };
  }

  async remove(name: string): Promise<boolean> {
    const r = await this.#pool.query(`DELETE FROM ${this.#s}.tool_packages WHERE name = $1`, [name]);
    return (r.rowCount ?? 0) > 0;
  }

  async get(name: string): Promise<StoredToolPackage | undefined> {
    const r = await this.#pool.query<Row>(`SELECT ${COLUMNS} FROM ${this.#s}.tool_packages WHERE name = $1`, [name]);
    const row = r.rows[0];
    return row && fromRow(row);
  }

  async all(): Promise<StoredToolPackage[]> {
    // COLLATE "C": the same order as SQLite's (bytewise), whatever the database's collation.
    const r = await this.#pool.query<Row>(`SELECT ${COLUMNS} FROM ${this.#s}.tool_packages ORDER BY name COLLATE "C"`);
    return r.rows.map(fromRow);
  }

  async versions(): Promise<ToolPackageVersion[]> {
    const r = await this.#pool.query<{ name: string; digest: string; revision: string }>(
      `SELECT name, digest, revision FROM ${this.#s}.tool_packages ORDER BY name COLLATE "C"`,
    );
    return r.rows.map((v) => ({ name: v.name, digest: v.digest, revision: Number(v.revision) }));
  }
}
