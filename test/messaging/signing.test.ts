/**
 * Signed messages on one node (ADR 0059): a real SQLite file, a real key directory, a real bus.
 * The tampering is what an attacker with the data dir would do: an UPDATE of the stored row.
 */
import { createHash, generateKeyPairSync, sign as edSign } from 'node:crypto';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentRegistry } from '../../src/agents/index.js';
import { MemoryAuditSink } from '../../src/audit/index.js';
import { SigningAnchor, SigningKeyStore, type SigningKeyRecord } from '../../src/auth/index.js';
import {
  canonicalForm,
  MessageSigner,
  SqliteSignedSeen,
  type AclMessage,
  type MessageHandler,
} from '../../src/messaging/index.js';
import { MESSAGING_MIGRATIONS, MessageBus } from '../../src/messaging/sqlite/index.js';
import { CaxtonError } from '../../src/shared/errors.js';
import { migrate, openDatabase, type Db } from '../../src/storage/index.js';
import { makeTempDir } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';
import { aclMessage, agentDef, deploy, messagingConfig } from './helpers.js';

interface Signed {
  bus: MessageBus;
  db: Db;
  keys: SigningKeyStore;
  signer: MessageSigner;
  audit: MemoryAuditSink;
  registry: AgentRegistry;
  dir: string;
  close(): Promise<void>;
}

const open: Signed[] = [];

function openSigned(handler: MessageHandler, o: { dir?: string; registry?: AgentRegistry } = {}): Signed {
  const dir = o.dir ?? makeTempDir('caxton-sign-');
  const db = openDatabase(dir);
  migrate(db, MESSAGING_MIGRATIONS);
  const keys = new SigningKeyStore(db, { dir: join(dir, 'signing'), node: 'local' });
  const seen = new SqliteSignedSeen(join(dir, 'signing'), { ttlMs: 3_600_000 });
  const signer = new MessageSigner(keys, { seen });
  const audit = new MemoryAuditSink();
  const registry = o.registry ?? new AgentRegistry();
  const bus = new MessageBus({
    db,
    registry,
    config: messagingConfig({ signing: true, max_attempts: 1, retry_base: 10, retry_max: 20 }),
    signer,
    audit,
  });
  bus.setAgentHandler(handler);
  bus.start();
  const s: Signed = {
    bus,
    db,
    keys,
    signer,
    audit,
    registry,
    dir,
    async close() {
      await bus.close();
      seen.close();
      db.close();
    },
  };
  open.push(s);
  return s;
}

afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

/**
 * Changes a stored message's content, in the row itself, and nothing else of its body: its ids are
 * hex, so a replace over the whole body could change them too (`abc` in a conversation id).
 */
function tamper(db: Db, id: string, from: string, to: string): void {
  const r = db
    .prepare(
      `UPDATE messages SET body = json_set(body, '$.content', replace(json_extract(body, '$.content'), ?, ?))
       WHERE id = ? AND instr(json_extract(body, '$.content'), ?) > 0`,
    )
    .run(from, to, id, from);
  expect(r.changes).toBe(1);
}

