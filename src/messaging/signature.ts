/**
 * Signed messages (ADR 0059): with `[messaging] signing = true` every message the engine stores is
 * signed with Ed25519 over its canonical form, by its sender's key (an agent's own, else the
 * node's), and every delivery verifies the stored message before the receiver runs it. A key
 * verifies only when the trust anchor endorses its row (ADR 0114), and the node's key never
 * verifies a message whose sender is an agent.
 */
import { sign as edSign, verify as edVerify } from 'node:crypto';
import { agentOwner, NODE_OWNER, type SigningKeyStore } from '../auth/index.js';
import { scrubSecrets } from '../shared/secrets.js';
import type { AclMessage, Content } from './message.js';
import type { SignedSeen } from './signed-seen.js';

/** The error code and dead-letter reason of a message whose signature does not verify. */
export const SIGNATURE_INVALID = 'signature_invalid';

/** The error code and dead-letter reason of a signed message its receiver has had already. */
export const REPLAYED = 'replayed';

/** Who signed a message, as the message view shows it. */
export interface Signer {
  key: string;
  owner: string;
  node: string;
  valid: boolean;
  /** Why it does not verify (absent when valid). */
  problem?: string;
}

export type SignatureCheck =
  | { ok: true; key: string; owner: string; node: string }
  | { ok: false; key: string | undefined; problem: string; unknownKey?: true };

/** Content with every object's keys sorted, so two equal values have one text. */
function sorted(c: Content): Content {
  if (c === null || typeof c !== 'object') return c;
  if (Array.isArray(c)) return c.map(sorted);
  const out: Record<string, Content> = {};
  for (const k of Object.keys(c).sort()) out[k] = sorted(c[k]!);
  return out;
}

const orNull = <T>(v: T | undefined): T | null => (v === undefined ? null : v);

/**
 * The bytes a signature covers: a JSON array in a fixed order of every field that says who sends
 * what to whom for whom — not the trace context (observability, rewritten when a message is
 * routed) and not the signature itself. Object keys (content, params) are sorted; an absent field
 * is null. Scrubbed of the configured secrets, as the stored row is, so the stored copy verifies.
 */
export function canonicalForm(m: AclMessage): string {
  const params: Record<string, string> = {};
  for (const k of Object.keys(m.params).sort()) params[k] = m.params[k]!;
  return scrubSecrets(
    JSON.stringify([
      'caxton-acl-v1',
      m.id,
      m.performative,
      m.sender,
      m.receivers,
      orNull(m.capability),
      orNull(m.reply_to),
      typeof m.content === 'object' && m.content !== null ? sorted(m.content) : m.content,
      orNull(m.language),
      orNull(m.encoding),
      orNull(m.ontology),
      orNull(m.protocol),
      m.conversation_id,
      orNull(m.reply_with),
      orNull(m.in_reply_to),
      orNull(m.reply_by),
      params,
      m.timestamp,
      m.chain,
      orNull(m.on_behalf_of),
      // Only when present: what was signed before messages carried it keeps its canonical form.
      ...(m.signed_by ? [[m.signed_by.key, m.signed_by.principal, m.signed_by.signed_at, m.signed_by.value]] : []),
    ]),
  );
}

/** Signs messages with this node's keys and verifies them with every public key the node knows. */
export class MessageSigner {
  readonly #keys: SigningKeyStore;
  #lookup: ((keyId: string) => Promise<boolean>) | undefined;
  #isAgent: (name: string) => boolean = () => false;

  /** Which receiver has had which signed message: a delivery is refused when its receiver has had it. */
  readonly seen: SignedSeen | undefined;

  constructor(keys: SigningKeyStore, opts: { seen?: SignedSeen } = {}) {
    this.#keys = keys;
    this.seen = opts.seen;
  }

  /** The keys signatures are checked against (a caller's registered key among them). */
  get keys(): SigningKeyStore {
    return this.#keys;
  }

  /**
   * Where a key this node does not know yet is looked for before a delivery is refused (a cluster
   * node reads the other nodes' keys; a key made a moment ago elsewhere may not have arrived).
   */
  setKeyLookup(lookup: ((keyId: string) => Promise<boolean>) | undefined): void {
    this.#lookup = lookup;
  }

  /** Which senders are agents: their messages verify only under their own key, never the node's. */
  setAgents(isAgent: (name: string) => boolean): void {
    this.#isAgent = isAgent;
  }

  /** `verify`, after asking the key lookup for a key not known here. */
  async verifyDelivery(m: AclMessage): Promise<SignatureCheck> {
    const c = this.verify(m);
    if (c.ok || !c.unknownKey || !this.#lookup || c.key === undefined) return c;
    return (await this.#lookup(c.key)) ? this.verify(m) : c;
  }

  /** `m` with its signature: by the sender's own key when the sender is an agent, else the node's. */
  sign(m: AclMessage, senderIsAgent: boolean): AclMessage {
    const k = this.#keys.signingKey(senderIsAgent ? agentOwner(m.sender) : NODE_OWNER);
    const value = edSign(null, Buffer.from(canonicalForm(m)), k.privateKey).toString('base64');
    return { ...m, signature: { key: k.id, value } };
  }

  /** Whether `m` carries a signature of a known key, by its sender (or a node), over what it says now. */
  verify(m: AclMessage): SignatureCheck {
    const sig = m.signature;
    if (!sig || typeof sig.key !== 'string' || typeof sig.value !== 'string')
      return { ok: false, key: undefined, problem: 'the message carries no signature' };
    const k = this.#keys.verifyingKey(sig.key);
    if (!k)
      return { ok: false, key: sig.key, problem: `signing key ${sig.key} is not known on this node`, unknownKey: true };
    if (!k.anchored)
      return {
        ok: false,
        key: sig.key,
        problem: `signing key ${sig.key} is not endorsed by this node's trust anchor: a key the database alone holds verifies nothing`,
      };
    const { owner, node } = k.record;
    const own = owner === agentOwner(m.sender);
    if (!own && (owner !== NODE_OWNER || this.#isAgent(m.sender)))
      return { ok: false, key: sig.key, problem: `signed with the key of ${owner}, not of its sender "${m.sender}"` };
    let ok: boolean;
    try {
      ok = edVerify(null, Buffer.from(canonicalForm(m)), k.publicKey, Buffer.from(sig.value, 'base64'));
    } catch {
      ok = false;
    }
    return ok
      ? { ok: true, key: sig.key, owner, node }
      : {
          ok: false,
          key: sig.key,
          problem: 'the signature does not match the message: it changed after it was signed',
        };
  }

  /** The signer as the message view shows it (undefined: the message is not signed). */
  signer(m: AclMessage): Signer | undefined {
    if (!m.signature) return undefined;
    const c = this.verify(m);
    if (c.ok) return { key: c.key, owner: c.owner, node: c.node, valid: true };
    const rec = this.#keys.verifyingKey(m.signature.key)?.record;
    return {
      key: m.signature.key,
      owner: rec?.owner ?? 'unknown',
      node: rec?.node ?? 'unknown',
      valid: false,
      problem: c.problem,
    };
  }
}
