/**
 * API keys: `cxk_<id>_<secret>`. Only the SHA-256 of the secret is stored; the whole key is shown
 * once, when it is created or rotated. The key's id is in the clear so verifying is one indexed
 * lookup (cached in memory) and one hash, not a scan (ADR 0025: why SHA-256 rather than a slow
 * password hash — the secret is 192 random bits, nothing to brute-force).
 *
 * On a cluster node (ADR 0044) the rows travel between nodes: `onChange` tells a listener each
 * key as it now is after a create, revoke or rotate, and `applyRemote` stores a key another node
 * changed. `verify` stays a map lookup on this node's own table either way.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { migrate, type Db, type Migration } from '../storage/index.js';
import { CaxtonError } from '../shared/errors.js';
import { limitSetSchema, type LimitSet } from './limits-config.js';
import type { Role } from './permissions.js';
import type { Principal, PrincipalScope } from './principal.js';
import { keyRevoked, keyRotated, OpenStreams, type StreamEnd } from './open-streams.js';

export const KEY_PREFIX = 'cxk_';
const ID_BYTES = 9; // 12 base64url characters
const SECRET_BYTES = 24; // 192 bits, 32 base64url characters
const KEY_RE = /^cxk_([A-Za-z0-9_-]{12})_([A-Za-z0-9_-]{32})$/;
export const KEY_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** last_used_at is written at most this often per key: verifying must not write on every request. */
const TOUCH_EVERY_MS = 60_000;

export const KEY_MIGRATIONS: readonly Migration[] = [
  {
    id: 'auth-001-api-keys',
    sql: `
      CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        scope TEXT NOT NULL DEFAULT '{}',
        limits TEXT NOT NULL DEFAULT '{}',
        hash BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        created_by TEXT,
        expires_at INTEGER,
        revoked_at INTEGER,
        rotated_at INTEGER,
        last_used_at INTEGER
      );
      CREATE UNIQUE INDEX api_keys_active_name ON api_keys (name) WHERE revoked_at IS NULL;
    `,
  },
];

/** Per-key limits (src/auth/caller-limits.ts reads them); absent fields fall back to `[auth.limits] default`. */
export type KeyLimits = Record<string, number>;

export interface ApiKeyInfo {
  id: string;
  name: string;
  role: Role;
  scope: PrincipalScope;
  limits: KeyLimits;
  created_at: string;
  created_by: string | null;
  expires_at: string | null;
  revoked_at: string | null;
  rotated_at: string | null;
  last_used_at: string | null;
  /** active | expired | revoked */
  state: 'active' | 'expired' | 'revoked';
}

interface Row {
  id: string;
  name: string;
  role: Role;
  scope: string;
  limits: string;
  hash: Buffer;
  created_at: number;
  created_by: string | null;
  expires_at: number | null;
  revoked_at: number | null;
  rotated_at: number | null;
  last_used_at: number | null;
}

/**
 * A key as it travels between cluster nodes (ADR 0044): every column but `last_used_at`, which
 * stays per node. `hash` is the SHA-256 of the secret, never the secret.
 */
export interface ApiKeyRecord {
  id: string;
  name: string;
  role: Role;
  scope: PrincipalScope;
  limits: KeyLimits;
  hash: Buffer;
  /** Epoch ms. */
  created_at: number;
  created_by: string | null;
  expires_at: number | null;
  revoked_at: number | null;
  rotated_at: number | null;
}

/** What `applyRemote` did with a key from another node. */
export type ApplyRemoteResult =
  /** Stored: `record` is the row as it now is here (it differs from the one given when this node knew a later revocation or rotation). */
  | { status: 'applied'; record: ApiKeyRecord }
  /** This node already had it (or something later): `record` is the row here. */
  | { status: 'unchanged'; record: ApiKeyRecord }
  /** Not stored, and why (an active key of the same name exists here). */
  | { status: 'skipped'; problem: string };

export interface CreateKey {
  name: string;
  role: Role;
  scope?: PrincipalScope;
  limits?: KeyLimits;
  /** Time to live in ms; absent: never expires. */
  ttlMs?: number;
  createdBy?: string;
}

