/**
 * Ed25519 signing keys of messages (ADR 0059): one per owner — the node (`node`) and each agent
 * (`agent:NAME`) — on each node. A private key never leaves its node and is never in a row, a
 * response or a log: it is a PKCS#8 PEM file of its own, 0600, under `<data_dir>/signing/` (0700).
 * The table holds the public half, which is what other nodes and the message view need. Rotating
 * retires the owner's active key (its private file is deleted, its public key kept, so messages
 * signed before still verify) and makes a new one.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CaxtonError } from '../shared/errors.js';
import { makePrivateDir, writePrivateFileSync } from '../shared/private-fs.js';
import { migrate, type Db, type Migration } from '../storage/index.js';

export const SIGNING_KEY_MIGRATIONS: readonly Migration[] = [
  {
    id: 'auth-signing-001',
    sql: `
      CREATE TABLE signing_keys (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        node TEXT NOT NULL,
        public_key TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        retired_at INTEGER
      );
      CREATE UNIQUE INDEX signing_keys_active ON signing_keys (owner, node) WHERE retired_at IS NULL;
    `,
  },
];

/** The owner of a node's own key; an agent's is `agent:NAME`. */
export const NODE_OWNER = 'node';
const OWNER_RE = /^(node|agent:[A-Za-z0-9][A-Za-z0-9._-]{0,127})$/;

/** A public key as the table, the API and other nodes see it. */
export interface SigningKeyRecord {
  /** `sk_` and 22 base64url characters of the SHA-256 of the public key (SPKI DER). */
  id: string;
  owner: string;
  /** The node holding the private half. */
  node: string;
  /** Raw 32-byte Ed25519 public key, base64. */
  public_key: string;
  /** Epoch ms. */
  created_at: number;
  retired_at: number | null;
}

export interface SigningKeyInfo extends Omit<SigningKeyRecord, 'created_at' | 'retired_at'> {
  created_at: string;
  retired_at: string | null;
  state: 'active' | 'retired';
}

/** A key that signs: its id and private half. */
export interface ActiveSigningKey {
  readonly id: string;
  readonly privateKey: KeyObject;
}

/** A key that verifies: its record and public half. */
export interface VerifyingKey {
  readonly record: SigningKeyRecord;
  readonly publicKey: KeyObject;
}

/** The owner a message sender signs as: an agent's own key, else the node's. */
export const agentOwner = (agent: string): string => `agent:${agent.toLowerCase()}`;

const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

function publicKeyOf(raw: string): KeyObject {
  return createPublicKey({
    key: Buffer.concat([SPKI_PREFIX, Buffer.from(raw, 'base64')]),
    format: 'der',
    type: 'spki',
  });
}

export function signingKeyInfo(r: SigningKeyRecord): SigningKeyInfo {
  return {
    ...r,
    created_at: new Date(r.created_at).toISOString(),
    retired_at: r.retired_at === null ? null : new Date(r.retired_at).toISOString(),
    state: r.retired_at === null ? 'active' : 'retired',
  };
}

/**
 * This node's signing keys and every public key it knows (its own and, in a cluster, the other
 * nodes'). Signing is synchronous and in memory after a key's first use; a verifying key is one
 * map lookup after its first.
 */
export class SigningKeyStore {
  readonly #dir: string;
  readonly #node: string;
  readonly #now: () => number;
  readonly #active = new Map<string, ActiveSigningKey>();
  readonly #verifying = new Map<string, VerifyingKey>();
  readonly #listeners = new Set<(r: SigningKeyRecord) => void>();
  readonly #s;

  constructor(db: Db, opts: { dir: string; node: string; now?: () => number }) {
    this.#dir = opts.dir;
    this.#node = opts.node;
    this.#now = opts.now ?? Date.now;
    migrate(db, SIGNING_KEY_MIGRATIONS);
    this.#s = {
      byId: db.prepare<[string], SigningKeyRecord>('SELECT * FROM signing_keys WHERE id = ?'),
      active: db.prepare<[string, string], SigningKeyRecord>(
        'SELECT * FROM signing_keys WHERE owner = ? AND node = ? AND retired_at IS NULL',
      ),
      all: db.prepare<[], SigningKeyRecord>('SELECT * FROM signing_keys ORDER BY created_at, id'),
      insert: db.prepare(
        'INSERT OR IGNORE INTO signing_keys (id, owner, node, public_key, created_at, retired_at) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      retire: db.prepare('UPDATE signing_keys SET retired_at = ? WHERE id = ? AND retired_at IS NULL'),
    };
  }