describe('signed messages', () => {
  it('signs every stored message: a caller’s with the node key, an agent’s reply with its own', async () => {
    const s = openSigned(() => ({ content: 'pong' }));
    deploy(s.registry, agentDef('echo', ['echo']));
    const r = await s.bus.submit({ performative: 'request', capability: 'echo', content: 'ping' });
    await s.bus.wait(r.conversation_id, 5000);
    const { messages } = await s.bus.reads.getConversation(r.conversation_id);
    const [req, ...replies] = messages.map((x) => x.message);
    expect(s.signer.signer(req!)).toMatchObject({ owner: 'node', node: 'local', valid: true });
    const answer = replies.find((m) => m.sender === 'echo')!;
    expect(s.signer.signer(answer)).toMatchObject({ owner: 'agent:echo', valid: true });
    expect(answer.signature!.key).not.toBe(req!.signature!.key);
    // Private halves are files of their own, 0600 in a 0700 directory; the table holds public halves only.
    expect(statSync(join(s.dir, 'signing')).mode & 0o777).toBe(0o700);
    expect(statSync(join(s.dir, 'signing', `${answer.signature!.key}.pem`)).mode & 0o777).toBe(0o600);
    expect(JSON.stringify(s.db.prepare('SELECT * FROM signing_keys').all())).not.toMatch(/PRIVATE/);
  });

  it('refuses a message whose stored content changed while the receiver was busy: signature_invalid, audited, dead-lettered', async () => {
    let release!: () => void;
    const busy = new Promise<void>((r) => (release = r));
    const seen: string[] = [];
    const s = openSigned(async (m) => {
      seen.push(String(m.content));
      if (m.content === 'first') await busy;
      return { content: 'done' };
    });
    deploy(s.registry, agentDef('slow', ['slow'], '[messaging]\nmax_concurrency = 1'));
    const first = await s.bus.submit({ performative: 'request', receivers: ['slow'], content: 'first' });
    const second = await s.bus.submit({ performative: 'request', receivers: ['slow'], content: 'pay 100' });
    await s.bus.settled();
    tamper(s.db, second.id, 'pay 100', 'pay 900');
    release();
    await s.bus.wait(first.conversation_id, 5000);
    const conv = await s.bus.wait(second.conversation_id, 5000);
    expect(conv.state).toBe('failed');
    expect(seen).toEqual(['first']);
    const dl = await s.bus.reads.deadLetters();
    expect(dl.items).toHaveLength(1);
    expect(dl.items[0]!.message_id).toBe(second.id);
    expect(dl.items[0]!.last_error).toMatch(/^signature_invalid: the signature does not match the message/);
    const { messages } = await s.bus.reads.getConversation(second.conversation_id);
    expect(messages.at(-1)!.message.content).toMatchObject({ reason: 'signature_invalid' });
    expect(s.audit.entries).toEqual([
      expect.objectContaining({
        action: 'message.signature_invalid',
        target: second.id,
        outcome: 'denied',
        details: expect.objectContaining({ receiver: 'slow', key: expect.stringMatching(/^sk_/) }),
      }),
    ]);
    const view = await s.bus.reads.getMessage(second.id);
    expect(s.signer.signer(view!.message)).toMatchObject({ owner: 'node', valid: false });
  });

  it('verifies a dead letter again when it is replayed: one changed in the store is refused', async () => {
    let calls = 0;
    const s = openSigned(() => {
      calls++;
      throw new CaxtonError('llm_error', 'provider down');
    });
    deploy(s.registry, agentDef('flaky', ['flaky']));
    const r = await s.bus.submit({ performative: 'request', receivers: ['flaky'], content: 'try 1' });
    await s.bus.wait(r.conversation_id, 5000);
    expect(calls).toBe(1);
    const [dead] = (await s.bus.reads.deadLetters()).items;
    expect(dead!.last_error).toMatch(/provider down/);
    tamper(s.db, r.id, 'try 1', 'try 2');
    await s.bus.replay(dead!.id);
    await s.bus.wait(r.conversation_id, 5000);
    await s.bus.settled();
    expect(calls).toBe(1);
    const again = await s.bus.reads.deadLetters();
    expect(again.items[0]!.last_error).toMatch(/^signature_invalid/);
  });

  it('refuses after a restart a pending message changed or stripped of its signature while the node was down', async () => {
    const dir = makeTempDir('caxton-sign-');
    const registry = new AgentRegistry();
    deploy(registry, agentDef('later', ['later']));
    const seen: unknown[] = [];
    const a = openSigned(() => new Promise(() => undefined), { dir, registry });
    // Its conversation id holds the letters its content has changed: the tamper leaves the id alone.
    const changed = await a.bus.submit({
      performative: 'inform',
      receivers: ['later'],
      content: 'abc',
      conversation_id: 'conv_01a22b0d25c4000001ecbbc902abc591a3',
    });
    const stripped = await a.bus.submit({ performative: 'inform', receivers: ['later'], content: 'xyz' });
    const intact = await a.bus.submit({ performative: 'inform', receivers: ['later'], content: 'kept' });
    await a.bus.settled();
    await a.close();
    open.splice(open.indexOf(a), 1);
    const db = openDatabase(dir);
    tamper(db, changed.id, 'abc', 'abd');
    db.prepare("UPDATE messages SET body = json_remove(body, '$.signature') WHERE id = ?").run(stripped.id);
    db.close();
    const b = openSigned(
      (m) => {
        seen.push(m.content);
        return undefined;
      },
      { dir, registry },
    );
    await b.bus.wait(intact.conversation_id, 5000);
    await b.bus.wait(changed.conversation_id, 5000);
    await b.bus.settled();
    expect(seen).toEqual(['kept']);
    const errors = (await b.bus.reads.deadLetters()).items.map((d) => [d.message_id, d.last_error]);
    expect(errors).toEqual(
      expect.arrayContaining([
        [changed.id, expect.stringMatching(/^signature_invalid: the signature does not match/)],
        [stripped.id, 'signature_invalid: the message carries no signature'],
      ]),
    );
  });

  it('keeps verifying what an old key signed after a rotation; new messages carry the new key', () => {
    const dir = makeTempDir('caxton-sign-');
    const db = openDatabase(dir);
    const keys = new SigningKeyStore(db, { dir: join(dir, 'signing'), node: 'local' });
    const signer = new MessageSigner(keys);
    const before = signer.sign(aclMessage({ content: 'before' }), false);
    const { key, retired } = keys.rotate('node');
    expect(retired).toMatchObject({ id: before.signature!.key, state: 'retired' });
    expect(key.state).toBe('active');
    const after = signer.sign(aclMessage({ content: 'after' }), false);
    expect(after.signature!.key).toBe(key.id);
    expect(signer.verify(before)).toMatchObject({ ok: true, key: retired!.id });
    expect(signer.verify(after)).toMatchObject({ ok: true, key: key.id });
    // The retired key's private half is gone: it can sign nothing more.
    expect(() => statSync(join(dir, 'signing', `${retired!.id}.pem`))).toThrow();
    expect(() => keys.rotate('agents:x')).toThrow(/not a signing key owner/);
    db.close();
  });

  it('covers what the message says, not its trace context; an agent key signs only for its agent', () => {
    const dir = makeTempDir('caxton-sign-');
    const db = openDatabase(dir);
    const signer = new MessageSigner(new SigningKeyStore(db, { dir: join(dir, 'signing'), node: 'local' }));
    const m = signer.sign(aclMessage({ sender: 'alpha', content: { b: 1, a: [true, null] } }), true);
    const traced: AclMessage = { ...m, trace_context: { traceparent: '00-'.padEnd(55, '1') } };
    expect(signer.verify(traced).ok).toBe(true);
    // Key order of JSON content does not matter; its values do.
    expect(signer.verify({ ...m, content: { a: [true, null], b: 1 } }).ok).toBe(true);
    expect(signer.verify({ ...m, content: { a: [true, null], b: 2 } }).ok).toBe(false);
    for (const change of [{ sender: 'beta' }, { on_behalf_of: 'key:admin' }, { receivers: ['x'] }, { chain: ['y'] }])
      expect(signer.verify({ ...m, ...change } as AclMessage)).toMatchObject({ ok: false });
    expect(signer.verify({ ...m, sender: 'beta' })).toMatchObject({ problem: /key of agent:alpha, not of its sender/ });
    expect(canonicalForm(m).startsWith('["caxton-acl-v1",')).toBe(true);
    db.close();
  });
});

