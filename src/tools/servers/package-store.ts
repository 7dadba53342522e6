/**
 * Where tool server packages deployed through the API are kept: the port (`ToolPackageStorePort`)
 * the ToolServerManager depends on. A single node keeps them in the data dir's SQLite database
 * (`ToolPackageStore`, src/tools/servers/sqlite-package-store.ts), a cluster in PostgreSQL
 * (src/tools/servers/pg-package-store.ts), behind this port and the same shared test suite
 * (test/tools/servers/package-store-suite.ts).
 *
 * One row per server name: the manifest text exactly as deployed, the module bytes, their digest,
 * and a revision that grows each time the row is written. Deploying a name again replaces its row
 * in one statement, so a restart (or another node) sees either the old package or the new one,
 * never a mix. The port is asynchronous because PostgreSQL is; the SQLite store answers at once.
 */
import { createHash } from 'node:crypto';

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
