/**
 * Every deploy of an agent, kept as an immutable version: the definition, the text it
 * came from, its content hash, the semver the file declares, who deployed it, when, and how (API,
 * a file change in agents_dir, a rollback, a promotion). Versions are numbered 1, 2, 3... per
 * agent name (case-insensitive, as agent names are) and survive the agent's removal, so a
 * redeploy continues the numbering. `keep` bounds how many are kept per agent (oldest go first),
 * removed agents included; `keepRemoved` bounds how many removed agents keep a history at all
 * (the most recently removed), so deploying and removing new names never grows the table: an
 * older removed agent's history is deleted whole, and a redeploy of its name starts at 1 again.
 */
import { createHash } from 'node:crypto';
import { agentKey, type AgentDefinition, type AgentFormat } from '../definition.js';
import { checkStoredDefinition } from '../stored-shape.js';
import type { StoredAgent } from '../sqlite-agents.js';

/** How a version came to be. */
export type VersionHow = 'api' | 'file' | 'rollback' | 'promotion';

export interface AgentVersion {
  agent: string;
  version: number;
  /** The `version` field of the definition, when it has one (informational). */
  semver: string | null;
  /** sha256 of the definition (canonical JSON): equal hashes, equal behaviour. */
  hash: string;
  format: AgentFormat;
  how: VersionHow;
  /** Where the agent lives: deployed through the API, or a file in agents_dir. */
  origin: 'api' | 'file';
  path: string | null;
  /** The authenticated principal (API deploys and rollbacks); null for file changes and unauthenticated servers. */
  deployed_by: string | null;
  deployed_at: string;
  /** A rollback: the version whose definition it restored. */
  restored_from: number | null;
}

export interface AgentVersionDetail extends AgentVersion {
  definition: AgentDefinition;
  source: string;
}

export interface NewVersion {
  definition: AgentDefinition;
  format: AgentFormat;
  source: string;
  how: VersionHow;
  origin: 'api' | 'file';
  path?: string | undefined;
  deployed_by?: string | undefined;
  restored_from?: number | undefined;
}

/**
 * What the service and the routes need of a version history, asynchronous so that it can live in
 * the cluster's PostgreSQL (src/agents/versions/pg-versions.ts: one numbering per agent across the
 * nodes) as well as in this node's SQLite (`AgentVersionStore.port()`, sqlite-versions.ts). One shared test suite
 * (test/agents/version-store-suite.ts) runs on both.
 */
export interface AgentVersionsPort {
  /** Versions kept per agent. */
  readonly keep: number;
  /**
   * Records a new version (numbered after the agent's last one, whichever node wrote it) and drops
   * those beyond `keep`. `alongside` (this node's writes that go with it: the agent row, a rollout
   * of the new version) runs with the version written but not yet committed: a throw from it
   * records nothing. `live`: the API agent this version puts live (a deploy, promotion or
   * rollback). A store the nodes of a cluster share writes it to the cluster's agents in the same
   * transaction (pg-versions.ts); this node's SQLite port leaves it to `alongside`, which
   * saves the node's own copy. `tx` is the shared store's transaction (its connection), for writes
   * of the same store that go with the version (a rollout's row); this node's SQLite port runs
   * `alongside` synchronously, without one.
   */
  append(
    v: NewVersion,
    alongside?: (written: AgentVersion, tx?: unknown) => void | Promise<void>,
    live?: StoredAgent,
  ): Promise<AgentVersion>;
  /** The newest version, without its definition and text. */
  latest(name: string): Promise<AgentVersion | undefined>;
  get(name: string, version: number): Promise<AgentVersionDetail | undefined>;
  /** Newest first. */
  list(name: string, opts?: { limit?: number; offset?: number }): Promise<{ items: AgentVersion[]; total: number }>;
  /**
   * Records an agent's versions as another store kept them (their numbers, authors and times
   * unchanged; the newest `keep`), when this store has none of that agent: how a node's history
   * from before it joined a cluster becomes the cluster's. False, and nothing written, when the
   * agent has versions here already (another node's, or this one's).
   */
  seed(name: string, rows: readonly StoredVersionRow[]): Promise<boolean>;
  /**
   * `name` was removed: its history joins the removed agents', of which only the `keepRemoved`
   * most recently removed keep theirs (the others' are deleted whole). A new version of a name
   * takes it out of them again.
   */
  removed(name: string): Promise<void>;
}

/** A version row as both stores read it (`definition` and `source` for one version's detail). */
export interface VersionRow {
  name: string;
  version: number;
  semver: string | null;
  hash: string;
  format: string;
  how: string;
  origin: string;
  path: string | null;
  deployed_by: string | null;
  deployed_at: string;
  restored_from: number | null;
}

/** A version as a store holds it, its definition still the stored JSON text (what `seed` copies). */
export interface StoredVersionRow extends VersionRow {
  definition: string;
  source: string;
}

/** JSON with object keys sorted, so the hash does not depend on the order fields were written in. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  );
}

export function definitionHash(def: AgentDefinition): string {
  return createHash('sha256').update(canonical(def)).digest('hex');
}

/** The columns of a version's summary (both stores). */
export const VERSION_SUMMARY_COLUMNS =
  'name, version, semver, hash, format, how, origin, path, deployed_by, deployed_at, restored_from';

/** The row values a new version is stored with (both stores; the number is the store's). */
export function versionValues(v: NewVersion) {
  return {
    key: agentKey(v.definition.name),
    name: v.definition.name,
    semver: v.definition.version || null,
    hash: definitionHash(v.definition),
    format: v.format,
    source: v.source,
    definition: JSON.stringify(v.definition),
    how: v.how,
    origin: v.origin,
    path: v.path ?? null,
    deployed_by: v.deployed_by ?? null,
    deployed_at: new Date().toISOString(),
    restored_from: v.restored_from ?? null,
  };
}

/** A stored row's detail: a damaged row (not JSON, or not a definition) reads as missing, so a rollback to it is refused with "not found". */
export function versionDetail(
  r: (VersionRow & { definition: string; source: string }) | undefined,
): AgentVersionDetail | undefined {
  if (!r) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(r.definition);
  } catch {
    return undefined;
  }
  const checked = checkStoredDefinition(parsed);
  if (!checked.ok) return undefined;
  return { ...versionSummary(r), definition: checked.definition, source: r.source };
}

export function versionSummary(r: VersionRow): AgentVersion {
  return {
    agent: r.name,
    version: r.version,
    semver: r.semver,
    hash: r.hash,
    format: r.format as AgentFormat,
    how: r.how as VersionHow,
    origin: r.origin === 'file' ? 'file' : 'api',
    path: r.path,
    deployed_by: r.deployed_by,
    deployed_at: r.deployed_at,
    restored_from: r.restored_from,
  };
}
