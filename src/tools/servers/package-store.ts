/**
 * Where tool server packages deployed through the API are kept: the port (`ToolPackageStorePort`)
 * the ToolServerManager depends on, and its single-node implementation in the data dir's SQLite
 * database (table `tool_packages`). A cluster keeps them in PostgreSQL instead
 * (src/tools/servers/pg-package-store.ts), behind the same port and the same shared test suite
 * (test/tools/servers/package-store-suite.ts).
 *
 * One row per server name: the manifest text exactly as deployed, the module bytes, their digest,
 * and a revision that grows each time the row is written. Deploying a name again replaces its row
 * in one statement, so a restart (or another node) sees either the old package or the new one,
 * never a mix. The port is asynchronous because PostgreSQL is; the SQLite store answers at once.
 */
import { createHash } from 'node:crypto';
import { migrate, type Db, type Migration } from '../../storage/index.js';

export const TOOL_PACKAGE_MIGRATIONS: readonly Migration[] = [
  {
    id: 'tools-002-packages',
    sql: `
      CREATE TABLE tool_packages (
        name TEXT PRIMARY KEY,
        manifest TEXT NOT NULL,
        wasm BLOB NOT NULL,
        digest TEXT NOT NULL,
        deployed_at TEXT NOT NULL
      );
    `,
  },
  {
    // Tells one write of a name from the next even when the module bytes (the digest) are the same.
    id: 'tools-003-package-revision',
    sql: `ALTER TABLE tool_packages ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;`,
  },
];

/** A package as deployed (what `put` takes). */
export interface ToolPackageInput {
  name: string;
  manifest: string;
  wasm: Uint8Array;
  /** SHA-256 (hex) of the module bytes. */
  digest: string;
  deployed_at: string;
}

/** A package as stored. */
export interface StoredToolPackage extends ToolPackageInput {
  /**
   * Grows each time the name's row is written (a replacement has a greater one than the row it
   * replaced). In PostgreSQL it comes from one sequence, so it is never reused, not even by a name
   * removed and deployed again.
   */
  revision: number;
}

/** What a store holds for a name, without the module bytes: enough to tell whether a copy is current. */
export interface ToolPackageVersion {
  name: string;
  digest: string;
  revision: number;
}

/** The store of deployed packages, as the ToolServerManager uses it. */
export interface ToolPackageStorePort {
  /** Inserts or replaces the package of `p.name`; returns it as stored (with its revision). */
  put(p: ToolPackageInput): Promise<StoredToolPackage>;
  /** Removes the package of `name`; false when there was none. */
  remove(name: string): Promise<boolean>;
  get(name: string): Promise<StoredToolPackage | undefined>;
  /** Every package, by name. */
  all(): Promise<StoredToolPackage[]>;
  /** Every package's name, digest and revision, by name (no module bytes: cheap to compare). */
  versions(): Promise<ToolPackageVersion[]>;
}

export function moduleDigest(wasm: Uint8Array): string {
  return createHash('sha256').update(wasm).digest('hex');
}

interface Row {
  name: string;
  manifest: string;
  wasm: Buffer;
  digest: string;
  deployed_at: string;
  revision: number;
}

const fromRow = (r: Row): StoredToolPackage => ({
  name: r.name,
  manifest: r.manifest,
  wasm: new Uint8Array(r.wasm.buffer, r.wasm.byteOffset, r.wasm.byteLength),
  digest: r.digest,
  deployed_at: r.deployed_at,
  revision: r.revision,
});

const COLUMNS = 'name, manifest, wasm, digest, deployed_at, revision';

/** The single-node store: the data dir's SQLite database (synchronous underneath). */
export class ToolPackageStore implements ToolPackageStorePort {
  readonly #upsert;
  readonly #delete;
  readonly #get;
  readonly #all;
  readonly #versions;

  constructor(db: Db) {
    migrate(db, TOOL_PACKAGE_MIGRATIONS);
    this.#upsert = db.prepare(
      `INSERT INTO tool_packages (name, manifest, wasm, digest, deployed_at, revision) VALUES (?, ?, ?, ?, ?, 1)
       ON CONFLICT (name) DO UPDATE SET manifest = excluded.manifest, wasm = excluded.wasm, digest = excluded.digest, deployed_at = excluded.deployed_at,
         revision = tool_packages.revision + 1
       RETURNING revision`,
    );
    this.#delete = db.prepare('DELETE FROM tool_packages WHERE name = ?');
    this.#get = db.prepare(`SELECT ${COLUMNS} FROM tool_packages WHERE name = ?`);
    this.#all = db.prepare(`SELECT ${COLUMNS} FROM tool_packages ORDER BY name`);
    this.#versions = db.prepare('SELECT name, digest, revision FROM tool_packages ORDER BY name');
  }

  put(p: ToolPackageInput): Promise<StoredToolPackage> {
    const { revision } = this.#upsert.get(
      p.name,
      p.manifest,
      Buffer.from(p.wasm.buffer, p.wasm.byteOffset, p.wasm.byteLength),
      p.digest,
      p.deployed_at,
    ) as { revision: number };
    return Promise.resolve({ ...p, revision });
  }

  remove(name: string): Promise<boolean> {
    return Promise.resolve(this.#delete.run(name).changes > 0);
  }

  get(name: string): Promise<StoredToolPackage | undefined> {
    const r = this.#get.get(name) as Row | undefined;
    return Promise.resolve(r && fromRow(r));
  }

  all(): Promise<StoredToolPackage[]> {
    return Promise.resolve((this.#all.all() as Row[]).map(fromRow));
  }

  versions(): Promise<ToolPackageVersion[]> {
    return Promise.resolve(this.#versions.all() as ToolPackageVersion[]);
  }
}
