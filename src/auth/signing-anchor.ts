/**
 * The trust anchor of message signing keys (ADR 0114): an Ed25519 private key in a file, never in
 * the database, that endorses every signing key row. A row is trusted only when its endorsement
 * verifies under the anchor, so a key written into `signing_keys` (or a cluster bucket) by someone
 * who cannot read the anchor file verifies nothing. The endorsement covers who the key belongs to
 * (owner and node), its public half, id and creation time — not its retirement, which only takes
 * the power to sign away.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { CaxtonError } from '../shared/errors.js';
import { makePrivateDir, writePrivateFileSync } from '../shared/private-fs.js';

/** What an anchor endorses of a signing key row. */
export interface EndorsedFields {
  id: string;
  owner: string;
  node: string;
  public_key: string;
  created_at: number;
}

const endorsedBytes = (r: EndorsedFields): Buffer =>
  Buffer.from(JSON.stringify(['caxton-signing-key-v1', r.id, r.owner, r.node, r.public_key, r.created_at]));

export class SigningAnchor {
  readonly #file: string;
  readonly #create: boolean;
  #keys: { privateKey: KeyObject; publicKey: KeyObject } | undefined;

  /**
   * `file`: the anchor's PKCS#8 PEM. `create`: made (0600) when absent — the default file in the
   * data dir; a file named in the configuration must exist, since every node of a cluster reads a
   * copy of the same one.
   */
  constructor(file: string, opts: { create: boolean }) {
    this.#file = file;
    this.#create = opts.create;
  }

  get file(): string {
    return this.#file;
  }

  /** Throws, naming the setting and what to do, when the anchor file is missing, readable by others or not a key. */
  check(): void {
    this.#load();
  }

  /** The endorsement of a row, base64. */
  endorse(r: EndorsedFields): string {
    return sign(null, endorsedBytes(r), this.#load().privateKey).toString('base64');
  }

  /** Whether `endorsement` is the anchor's over the row as it is now. */
  endorses(r: EndorsedFields, endorsement: string | null | undefined): boolean {
    if (typeof endorsement !== 'string' || endorsement === '') return false;
    const { publicKey } = this.#load();
    try {
      return verify(null, endorsedBytes(r), publicKey, Buffer.from(endorsement, 'base64'));
    } catch {
      return false;
    }
  }

  #load(): { privateKey: KeyObject; publicKey: KeyObject } {
    if (this.#keys) return this.#keys;
    if (!existsSync(this.#file)) {
      if (!this.#create)
        throw new CaxtonError(
          'invalid_config',
          `[messaging] signing_anchor: ${this.#file} does not exist; copy the same anchor file to every node (make one with: openssl genpkey -algorithm ed25519 -out anchor.pem; chmod 600 anchor.pem)`,
          { field: 'messaging.signing_anchor' },
        );
      makePrivateDir(dirname(this.#file));
      writePrivateFileSync(
        this.#file,
        generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }),
      );
    }
    if ((statSync(this.#file).mode & 0o077) !== 0)
      throw new CaxtonError(
        'invalid_config',
        `[messaging] signing_anchor: ${this.#file} can be read by other users; make it private (chmod 600)`,
        { field: 'messaging.signing_anchor' },
      );
    let privateKey: KeyObject | undefined;
    try {
      privateKey = createPrivateKey(readFileSync(this.#file));
    } catch {
      privateKey = undefined;
    }
    if (privateKey?.asymmetricKeyType !== 'ed25519')
      throw new CaxtonError(
        'invalid_config',
        `[messaging] signing_anchor: ${this.#file} is not an Ed25519 private key in PEM (make one with: openssl genpkey -algorithm ed25519)`,
        { field: 'messaging.signing_anchor' },
      );
    this.#keys = { privateKey, publicKey: createPublicKey(privateKey) };
    return this.#keys;
  }
}