const hashSecret = (secret: string) => createHash('sha256').update(secret).digest();
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export class ApiKeyStore {
  readonly #now: () => number;
  /** id → row: verification is a map lookup and one hash (the bench target is 20 µs p50). */
  readonly #cache = new Map<string, Row>();
  readonly #principals = new Map<string, Principal>();
  /**
   * Keys verified before: whole key → id, one per id. A SHA-256 costs 2-3 µs here, a map lookup
   * 0.1 µs, and the verify budget is 20 µs with the rest of the request. Revocation, rotation and
   * expiry still apply: the row is checked on every request, and forget() drops the entry.
   */
  readonly #verified = new Map<string, string>();
  readonly #tokenOf = new Map<string, string>();
  readonly #limits = new Map<string, LimitSet | undefined>();
  readonly #touched = new Map<string, number>();
  readonly #listeners = new Set<(key: ApiKeyRecord) => void>();
  readonly #usedListeners = new Set<(id: string, at: number) => void>();
  readonly #stmts;
  /** The event streams open under each key, ended when the key stops being valid. */
  readonly streams: OpenStreams;

  constructor(db: Db, opts: { now?: () => number } = {}) {
    this.#now = opts.now ?? Date.now;
    this.streams = new OpenStreams(this.#now);
    migrate(db, KEY_MIGRATIONS);
    this.#stmts = {
      byId: db.prepare<[string], Row>('SELECT * FROM api_keys WHERE id = ?'),
      activeByName: db.prepare<[string], Row>('SELECT * FROM api_keys WHERE name = ? AND revoked_at IS NULL'),
      all: db.prepare<[], Row>('SELECT * FROM api_keys ORDER BY created_at, id'),
      insert: db.prepare(
        'INSERT INTO api_keys (id, name, role, scope, limits, hash, created_at, created_by, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      revoke: db.prepare('UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL'),
      rotate: db.prepare('UPDATE api_keys SET hash = ?, rotated_at = ? WHERE id = ?'),
      touch: db.prepare('UPDATE api_keys SET last_used_at = ? WHERE id = ?'),
      touchLater: db.prepare(
        'UPDATE api_keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)',
      ),
      countActive: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM api_keys WHERE revoked_at IS NULL'),
      // last_used_at is left alone: it travels on its own (onUsed, applyRemoteUse).
      upsert: db.prepare(
        `INSERT INTO api_keys (id, name, role, scope, limits, hash, created_at, created_by, expires_at, revoked_at, rotated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, role = excluded.role, scope = excluded.scope, limits = excluded.limits, hash = excluded.hash,
           created_at = excluded.created_at, created_by = excluded.created_by, expires_at = excluded.expires_at, revoked_at = excluded.revoked_at, rotated_at = excluded.rotated_at`,
      ),
    };
  }

  /**
   * Tells `fn` each key as it now is after a create, a revoke or a rotate on this node (not after
   * `applyRemote`), synchronously, once the row is written. `fn` must not throw. Returns a
   * function that stops it.
   */
  onChange(fn: (key: ApiKeyRecord) => void): () => void {
    this.#listeners.add(fn);
    return () => void this.#listeners.delete(fn);
  }

  /**
   * Tells `fn` each last use of a key this node records (at most once a minute per key, as it is
   * written), synchronously; not the uses `applyRemoteUse` brings. `fn` must not throw. Returns
   * a function that stops it. How a cluster's nodes share when a key was last used (key-sync.ts).
   */
  onUsed(fn: (id: string, at: number) => void): () => void {
    this.#usedListeners.add(fn);
    return () => void this.#usedListeners.delete(fn);
  }

  /**
   * A use of key `id` at `at` (epoch ms) another node recorded: kept when it is later than the one
   * here (never moved back), without telling the `onUsed` listeners. False when the key is not
   * here or its last use here is as late.
   */
  applyRemoteUse(id: string, at: number): boolean {
    const row = this.#cache.get(id) ?? this.#stmts.byId.get(id);
    if (!row || (row.last_used_at ?? 0) >= at) return false;
    this.#stmts.touchLater.run(at, id, at);
    row.last_used_at = at;
    return true;
  }

  /** Every key (revoked ones too) as it travels between nodes. */
  records(): ApiKeyRecord[] {
    return this.#stmts.all.all().map(recordOf);
  }

  /**
   * Stores a key another node created, revoked or rotated (upsert by id), without telling the
   * `onChange` listeners. A revocation is never undone and the latest rotation wins (by
   * `rotated_at`), so two nodes applying each other's concurrent changes end with the same row.
   * The key's cached principal and verified secret are dropped: a revoke or rotate elsewhere takes
   * effect here at once. An active key whose name an active key with another id holds here is
   * skipped (names of active keys are unique per node).
   */
  applyRemote(remote: ApiKeyRecord): ApplyRemoteResult {
    const here = this.#stmts.byId.get(remote.id);
    const merged = here ? mergeRecords(recordOf(here), remote) : remote;
    if (here && sameKeyRecord(recordOf(here), merged)) return { status: 'unchanged', record: merged };
    const clash = () => ({
      status: 'skipped' as const,
      problem: `key "${merged.name}" (id ${merged.id}) is not applied here: an active key of that name with another id (${this.#stmts.activeByName.get(merged.name)?.id ?? '?'}) exists on this node; revoke one of them`,
    });
    if (merged.revoked_at === null) {
      const other = this.#stmts.activeByName.get(merged.name);
      if (other && other.id !== merged.id) return clash();
    }
    try {
      this.#stmts.upsert.run(
        merged.id,
        merged.name,
        merged.role,
        JSON.stringify(merged.scope),
        JSON.stringify(merged.limits),
        merged.hash,
        merged.created_at,
        merged.created_by,
        merged.expires_at,
        merged.revoked_at,
        merged.rotated_at,
      );
    } catch (e) {
      if ((e as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') return clash();
      throw e;
    }
    this.#forget(merged.id);
    // The same verdict verify() now gives a request with the old secret, for the streams opened with it.
    if (merged.revoked_at !== null && (here?.revoked_at ?? null) === null)
      this.streams.end(merged.id, keyRevoked(merged.name));
    else if (here && !here.hash.equals(merged.hash)) this.streams.end(merged.id, keyRotated(merged.name));
    return { status: 'applied', record: merged };
  }

  /** Creates a key; the returned `secret` is the only copy of the whole key. */
  create(req: CreateKey): { key: ApiKeyInfo; secret: string } {
    if (!KEY_NAME_RE.test(req.name))
      throw new CaxtonError(
        'invalid_request',
        `invalid key name "${req.name}": use 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit`,
        { field: 'name' },
      );
    if (this.#stmts.activeByName.get(req.name))
      throw new CaxtonError(
        'conflict',
        `an active key named "${req.name}" exists; revoke it first or choose another name`,
        { field: 'name' },
      );
    const id = randomBytes(ID_BYTES).toString('base64url');
    const secret = randomBytes(SECRET_BYTES).toString('base64url');
    const now = this.#now();
    this.#stmts.insert.run(
      id,
      req.name,
      req.role,
      JSON.stringify(req.scope ?? {}),
      JSON.stringify(req.limits ?? {}),
      hashSecret(secret),
      now,
      req.createdBy ?? null,
      req.ttlMs === undefined ? null : now + req.ttlMs,
    );
    this.#forget(id);
    this.#changed(id);
    return { key: this.get(id)!, secret: `${KEY_PREFIX}${id}_${secret}` };
  }

  /** A key by id or by the name of an active key. */
  get(idOrName: string): ApiKeyInfo | undefined {
    const row = this.#row(idOrName);
    return row && this.#info(row);
  }

  list(opts: { all?: boolean } = {}): ApiKeyInfo[] {
    return this.#stmts.all
      .all()
      .map((r) => this.#info(r))
      .filter((k) => opts.all || k.state !== 'revoked');
  }

  countActive(): number {
    return this.#stmts.countActive.get()!.n;
  }

  revoke(idOrName: string): ApiKeyInfo {
    const row = this.#mustRow(idOrName);
    const { changes } = this.#stmts.revoke.run(this.#now(), row.id);
    this.#forget(row.id);
    if (changes > 0) this.#changed(row.id);
    this.streams.end(row.id, keyRevoked(row.name));
    return this.get(row.id)!;
  }

  /** A new secret for the same key (name, role, scope, limits); the old secret stops working at once. */
  rotate(idOrName: string): { key: ApiKeyInfo; secret: string } {
    const row = this.#mustRow(idOrName);
    if (row.revoked_at !== null) throw new CaxtonError('conflict', `key "${row.name}" is revoked; create a new one`);
    const secret = randomBytes(SECRET_BYTES).toString('base64url');
    this.#stmts.rotate.run(hashSecret(secret), this.#now(), row.id);
    this.#forget(row.id);
    this.#changed(row.id);
    this.streams.end(row.id, keyRotated(row.name));
    return { key: this.get(row.id)!, secret: `${KEY_PREFIX}${row.id}_${secret}` };
  }

  /**
   * Holds an event stream opened by `p` (a key's principal) until the key is revoked, rotated or
   * expires, when `close` is called with the reason; undefined when `p` is not one of this store's
   * keys. The returned function releases the stream when it ends by itself.
   */
  holdStream(p: Principal, close: (why: StreamEnd) => void): (() => void) | undefined {
    if (p.kind !== 'key' || p.keyId === undefined) return undefined;
    const row = this.#cache.get(p.keyId) ?? this.#stmts.byId.get(p.keyId);
    if (!row) return undefined;
    return this.streams.hold(row.id, row.name, row.expires_at, close);
  }

  /** Whether the text has the shape of a Caxton API key (checked before any lookup). */
  static looksLikeKey(token: string): boolean {
    return token.startsWith(KEY_PREFIX);
  }

  /**
   * The principal of a presented key, or a 401 saying why (malformed, unknown, revoked, expired)
   * without echoing the key.
   */
  verify(token: string): Principal {
    const known = this.#verified.get(token);
    const knownRow = known === undefined ? undefined : this.#cache.get(known);
    if (knownRow) return this.#admit(knownRow);
    const m = KEY_RE.exec(token);
    if (!m)
      throw unauthenticated('the API key is malformed: expected cxk_<id>_<secret> as printed by `caxton key create`');
    const id = m[1]!;
    let row = this.#cache.get(id);
    if (!row) {
      row = this.#stmts.byId.get(id);
      if (!row) throw unauthenticated('unknown API key');
      this.#cache.set(id, row);
    }
    const given = hashSecret(m[2]!);
    if (given.length !== row.hash.length || !timingSafeEqual(given, row.hash)) throw unauthenticated('unknown API key');
    const p = this.#admit(row);
    const previous = this.#tokenOf.get(id);
    if (previous !== undefined) this.#verified.delete(previous);
    this.#verified.set(token, id);
    this.#tokenOf.set(id, token);
    return p;
  }

  /** The checks that apply on every request, even for a key verified before. */
  #admit(row: Row): Principal {
    const now = this.#now();
    if (row.revoked_at !== null) throw unauthenticated(`API key "${row.name}" was revoked`);
    if (row.expires_at !== null && row.expires_at <= now)
      throw unauthenticated(`API key "${row.name}" expired at ${iso(row.expires_at)}; create a new one`);
    this.#touch(row, now);
    return this.#principalOf(row);
  }

  /** The key's principal, made once per key (dropped when the key changes). */
  #principalOf(row: Row): Principal {
    let p = this.#principals.get(row.id);
    if (!p) this.#principals.set(row.id, (p = principalOfKey(row)));
    return p;
  }

  /**
   * The principal of the active key named `name`, as of now: undefined once it is revoked or has
   * expired (messages acting for it are then refused further sends). Does not count as a use.
   */
  principalByName(name: string): Principal | undefined {
    const row = this.#stmts.activeByName.get(name);
    if (!row || row.revoked_at !== null || (row.expires_at !== null && row.expires_at <= this.#now())) return undefined;
    return this.#principalOf(row);
  }

  /** A key's own limits (`caxton key create --rpm ...`), parsed; undefined when it has none. */
  limitsOf(keyId: string): LimitSet | undefined {
    if (this.#limits.has(keyId)) return this.#limits.get(keyId);
    const row = this.#cache.get(keyId) ?? this.#stmts.byId.get(keyId);
    const raw = row ? (JSON.parse(row.limits) as KeyLimits) : {};
    const parsed = Object.keys(raw).length > 0 ? limitSetSchema.safeParse(raw) : undefined;
    const limits = parsed?.success ? parsed.data : undefined;
    this.#limits.set(keyId, limits);
    return limits;
  }

  /** Writes pending last-used times (called on close). */
  flush(): void {
    for (const [id, at] of this.#touched) this.#stmts.touch.run(at, id);
    this.#touched.clear();
  }

  #touch(row: Row, now: number): void {
    const last = row.last_used_at ?? 0;
    this.#touched.set(row.id, now);
    if (now - last >= TOUCH_EVERY_MS) {
      row.last_used_at = now;
      try {
        this.#stmts.touch.run(now, row.id);
        this.#touched.delete(row.id);
      } catch {
        // last-used is informational: a full disk must not refuse a valid key.
      }
      for (const fn of this.#usedListeners) fn(row.id, now);
    }
  }

  #changed(id: string): void {
    if (this.#listeners.size === 0) return;
    const key = recordOf(this.#stmts.byId.get(id)!);
    for (const fn of this.#listeners) fn(key);
  }

  #forget(id: string): void {
    this.#cache.delete(id);
    const token = this.#tokenOf.get(id);
    if (token !== undefined) this.#verified.delete(token);
    this.#tokenOf.delete(id);
    this.#principals.delete(id);
    this.#limits.delete(id);
  }

  #row(idOrName: string): Row | undefined {
    return this.#stmts.byId.get(idOrName) ?? this.#stmts.activeByName.get(idOrName);
  }

  #mustRow(idOrName: string): Row {
    const row = this.#row(idOrName);
    if (!row) throw new CaxtonError('not_found', `no API key with id or name "${idOrName}"; see \`caxton key list\``);
    return row;
  }

  #info(r: Row): ApiKeyInfo {
    const now = this.#now();
    // The later of this node's pending use and the stored one (which another node's may have moved on).
    const lastUsed = Math.max(this.#touched.get(r.id) ?? 0, r.last_used_at ?? 0) || null;
    return {
      id: r.id,
      name: r.name,
      role: r.role,
      scope: JSON.parse(r.scope) as PrincipalScope,
      limits: JSON.parse(r.limits) as KeyLimits,
      created_at: iso(r.created_at)!,
      created_by: r.created_by,
      expires_at: iso(r.expires_at),
      revoked_at: iso(r.revoked_at),
      rotated_at: iso(r.rotated_at),
      last_used_at: iso(lastUsed),
      state: r.revoked_at !== null ? 'revoked' : r.expires_at !== null && r.expires_at <= now ? 'expired' : 'active',
    };
  }
}

function recordOf(r: Row): ApiKeyRecord {
  return {
    id: r.id,
    name: r.name,
    role: r.role,
    scope: JSON.parse(r.scope) as PrincipalScope,
    limits: JSON.parse(r.limits) as KeyLimits,
    hash: r.hash,
    created_at: r.created_at,
    created_by: r.created_by,
    expires_at: r.expires_at,
    revoked_at: r.revoked_at,
    rotated_at: r.rotated_at,
  };
}

/**
 * The row two nodes agree on for one key, whichever applies the other's first: the earliest
 * revocation (a revoked key stays revoked), the hash of the latest rotation (ties broken by the
 * hash itself), the rest as the remote has it (it never changes after the key is created).
 */
function mergeRecords(here: ApiKeyRecord, remote: ApiKeyRecord): ApiKeyRecord {
  const revoked_at =
    here.revoked_at === null
      ? remote.revoked_at
      : remote.revoked_at === null
        ? here.revoked_at
        : Math.min(here.revoked_at, remote.revoked_at);
  const [h, r] = [here.rotated_at ?? -1, remote.rotated_at ?? -1];
  const keepHash = h > r || (h === r && Buffer.compare(here.hash, remote.hash) > 0);
  return { ...remote, revoked_at, ...(keepHash && { hash: here.hash, rotated_at: here.rotated_at }) };
}

/** Whether two records are the same key in the same state (scope and limits compared by content). */
export function sameKeyRecord(a: ApiKeyRecord, b: ApiKeyRecord): boolean {
  return (
    a.id === b.id &&
    a.name === b.name &&
    a.role === b.role &&
    canonicalJson(a.scope) === canonicalJson(b.scope) &&
    canonicalJson(a.limits) === canonicalJson(b.limits) &&
    a.hash.equals(b.hash) &&
    a.created_at === b.created_at &&
    a.created_by === b.created_by &&
    a.expires_at === b.expires_at &&
    a.revoked_at === b.revoked_at &&
    a.rotated_at === b.rotated_at
  );
}

function canonicalJson(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(
          Object.entries(x as Record<string, unknown>).sort(([p], [q]) => (p < q ? -1 : p > q ? 1 : 0)),
        )
      : x,
  );
}

function principalOfKey(r: Row): Principal {
  const scope = JSON.parse(r.scope) as PrincipalScope;
  return { id: `key:${r.name}`, kind: 'key', name: r.name, role: r.role, scope, keyId: r.id };
}

export function unauthenticated(message: string, details?: unknown): CaxtonError {
  return new CaxtonError('unauthenticated', message, details);
}