/** What a database writer who cannot read the data dir does: a key pair of their own, its public half in `signing_keys`. */
function insertOwnKey(db: Db, row: Partial<SigningKeyRecord> = {}) {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const spki = publicKey.export({ format: 'der', type: 'spki' });
  const id = `sk_${createHash('sha256').update(spki).digest('base64url').slice(0, 22)}`;
  db.prepare(
    'INSERT INTO signing_keys (id, owner, node, public_key, created_at, retired_at, endorsement) VALUES (?, ?, ?, ?, ?, ?, ?)',
  ).run(
    id,
    row.owner ?? 'node',
    row.node ?? 'local',
    spki.subarray(12).toString('base64'),
    row.created_at ?? 1,
    row.retired_at ?? 2,
    row.endorsement ?? null,
  );
  return {
    id,
    signWith: (m: AclMessage) => edSign(null, Buffer.from(canonicalForm(m)), privateKey).toString('base64'),
  };
}

describe('signing trust anchored outside the database (ADR 0114)', () => {
  it('refuses a dead letter re-signed as the admin with a key inserted into signing_keys: audited, never run', async () => {
    const ran: AclMessage[] = [];
    const s = openSigned((m) => {
      ran.push(m);
      if (ran.length === 1) throw new CaxtonError('llm_error', 'provider down');
      return { content: 'done' };
    });
    deploy(s.registry, agentDef('payer', ['payer']));
    const r = await s.bus.submit({ performative: 'request', receivers: ['payer'], content: 'pay 1' });
    await s.bus.wait(r.conversation_id, 5000);
    const [dead] = (await s.bus.reads.deadLetters()).items;
    // A retired key of the node, as a rotation leaves behind, endorsed by nothing; and one with another row's endorsement.
    const real = s.db.prepare<[], SigningKeyRecord>("SELECT * FROM signing_keys WHERE owner = 'node'").get()!;
    for (const endorsement of [null, real.endorsement]) {
      const mine = insertOwnKey(s.db, { endorsement });
      const stored = (await s.bus.reads.getMessage(r.id))!.message;
      const forged: AclMessage = { ...stored, on_behalf_of: 'key:admin', content: 'pay 1000', signature: undefined };
      const body = { ...forged, signature: { key: mine.id, value: mine.signWith(forged) } };
      s.db.prepare('UPDATE messages SET body = ? WHERE id = ?').run(JSON.stringify(body), r.id);
      s.audit.entries.length = 0;
      const [again] = (await s.bus.reads.deadLetters()).items;
      await s.bus.replay(again!.id);
      await s.bus.wait(r.conversation_id, 5000);
      await s.bus.settled();
      expect(ran).toHaveLength(1);
      const [refused] = (await s.bus.reads.deadLetters()).items;
      expect(refused!.last_error).toMatch(
        /^signature_invalid: signing key sk_\S+ is not endorsed by this node's trust anchor/,
      );
      expect(s.audit.entries).toEqual([
        expect.objectContaining({
          action: 'message.signature_invalid',
          target: r.id,
          outcome: 'denied',
          details: expect.objectContaining({ key: mine.id, problem: expect.stringMatching(/not endorsed/) }),
        }),
      ]);
      expect(s.signer.signer(body as AclMessage)).toMatchObject({ valid: false, problem: /not endorsed/ });
    }
    expect(dead).toBeDefined();
  });

  it('refuses a key row whose owner was changed; keeps rotation working; the anchor is a 0600 file outside the database', () => {
    const dir = makeTempDir('caxton-sign-');
    const db = openDatabase(dir);
    const keys = new SigningKeyStore(db, { dir: join(dir, 'signing'), node: 'local' });
    const signer = new MessageSigner(keys);
    const byAlpha = signer.sign(aclMessage({ sender: 'alpha', content: 'hi' }), true);
    const before = signer.sign(aclMessage({ content: 'before' }), false);
    keys.rotate('node');
    expect(statSync(join(dir, 'signing', 'anchor.pem')).mode & 0o777).toBe(0o600);
    // Another store with the same table but a fresh view: the retired key, endorsed, still verifies.
    const fresh = new MessageSigner(new SigningKeyStore(db, { dir: join(dir, 'signing'), node: 'local' }));
    expect(fresh.verify(before)).toMatchObject({ ok: true });
    // Re-owning alpha's key as the node's would make it sign for any caller: the endorsement no longer verifies.
    db.prepare("UPDATE signing_keys SET owner = 'node', retired_at = 1 WHERE id = ?").run(byAlpha.signature!.key);
    const after = new MessageSigner(new SigningKeyStore(db, { dir: join(dir, 'signing'), node: 'local' }));
    expect(after.verify({ ...byAlpha, sender: 'user' })).toMatchObject({ ok: false, problem: /not endorsed/ });
    db.close();
  });

  it('endorses a key of this node made before endorsements, only when its private half matches the row', () => {
    const dir = makeTempDir('caxton-sign-');
    const db = openDatabase(dir);
    const store = () => new SigningKeyStore(db, { dir: join(dir, 'signing'), node: 'local' });
    const old = new MessageSigner(store()).sign(aclMessage({ content: 'old' }), false);
    db.prepare('UPDATE signing_keys SET endorsement = NULL').run();
    const upgraded = store();
    expect(new MessageSigner(upgraded).verify(old)).toMatchObject({ ok: false, problem: /not endorsed/ });
    upgraded.signingKey('node');
    expect(new MessageSigner(upgraded).verify(old)).toMatchObject({ ok: true });
    // The active row's public half swapped for a writer's own: not endorsed, and replaced by a fresh key.
    const mine = insertOwnKey(db, { owner: 'agent:other' });
    const theirs = db
      .prepare<[string], { public_key: string }>('SELECT public_key FROM signing_keys WHERE id = ?')
      .get(mine.id)!;
    db.prepare("UPDATE signing_keys SET public_key = ?, endorsement = NULL WHERE owner = 'node'").run(
      theirs.public_key,
    );
    const next = store();
    expect(next.signingKey('node').id).not.toBe(old.signature!.key);
    expect(new MessageSigner(next).verify(old)).toMatchObject({ ok: false, problem: /not endorsed/ });
    db.close();
  });

  it('a key endorsed by another anchor verifies nothing, from the table or from another node', () => {
    const dir = makeTempDir('caxton-sign-');
    const db = openDatabase(dir);
    const keys = new SigningKeyStore(db, { dir: join(dir, 'signing'), node: 'a' });
    const otherDir = makeTempDir('caxton-sign-');
    const otherDb = openDatabase(otherDir);
    const other = new SigningKeyStore(otherDb, { dir: join(otherDir, 'signing'), node: 'b' });
    const m = new MessageSigner(other).sign(aclMessage({ content: 'from b' }), false);
    const rec = other.records()[0]!;
    expect(keys.applyRemote(rec)).toBe(false);
    expect(new MessageSigner(keys).verify(m)).toMatchObject({ ok: false, unknownKey: true });
    // Shared anchor file: the same key is accepted.
    const shared = join(makeTempDir('caxton-anchor-'), 'anchor.pem');
    writeFileSync(shared, generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }), {
      mode: 0o600,
    });
    const anchored = (d: Db, at: string, node: string) =>
      new SigningKeyStore(d, { dir: join(at, 'signing2'), node, anchor: new SigningAnchor(shared, { create: false }) });
    const a2 = anchored(db, dir, 'a');
    const b2 = anchored(otherDb, otherDir, 'b');
    const m2 = new MessageSigner(b2).sign(aclMessage({ content: 'from b' }), false);
    expect(a2.applyRemote(b2.records().find((r) => r.id === m2.signature!.key)!)).toBe(true);
    expect(new MessageSigner(a2).verify(m2)).toMatchObject({ ok: true, node: 'b' });
    // A configured anchor that is missing or readable by others stops the start, naming the setting.
    expect(() => new SigningAnchor(join(dir, 'none.pem'), { create: false }).check()).toThrow(
      /signing_anchor: .*none\.pem does not exist/,
    );
    writeFileSync(join(dir, 'open.pem'), 'x', { mode: 0o644 });
    expect(() => new SigningAnchor(join(dir, 'open.pem'), { create: false }).check()).toThrow(/chmod 600/);
    db.close();
    otherDb.close();
  });

  it('the node key never verifies as an agent: a message with an agent sender signed by the node is refused', () => {
    const dir = makeTempDir('caxton-sign-');
    const db = openDatabase(dir);
    const signer = new MessageSigner(new SigningKeyStore(db, { dir: join(dir, 'signing'), node: 'local' }));
    signer.setAgents((name) => name === 'alpha');
    const asAgent = signer.sign(aclMessage({ sender: 'alpha', content: 'pay' }), false);
    expect(signer.verify(asAgent)).toMatchObject({ ok: false, problem: /key of node, not of its sender "alpha"/ });
    expect(signer.verify(signer.sign(aclMessage({ sender: 'alpha' }), true))).toMatchObject({ ok: true });
    expect(signer.verify(signer.sign(aclMessage({ sender: 'user' }), false))).toMatchObject({
      ok: true,
      owner: 'node',
    });
    db.close();
  });
});

