/**
 * Tool server packages deployed through the API, kept in the data dir's SQLite database (table
 * `tool_packages`): the manifest text exactly as deployed and the module bytes. One row per server
 * name; deploying a name again replaces its row in one statement, so a restart sees either the old
 * package or the new one, never a mix.
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
];

export interface StoredToolPackage {
  name: string;
  manifest: string;
  wasm: Uint8Array;
  /** SHA-256 (hex) of the module bytes. */
  digest: string;
  deployed_at: string;
}

export function moduleDigest(wasm: Uint8Array): string {
  return createHash('sha256').update(wasm).digest('hex');
}

export class ToolPackageStore {
  readonly #db: Db;
  readonly #upsert;
  readonly #delete;
  readonly #all;

  constructor(db: Db) {
    this.#db = db;
    migrate(db, TOOL_PACKAGE_MIGRATIONS);
    this.#upsert = db.prepare(
      `INSERT INTO tool_packages (name, manifest, wasm, digest, deployed_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET manifest = excluded.manifest, wasm = excluded.wasm, digest = excluded.digest, deployed_at = excluded.deployed_at`,
    );
    this.#delete = this.#db.prepare('DELETE FROM tool_packages WHERE name = ?');
    this.#all = this.#db.prepare('SELECT name, manifest, wasm, digest, deployed_at FROM tool_packages ORDER BY name');
  }

  put(p: StoredToolPackage): void {
    this.#upsert.run(p.name, p.manifest, Buffer.from(p.wasm.buffer, p.wasm.byteOffset, p.wasm.byteLength), p.digest, p.deployed_at);
  }

  remove(name: string): boolean {
    return this.#delete.run(name).changes > 0;
  }

  all(): StoredToolPackage[] {
    return (this.#all.all() as { name: string; manifest: string; wasm: Buffer; digest: string; deployed_at: string }[]).map((r) => ({
      name: r.name,
      manifest: r.manifest,
      wasm: new Uint8Array(r.wasm.buffer, r.wasm.byteOffset, r.wasm.byteLength),
      digest: r.digest,
      deployed_at: r.deployed_at,
    }));
  }
}
