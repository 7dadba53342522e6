/**
 * Message signing keys across nodes (ADR 0059): the public half of every node's and agent's
 * Ed25519 key travels to the other nodes the way API keys do (key-sync.ts), through a JetStream
 * key-value bucket of its own (`<[cluster] keys_bucket>_signing`, one entry per key id, history 1),
 * so a message signed on one node verifies on every node. Nothing of a private key travels.
 *
 * - A node that starts applies the bucket's entries, then puts each of its own keys the bucket
 *   lacks, then follows both ways. A key made or retired later is put when its row is written.
 * - A delivery can reach a node before the key that signed it does (a key made a moment ago on
 *   another node): `lookup` reads that one entry from the bucket, so such a message is verified
 *   rather than refused as signed by an unknown key.
 * - An entry that is not JSON or not the expected shape, or whose id is not its key, is skipped
 *   with a warning naming the key. Retiring is one-way: an entry never un-retires a key here.
 *
 * An entry the shared trust anchor does not endorse (ADR 0114) is skipped with a warning: whoever
 * can put an entry in the bucket cannot add a key that verifies, only withhold or delay keys.
 */
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import { OUTSIDE_NODE, type SigningKeyRecord, type SigningKeyStore } from '../auth/index.js';
import { describeError } from '../shared/errors.js';
import { followBucket } from './kv-follow.js';
import { createKv } from './nats.js';

export interface SigningKeySyncOptions {
  nc: NatsConnection;
  /** The key-value bucket of public signing keys. */
  bucket: string;
  /** This node's name (its own keys are never applied from the bucket). */
  node: string;
  /** Copies JetStream keeps of the bucket when this node creates it (`[cluster] replicas`). */
  replicas?: number;
  keys: SigningKeyStore;
  log?: { warn(obj: object, msg: string): void };
}

const epochMs = z.int().min(0);
const entrySchema = z.object({
  id: z
    .string()
    .regex(/^sk_[A-Za-z0-9_-]{22}$/, { error: 'expected a signing key id (sk_ and 22 base64url characters)' }),
  owner: z.string().regex(/^(node|agent:[A-Za-z0-9][A-Za-z0-9._-]{0,127}|principal:(key|oidc|cert|local):\S{1,200})$/, {
    error: 'expected node, agent:NAME or principal:ID',
  }),
  node: z.string().min(1),
  public_key: z
    .base64()
    .refine((s) => Buffer.from(s, 'base64').length === 32, { error: 'expected a raw Ed25519 public key (32 bytes)' }),
  created_at: epochMs,
  retired_at: epochMs.nullable(),
  endorsement: z.base64().max(200).nullable().default(null),
});

export class SigningKeySync {
  readonly #kv: KV;
  readonly #opts: SigningKeySyncOptions;
  #stopped = false;
  #watch: { stop(): void } | undefined;
  #unlisten: (() => void) | undefined;
  /** The entries seen or put, by id: what need not be put again at start. */
  readonly #inBucket = new Map<string, SigningKeyRecord>();
  readonly #pending = new Set<Promise<void>>();

  private constructor(kv: KV, opts: SigningKeySyncOptions) {
    this.#kv = kv;
    this.#opts = opts;
  }

  /** Opens (or creates) the bucket, applies it, puts this node's keys it lacks and follows both ways. */
  static async start(opts: SigningKeySyncOptions): Promise<SigningKeySync> {
    const kv = await createKv(opts.nc, opts.bucket, { history: 1, replicas: opts.replicas ?? 1 }, { log: opts.log });
    const s = new SigningKeySync(kv, opts);
    // Listening first: a key made while the bucket is read is put too.
    s.#unlisten = opts.keys.onChange((r) => s.#publish(r));
    try {
      s.#watch = await followBucket(kv, 'cluster signing keys', (e) => {
        if (e.operation === 'PUT') s.#apply(e.key, e.string());
      });
    } catch (e) {
      await s.stop();
      throw e;
    }
    for (const r of opts.keys.records()) {
      if (!s.#shares(r)) continue;
      const there = s.#inBucket.get(r.id);
      if (!there || there.retired_at !== r.retired_at) s.#publish(r);
    }
    await Promise.all(s.#pending);
    return s;
  }

  /** Reads key `id` from the bucket and applies it; true when it is now known here. */
  async lookup(id: string): Promise<boolean> {
    if (this.#stopped) return false;
    try {
      const e = await this.#kv.get(id);
      if (!e || e.operation !== 'PUT') return false;
      return this.#apply(id, e.string());
    } catch (err) {
      this.#opts.log?.warn({ key: id, err: describeError(err) }, `could not read signing key ${id} from the cluster`);
      return false;
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#unlisten?.();
    this.#watch?.stop();
    await Promise.all(this.#pending);
  }

  /**
   * Whether this node puts `r` in the bucket: its own keys, and the callers' registered keys
   * (held by no node: whichever node registered or holds one shares it; every copy is endorsed).
   */
  #shares(r: SigningKeyRecord): boolean {
    return r.node === this.#opts.node || r.node === OUTSIDE_NODE;
  }

  #publish(r: SigningKeyRecord): void {
    if (this.#stopped || !this.#shares(r)) return;
    this.#inBucket.set(r.id, r);
    const p = this.#kv.put(r.id, JSON.stringify(r)).then(
      () => undefined,
      (e: unknown) =>
        this.#opts.log?.warn(
          { key: r.id, owner: r.owner, err: describeError(e) },
          `could not publish signing key ${r.id} (${r.owner}) to the cluster; other nodes refuse what it signs until this node's next start`,
        ),
    );
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
  }

  #apply(key: string, text: string): boolean {
    let parsed: SigningKeyRecord;
    try {
      const r = entrySchema.safeParse(JSON.parse(text));
      if (!r.success) throw new Error(r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
      if (r.data.id !== key) throw new Error(`its id ${r.data.id} is not its key`);
      parsed = r.data;
    } catch (e) {
      this.#opts.log?.warn(
        { key, err: describeError(e) },
        `skipped signing key entry "${key}" in the cluster bucket: it is not a signing key (${describeError(e)})`,
      );
      return false;
    }
    this.#inBucket.set(key, parsed);
    if (parsed.node === this.#opts.node || this.#opts.keys.applyRemote(parsed)) return true;
    this.#opts.log?.warn(
      { key, owner: parsed.owner, node: parsed.node },
      `skipped signing key ${key} (${parsed.owner} on ${parsed.node}) in the cluster bucket: this node's trust anchor does not endorse it; every node needs the same [messaging] signing_anchor file`,
    );
    return false;
  }
}