  get node(): string {
    return this.#node;
  }

  /** Tells `fn` each key this node made or retired, once its row is written (a cluster shares them). */
  onChange(fn: (r: SigningKeyRecord) => void): () => void {
    this.#listeners.add(fn);
    return () => void this.#listeners.delete(fn);
  }

  /** The owner's active key on this node, made on its first use. */
  signingKey(owner: string): ActiveSigningKey {
    const known = this.#active.get(owner);
    if (known) return known;
    const row = this.#s.active.get(owner, this.#node);
    if (row) {
      const file = this.#file(row.id);
      if (existsSync(file)) {
        const key = { id: row.id, privateKey: createPrivateKey(readFileSync(file)) };
        this.#active.set(owner, key);
        return key;
      }
      // The private half is gone (a data dir restored without it): a fresh key takes over.
      this.#retire(row);
    }
    return this.#create(owner);
  }

  /** A public key by id (undefined: not known here). */
  verifyingKey(id: string): VerifyingKey | undefined {
    const known = this.#verifying.get(id);
    if (known) return known;
    const row = this.#s.byId.get(id);
    if (!row) return undefined;
    const key = { record: row, publicKey: publicKeyOf(row.public_key) };
    this.#verifying.set(id, key);
    return key;
  }

  list(): SigningKeyInfo[] {
    return this.#s.all.all().map(signingKeyInfo);
  }

  records(): SigningKeyRecord[] {
    return this.#s.all.all();
  }

  /**
   * A new key for `owner` on this node; the one it replaces is retired (it still verifies what it
   * signed, and signs nothing more). Throws naming the owner when it is not `node` or `agent:NAME`.
   */
  rotate(owner: string): { key: SigningKeyInfo; retired: SigningKeyInfo | null } {
    if (!OWNER_RE.test(owner))
      throw new CaxtonError(
        'invalid_request',
        `"${owner}" is not a signing key owner; give "node" or an agent name (agent:NAME also works)`,
        { field: 'owner' },
      );
    const row = this.#s.active.get(owner, this.#node);
    const retired = row ? this.#retire(row) : null;
    const made = this.#create(owner);
    return { key: signingKeyInfo(this.#s.byId.get(made.id)!), retired: retired && signingKeyInfo(retired) };
  }

  /** Stores a public key another node made or retired (nothing of its private half travels). */
  applyRemote(r: SigningKeyRecord): void {
    if (r.node === this.#node) return;
    this.#s.insert.run(r.id, r.owner, r.node, r.public_key, r.created_at, r.retired_at);
    if (r.retired_at !== null) this.#s.retire.run(r.retired_at, r.id);
    this.#verifying.delete(r.id);
  }

  #file(id: string): string {
    return join(this.#dir, `${id}.pem`);
  }

  #create(owner: string): ActiveSigningKey {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const spki = publicKey.export({ format: 'der', type: 'spki' });
    const id = `sk_${createHash('sha256').update(spki).digest('base64url').slice(0, 22)}`;
    makePrivateDir(this.#dir);
    writePrivateFileSync(this.#file(id), privateKey.export({ format: 'pem', type: 'pkcs8' }));
    const record: SigningKeyRecord = {
      id,
      owner,
      node: this.#node,
      public_key: spki.subarray(SPKI_PREFIX.length).toString('base64'),
      created_at: this.#now(),
      retired_at: null,
    };
    this.#s.insert.run(id, owner, this.#node, record.public_key, record.created_at, null);
    const key = { id, privateKey };
    this.#active.set(owner, key);
    this.#verifying.set(id, { record, publicKey });
    for (const fn of this.#listeners) fn(record);
    return key;
  }

  #retire(row: SigningKeyRecord): SigningKeyRecord {
    const at = this.#now();
    this.#s.retire.run(at, row.id);
    rmSync(this.#file(row.id), { force: true });
    this.#active.delete(row.owner);
    this.#verifying.delete(row.id);
    const retired = { ...row, retired_at: at };
    for (const fn of this.#listeners) fn(retired);
    return retired;
  }
}