describe('a signed message is delivered at most once to each receiver (ADR 0114)', () => {
  it('refuses a delivered row set back to pending, or copied, after a restart: audited, dead-lettered, never run again', async () => {
    const dir = makeTempDir('caxton-sign-');
    const registry = new AgentRegistry();
    deploy(registry, agentDef('payee', ['payee']));
    const seen: unknown[] = [];
    const handler: MessageHandler = (m) => {
      seen.push(m.content);
      return undefined;
    };
    const a = openSigned(handler, { dir, registry });
    const r = await a.bus.submit({ performative: 'inform', receivers: ['payee'], content: 'pay once' });
    await a.bus.wait(r.conversation_id, 5000);
    await a.bus.settled();
    expect(seen).toEqual(['pay once']);
    await a.close();
    open.splice(open.indexOf(a), 1);
    // What a database writer does to have it paid again: the delivered row set back to pending, and a copy of it.
    const db = openDatabase(dir);
    const reset = db
      .prepare("UPDATE deliveries SET state = 'pending', attempts = 0, next_at = 0 WHERE message_id = ?")
      .run(r.id);
    expect(reset.changes).toBe(1);
    db.prepare(
      "INSERT INTO deliveries (message_id, receiver, state, updated_at) VALUES (?, 'payee', 'pending', '2026-01-01T00:00:00.000Z')",
    ).run(r.id);
    db.close();
    const b = openSigned(handler, { dir, registry });
    await waitUntil(async () => (await b.bus.reads.deadLetters()).items.length === 2);
    await b.bus.settled();
    expect(seen).toEqual(['pay once']);
    for (const dl of (await b.bus.reads.deadLetters()).items)
      expect(dl).toMatchObject({ message_id: r.id, last_error: 'replayed: payee has had this signed message already' });
    expect(b.audit.entries.filter((e) => e.action === 'message.replay_refused')).toEqual([
      expect.objectContaining({
        target: r.id,
        outcome: 'denied',
        details: expect.objectContaining({ receiver: 'payee' }),
      }),
      expect.objectContaining({ target: r.id, outcome: 'denied' }),
    ]);
    // A new signed message to the same receiver is delivered as before.
    const next = await b.bus.submit({ performative: 'inform', receivers: ['payee'], content: 'pay next' });
    await b.bus.wait(next.conversation_id, 5000);
    await b.bus.settled();
    expect(seen).toEqual(['pay once', 'pay next']);
  });
});

