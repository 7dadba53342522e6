/**
 * Ed25519 signing keys of messages (ADR 0059): one per owner — the node (`node`) and each agent
 * (`agent:NAME`) — on each node. A private key never leaves its node and is never in a row, a
 * response or a log: it is a PKCS#8 PEM file of its own, 0600, under `<data_dir>/signing/` (0700).
 * The table holds the public half, which is what other nodes and the message view need. Rotating
 * retires the owner's active key (its private file is deleted, its public key kept, so messages
 * signed before still verify) and makes a new one.
 *
 * Which rows are trusted is not the database's to say (ADR 0114): each row carries the endorsement
 * of the trust anchor (signing-anchor.ts), a key file outside the database, and a row whose
 * endorsement does not verify verifies nothing.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CaxtonError } from '../shared/errors.js';
import { SigningAnchor } from './signing-anchor.js';
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
  { id: 'auth-signing-002', sql: 'ALTER TABLE signing_keys ADD COLUMN endorsement TEXT' },
];

/** The owner of a node's own key; an agent's is `agent:NAME`; a caller's registered key, `principal:ID`. */
export const NODE_OWNER = 'node';
/** The `node` of a principal's registered key: its private half is held by the principal, on no node. */
export const OUTSIDE_NODE = 'outside';
/** The owner of a principal's registered key. */
export const principalOwner = (principal: string): string => `principal:${principal}`;
const PRINCIPAL_RE = /^(key|oidc|cert|local):[^\s]{1,200}$/;
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
  /** The trust anchor's signature over the row (ADR 0114), base64; null: not endorsed, trusted for nothing. */
  endorsement: string | null;
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
  /** Whether the trust anchor endorses the row: a key that is not verifies nothing. */
  readonly anchored: boolean;
}

/** The owner a message sender signs as: an agent's own key, else the node's. */
export const agentOwner = (agent: string): string => `agent:${agent.toLowerCase()}`;

const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

const rawPublicKey = (k: KeyObject): string =>
  k.export({ format: 'der', type: 'spki' }).subarray(SPKI_PREFIX.length).toString('base64');

function publicKeyOf(raw: string): KeyObject {
  return createPublicKey({
    key: Buffer.concat([SPKI_PREFIX, Buffer.from(raw, 'base64')]),
    format: 'der',
    type: 'spki',
  });
}

const keyIdOf = (spki: Buffer): string => `sk_${createHash('sha256').update(spki).digest('base64url').slice(0, 22)}`;

