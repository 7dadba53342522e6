/**
 * API keys across nodes (ADR 0044): a key created, revoked or rotated on one node verifies (or
 * stops verifying) on every node, through a JetStream key-value bucket (`[cluster] keys_bucket`),
 * as the directory of API agents first did (ADR 0039; it is in PostgreSQL now, ADR 0045). Each node keeps
 * verifying against its own SQLite table and in-memory cache, so `verify` stays synchronous.
 *
 * - The bucket holds one entry per key id (history 1): the row as the last node to change it had
 *   it, without `last_used_at`. Keys are never deleted, only revoked, so there are only puts; a
 *   deleted or purged entry changes nothing on the nodes.
 * - When a key was last used travels in a bucket of its own (`<bucket>_used`, one entry per key
 *   id: `{node, at}`), put by a node each time it records a use (at most once a minute per key,
 *   ApiKeyStore.onUsed) later than the last it saw there; every node keeps the latest it hears
 *   (`applyRemoteUse`, never moved back), so `caxton key list` answers the same on every node,
 *   within a minute. Why not in the key's entry: a use would then race the key's changes.
 * - A node that starts reads the bucket's current entries (its watch's initial values), then puts
 *   each of its own keys the bucket does not hold as it has it (its first start, or changes made
 *   while it was cut off), then follows both ways.
 * - Two nodes changing one key at once converge: `applyRemote` never undoes a revocation and keeps
 *   the latest rotation, and a node that ends with a row other than the entry it applied (it knew
 *   something later) puts its row back, so the bucket ends with it too.
 * - An entry that is not JSON, does not match the expected shape, or whose id is not its key is
 *   skipped with a warning naming the key. A key whose name an active key with another id holds
 *   on this node is skipped with a warning (names of active keys are unique per node), and
 *   applied once that key is revoked.
 *
 * What the bucket holds is as sensitive as the api_keys table, no more: `hash` is the SHA-256 of
 * a 192-bit random secret (src/auth/keys.ts), which cannot be turned back into the key. Writing to
 * the bucket is another matter: whoever can put an entry there can add an admin key of their own
 * on every node. The NATS account the nodes use must be private to Caxton (docs/security.md).
 */
