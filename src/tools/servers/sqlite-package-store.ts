/**
 * The single-node store of tool server packages deployed through the API: the data dir's SQLite
 * database (table `tool_packages`), behind `ToolPackageStorePort` (package-store.ts); a cluster keeps
 * them in PostgreSQL (pg-package-store.ts). The port is asynchronous because PostgreSQL is; this
 * store answers at once.
 */
import { migrate, type Db, type Migration } from '../../storage/index.js';
import type { StoredToolPackage, ToolPackageInput, ToolPackageStorePort, ToolPackageVersion } from './package-store.js';

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