/** The SPKI DER of an Ed25519 public key given as raw base64 or PEM; throws naming the field otherwise. */
function spkiOf(text: string): Buffer {
  const bad = (): CaxtonError =>
    new CaxtonError(
      'invalid_request',
      'public_key: expected an Ed25519 public key: its 32 raw bytes in base64, or an SPKI PEM ("-----BEGIN PUBLIC KEY-----")',
      { field: 'public_key' },
    );
  let key: KeyObject;
  try {
    key = text.includes('-----BEGIN')
      ? createPublicKey(text)
      : (() => {
          const raw = Buffer.from(text.trim(), 'base64');
          if (raw.length !== 32) throw bad();
          return publicKeyOf(raw.toString('base64'));
        })();
  } catch {
    throw bad();
  }
  if (key.asymmetricKeyType !== 'ed25519') throw bad();
  return key.export({ format: 'der', type: 'spki' });
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
  readonly #anchor: SigningAnchor;
  readonly #now: () => number;
  readonly #active = new Map<string, ActiveSigningKey>();
  readonly #verifying = new Map<string, VerifyingKey>();
  readonly #listeners = new Set<(r: SigningKeyRecord) => void>();
  readonly #s;

  /** `anchor`: the trust anchor; by default `<dir>/anchor.pem`, made on first use. */
  constructor(db: Db, opts: { dir: string; node: string; anchor?: SigningAnchor; now?: () => number }) {
    this.#dir = opts.dir;
    this.#node = opts.node;
    this.#anchor = opts.anchor ?? new SigningAnchor(join(opts.dir, 'anchor.pem'), { create: true });
    this.#now = opts.now ?? Date.now;
    migrate(db, SIGNING_KEY_MIGRATIONS);
    this.#s = {
      byId: db.prepare<[string], SigningKeyRecord>('SELECT * FROM signing_keys WHERE id = ?'),
      active: db.prepare<[string, string], SigningKeyRecord>(
        'SELECT * FROM signing_keys WHERE owner = ? AND node = ? AND retired_at IS NULL',
      ),
      all: db.prepare<[], SigningKeyRecord>('SELECT * FROM signing_keys ORDER BY created_at, id'),
      insert: db.prepare(
        `INSERT INTO signing_keys (id, owner, node, public_key, created_at, retired_at, endorsement) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, node = excluded.node, public_key = excluded.public_key,
           created_at = excluded.created_at, endorsement = excluded.endorsement`,
      ),
      endorse: db.prepare('UPDATE signing_keys SET endorsement = ? WHERE id = ?'),
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
      const privateKey = existsSync(file) ? createPrivateKey(readFileSync(file)) : undefined;
      // Only a row whose public half is this private key's is this node's key (not one a database writer edited).
      if (privateKey && rawPublicKey(createPublicKey(privateKey)) === row.public_key) {
        // A key made before rows were endorsed: its private half is here, so it is this node's to endorse.
        if (!this.#anchor.endorses(row, row.endorsement)) {
          this.#s.endorse.run(this.#anchor.endorse(row), row.id);
          this.#verifying.delete(row.id);
        }
        const key = { id: row.id, privateKey };
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
    const key = {
      record: row,
      publicKey: publicKeyOf(row.public_key),
      anchored: this.#anchor.endorses(row, row.endorsement),
    };
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

  /**
   * Registers the Ed25519 public key of a caller outside (`principal`: `key:NAME`, `oidc:SUBJECT`,
   * ...), endorsed by the trust anchor like every key row: messages it signs are accepted as that
   * principal's (outside-signature.ts). The principal's key registered before is retired, as a
   * rotation retires. `publicKey`: the raw 32 bytes in base64, or an SPKI PEM. Registering the
   * active key again changes nothing; a retired one is refused.
   */
  registerPrincipalKey(principal: string, publicKey: string): { key: SigningKeyInfo; retired: SigningKeyInfo | null } {
    if (!PRINCIPAL_RE.test(principal))
      throw new CaxtonError(
        'invalid_request',
        `"${principal.slice(0, 100)}" is not a principal id; give the caller's id as GET /api/v1/whoami shows it (key:NAME, oidc:SUBJECT, cert:NAME)`,
        { field: 'principal' },
      );
    const spki = spkiOf(publicKey);
    const id = keyIdOf(spki);
    const owner = principalOwner(principal);
    const known = this.#s.byId.get(id);
    if (known) {
      if (known.owner !== owner || known.retired_at !== null)
        throw new CaxtonError(
          'invalid_request',
          `public_key: this key is ${known.retired_at !== null ? 'retired' : `registered for ${known.owner}`}; make a new key pair for ${principal}`,
          { field: 'public_key' },
        );
      return { key: signingKeyInfo(known), retired: null };
    }
    const row = this.#s.active.get(owner, OUTSIDE_NODE);
    const retired = row ? this.#retire(row) : null;
    const fields = {
      id,
      owner,
      node: OUTSIDE_NODE,
      public_key: spki.subarray(SPKI_PREFIX.length).toString('base64'),
      created_at: this.#now(),
    };
    const record: SigningKeyRecord = { ...fields, retired_at: null, endorsement: this.#anchor.endorse(fields) };
    this.#s.insert.run(id, owner, OUTSIDE_NODE, record.public_key, record.created_at, null, record.endorsement);
    this.#verifying.delete(id);
    for (const fn of this.#listeners) fn(record);
    return { key: signingKeyInfo(record), retired: retired && signingKeyInfo(retired) };
  }

  /**
   * Stores a public key another node made or retired (nothing of its private half travels); false,
   * storing nothing, when the trust anchor does not endorse it.
   */
  applyRemote(r: SigningKeyRecord): boolean {
    if (r.node === this.#node) return true;
    if (!this.#anchor.endorses(r, r.endorsement)) return false;
    // A caller's key registered on another node replaces the one registered before, here too.
    const before = r.node === OUTSIDE_NODE && r.retired_at === null ? this.#s.active.get(r.owner, r.node) : undefined;
    if (before && before.id !== r.id) {
      this.#s.retire.run(r.created_at, before.id);
      this.#verifying.delete(before.id);
    }
    this.#s.insert.run(r.id, r.owner, r.node, r.public_key, r.created_at, r.retired_at, r.endorsement);
    if (r.retired_at !== null) this.#s.retire.run(r.retired_at, r.id);
    this.#verifying.delete(r.id);
    return true;
  }

  #file(id: string): string {
    return join(this.#dir, `${id}.pem`);
  }

  #create(owner: string): ActiveSigningKey {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const spki = publicKey.export({ format: 'der', type: 'spki' });
    const id = keyIdOf(spki);
    makePrivateDir(this.#dir);
    writePrivateFileSync(this.#file(id), privateKey.export({ format: 'pem', type: 'pkcs8' }));
    const fields = {
      id,
      owner,
      node: this.#node,
      public_key: spki.subarray(SPKI_PREFIX.length).toString('base64'),
      created_at: this.#now(),
    };
    const record: SigningKeyRecord = { ...fields, retired_at: null, endorsement: this.#anchor.endorse(fields) };
    this.#s.insert.run(id, owner, this.#node, record.public_key, record.created_at, null, record.endorsement);
    const key = { id, privateKey };
    this.#active.set(owner, key);
    this.#verifying.set(id, { record, publicKey, anchored: true });
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