describe('a node killed between recording the delivery and acknowledging it (ADR 0115)', () => {
  it('leaves the row pending, and its redelivery after the restart is refused as a replay: the receiver ran once', async () => {
    const dir = makeTempDir('caxton-sign-');
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(import.meta.dirname, 'signed-crash-child.ts'), dir],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const [, signal] = (await once(child, 'exit')) as [number | null, string | null];
    expect(signal, err).toBe('SIGKILL');
    expect(readFileSync(join(dir, 'runs.log'), 'utf8')).toBe('pay-once\n');
    // Killed after the seen-set took it and before the acknowledgement committed.
    const db = openDatabase(dir);
    expect(db.prepare("SELECT state FROM deliveries WHERE message_id = 'pay-once'").get()).toEqual({
      state: 'pending',
    });
    db.close();
    const registry = new AgentRegistry();
    deploy(registry, agentDef('payer', []));
    const ran: string[] = [];
    const b = openSigned(
      (m) => {
        ran.push(m.id);
        return { performative: 'inform', content: 'paid again' };
      },
      { dir, registry },
    );
    await waitUntil(async () => (await b.bus.reads.deadLetters()).items.length === 1);
    await b.bus.settled();
    expect(ran).toEqual([]);
    expect((await b.bus.reads.deadLetters()).items[0]).toMatchObject({
      message_id: 'pay-once',
      last_error: 'replayed: payer has had this signed message already',
    });
    expect(b.audit.entries.filter((e) => e.action === 'message.replay_refused')).toHaveLength(1);
  }, 60_000);
});