import type { KV } from '@nats-io/kv';
import { createKv } from './nats.js';
import type { NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import {
  KEY_NAME_RE,
  ROLES,
  principalScopeSchema,
  sameKeyRecord,
  type ApiKeyRecord,
  type ApiKeyStore,
} from '../auth/index.js';
import { describeError } from '../shared/errors.js';
import { followBucket, type FollowOptions } from './kv-follow.js';

export interface KeySyncOptions {
  nc: NatsConnection;
  /** The key-value bucket of API keys. */
  bucket: string;
  /** This node's name (entries it wrote are not applied again). */
  node: string;
  /** Copies JetStream keeps of the bucket when this node creates it (`[cluster] replicas`). */
  replicas?: number;
  keys: ApiKeyStore;
  log?: { warn(obj: object, msg: string): void };
  /**
   * How often each watch is checked for progress (default 10 s; kv-follow.ts): one that stopped
   * delivering is started again, so a revocation on another node still reaches this one.
   */
  watchCheckMs?: number;
}

/** A key id as `ApiKeyStore` makes them (9 random bytes, base64url): also the entry's key in the bucket. */
const KEY_ID = /^[A-Za-z0-9_-]{12}$/;
const epochMs = z.int().min(0);
/** A key's last use as it travels between nodes (the `<bucket>_used` bucket, keyed by key id). */
const usedEntrySchema = z.object({ node: z.string().min(1), at: epochMs });

/** One key as it travels between nodes: the row without last_used_at, the hash in base64. */
const keyEntrySchema = z.object({
  node: z.string().min(1),
  /** The publisher's clock (epoch ms) when it published; informational. */
  published_at: epochMs,
  id: z.string().regex(KEY_ID, { error: 'expected a key id (12 base64url characters)' }),
  name: z.string().regex(KEY_NAME_RE, { error: 'expected a key name' }),
  role: z.enum(ROLES),
  // Strict: a scope with a restriction this version does not know is skipped, never widened.
  scope: z.strictObject(principalScopeSchema.shape),
  limits: z.record(z.string(), z.number()),
  hash: z
    .base64()
    .transform((s) => Buffer.from(s, 'base64'))
    .refine((b) => b.length === 32, { error: 'expected the base64 of a SHA-256 (32 bytes)' }),
  created_at: epochMs,
  created_by: z.string().nullable(),
  expires_at: epochMs.nullable(),
  revoked_at: epochMs.nullable(),
  rotated_at: epochMs.nullable(),
});

type KeyEntry = z.input<typeof keyEntrySchema>;

export class KeySync {
  readonly #kv: KV;
  readonly #used: KV;
  readonly #opts: KeySyncOptions;
  #stopped = false;
  #watch: { stop(): void } | undefined;
  #usedWatch: { stop(): void } | undefined;
  #unlisten: (() => void) | undefined;
  #unlistenUsed: (() => void) | undefined;
  /** The latest use seen or put per key id: a use not later than it is not put. */
  readonly #lastUse = new Map<string, number>();
  /** A failed put of a use was logged (once until one succeeds: uses are informational and frequent). */
  #usePutFailed = false;
  /** The last valid entry seen or put per key id (this node's own included): what need not be put again at start. */
  readonly #inBucket = new Map<string, ApiKeyRecord>();
  /** Keys from other nodes skipped because an active key here holds their name, by id (applied once the name is free). */
  readonly #clashed = new Map<string, { key: ApiKeyRecord; node: string }>();
  /** Puts in flight (stop waits for them). */
  readonly #pending = new Set<Promise<void>>();

  private constructor(kv: KV, used: KV, opts: KeySyncOptions) {
    this.#kv = kv;
    this.#used = used;
    this.#opts = opts;
  }

  /**
   * Opens (or creates) the bucket, applies its current entries, puts this node's keys it lacks,
   * and follows both ways until `stop`. Resolves once all of that is done.
   */
  static async start(opts: KeySyncOptions): Promise<KeySync> {
    const placement = { log: opts.log };
    const kv = await createKv(opts.nc, opts.bucket, { history: 1, replicas: opts.replicas ?? 1 }, placement);
    const used = await createKv(
      opts.nc,
      `${opts.bucket}_used`,
      { history: 1, replicas: opts.replicas ?? 1 },
      placement,
    );
    const s = new KeySync(kv, used, opts);
    // Listening first: a key changed while the bucket is read is put too.
    s.#unlisten = opts.keys.onChange((k) => {
      s.#publish(k);
      s.#retryClashed(k);
    });
    s.#unlistenUsed = opts.keys.onUsed((id, at) => s.#publishUse(id, at));
    try {
      await s.#follow();
      s.#usedWatch = await followBucket(
        used,
        'cluster API key uses',
        (e) => {
          if (e.operation === 'PUT') s.#applyUse(e.key, e.string());
        },
        s.#followOptions(),
      );
    } catch (e) {
      await s.stop();
      throw e;
    }
    for (const k of opts.keys.records()) {
      const there = s.#inBucket.get(k.id);
      if (!there || !sameKeyRecord(there, k)) s.#publish(k);
    }
    await Promise.all(s.#pending);
    return s;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#unlisten?.();
    this.#unlistenUsed?.();
    this.#watch?.stop();
    this.#usedWatch?.stop();
    await Promise.all(this.#pending);
  }

  #publish(k: ApiKeyRecord): void {
    if (this.#stopped) return;
    this.#inBucket.set(k.id, k);
    const p = this.#put(k);
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
  }

  async #put(k: ApiKeyRecord): Promise<void> {
    const entry: KeyEntry = {
      node: this.#opts.node,
      published_at: Date.now(),
      id: k.id,
      name: k.name,
      role: k.role,
      scope: k.scope,
      limits: k.limits,
      hash: k.hash.toString('base64'),
      created_at: k.created_at,
      created_by: k.created_by,
      expires_at: k.expires_at,
      revoked_at: k.revoked_at,
      rotated_at: k.rotated_at,
    };
    try {
      await this.#kv.put(k.id, JSON.stringify(entry));
    } catch (e) {
      this.#opts.log?.warn(
        { key: k.name, id: k.id, err: describeError(e) },
        `could not publish API key "${k.name}" to the cluster; other nodes see it after its next change or this node's next start`,
      );
    }
  }

  #publishUse(id: string, at: number): void {
    if (this.#stopped || at <= (this.#lastUse.get(id) ?? 0)) return;
    this.#lastUse.set(id, at);
    const p = this.#used.put(id, JSON.stringify({ node: this.#opts.node, at })).then(
      () => void (this.#usePutFailed = false),
      (e: unknown) => {
        if (this.#usePutFailed) return;
        this.#usePutFailed = true;
        this.#opts.log?.warn(
          { id, err: describeError(e) },
          "could not tell the cluster when an API key was last used; other nodes' key lists show an earlier use until a later one gets through",
        );
      },
    );
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
  }

  #applyUse(key: string, text: string): void {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      raw = undefined;
    }
    const parsed = usedEntrySchema.safeParse(raw);
    if (!parsed.success || !KEY_ID.test(key))
      return this.#opts.log?.warn({ key }, `skipped cluster key use "${key}": expected {"node", "at"} under a key id`);
    const { node, at } = parsed.data;
    if (at > (this.#lastUse.get(key) ?? 0)) this.#lastUse.set(key, at);
    if (node !== this.#opts.node) this.#opts.keys.applyRemoteUse(key, at);
  }

  /** Starts the watch and resolves once its initial values (the bucket's current keys) have been applied. */
  async #follow(): Promise<void> {
    this.#watch = await followBucket(
      this.#kv,
      'cluster API keys',
      (e) => {
        // Keys are revoked, never deleted: a deleted or purged entry changes nothing here.
        if (e.operation === 'PUT') this.#applyPut(e.key, e.string());
      },
      this.#followOptions(),
    );
  }

  #followOptions(): FollowOptions {
    return {
      checkMs: this.#opts.watchCheckMs,
      onRestart: (why, error) =>
        this.#opts.log?.warn(
          { why, ...(error !== undefined && { err: describeError(error) }) },
          error === undefined
            ? 'a watch of the cluster API keys was started again'
            : 'a watch of the cluster API keys could not be started again; trying again at the next check',
        ),
    };
  }

  #applyPut(key: string, text: string): void {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      return this.#opts.log?.warn({ key }, `skipped cluster key entry "${key}": it is not JSON`);
    }
    const from =
      typeof raw === 'object' && raw !== null && typeof (raw as { node?: unknown }).node === 'string'
        ? (raw as { node: string }).node
        : undefined;
    const parsed = keyEntrySchema.safeParse(raw);
    if (!parsed.success || parsed.data.id !== key) {
      const issue = parsed.error?.issues[0];
      const why = parsed.success
        ? `it holds key id "${parsed.data.id}"`
        : `${issue!.path.join('.') || 'entry'}: ${issue!.message}`;
      return this.#opts.log?.warn(
        { key, ...(from !== undefined && { from }) },
        `skipped cluster key entry "${key}"${from !== undefined ? ` from node ${from}` : ''}: ${why}`,
      );
    }
    const { node, published_at: _published, ...k } = parsed.data;
    this.#inBucket.set(key, k);
    if (node === this.#opts.node) return; // this node's own write (it may already be newer here)
    this.#apply(k, node);
  }

  #apply(k: ApiKeyRecord, node: string): void {
    const r = this.#opts.keys.applyRemote(k);
    if (r.status === 'skipped') {
      this.#clashed.set(k.id, { key: k, node });
      return this.#opts.log?.warn({ key: k.id, name: k.name, from: node }, `API key from node ${node}: ${r.problem}`);
    }
    this.#clashed.delete(k.id);
    // This node knew a later revocation or rotation: the bucket gets the row both nodes end with.
    if (!sameKeyRecord(r.record, k)) this.#publish(r.record);
    this.#retryClashed(r.record);
  }

  /** A key revoked here (by this node or another) frees its name: the keys skipped for holding it are applied now. */
  #retryClashed(k: ApiKeyRecord): void {
    if (k.revoked_at === null) return;
    for (const c of [...this.#clashed.values()])
      if (c.key.name === k.name && c.key.id !== k.id) this.#apply(c.key, c.node);
  }
}
