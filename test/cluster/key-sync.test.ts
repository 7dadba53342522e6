/**
 * API keys across nodes (ADR 0044) on a real `nats-server -js` started by the test: each node is an
 * ApiKeyStore on its own SQLite file with its own NATS connection, as `caxton serve` nodes have. A
 * key created on one node verifies on another; a revoke and a rotate elsewhere take effect on a
 * key verified before; a node that starts later gets every key before start() resolves; a revoke
 * and a rotate of one key on two nodes at once end revoked everywhere, the bucket included;
 * entries that are not keys and active-name clashes are skipped with a warning, and sync goes on.
 */
import { Kvm } from '@nats-io/kv';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ApiKeyStore } from '../../src/auth/index.js';
import { KeySync } from '../../src/cluster/index.js';
import { openDatabase, type Db } from '../../src/storage/index.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { hasSystem } from '../helpers/system.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { sleep, waitUntil } from '../helpers/wait.js';

const run = hasSystem('nats-server');

let nats: NatsServer;
const connections: NatsConnection[] = [];
const syncs: KeySync[] = [];
const dbs: Db[] = [];
let buckets = 0;

beforeAll(async () => {
  if (run) nats = await startNatsServer();
});

afterEach(async () => {
  for (const s of syncs.splice(0)) await s.stop();
});

afterAll(async () => {
  for (const nc of connections) await nc.close().catch(() => {});
  for (const db of dbs) db.close();
  await nats?.stop();
  removeTempDirs();
});

interface Node {
  keys: ApiKeyStore;
  sync: KeySync;
  warnings: string[];
  nc: NatsConnection;
}

/** An ApiKeyStore on a SQLite file of its own (on the clock `now`, when given). */
function keyStore(now?: () => number): ApiKeyStore {
  const db = openDatabase(makeTempDir('caxton-key-sync-'));
  dbs.push(db);
  return new ApiKeyStore(db, now ? { now } : {});
}

async function node(name: string, bucket: string, keys = keyStore(), watchCheckMs?: number): Promise<Node> {
  const nc = await connect({ servers: nats.url });
  connections.push(nc);
  const warnings: string[] = [];
  const sync = await KeySync.start({
    nc,
    bucket,
    node: name,
    keys,
    log: { warn: (_o, msg) => warnings.push(msg) },
    ...(watchCheckMs !== undefined && { watchCheckMs }),
  });
  syncs.push(sync);
  return { keys, sync, warnings, nc };
}

const bucket = () => `test_keys_${++buckets}`;

/** The key's principal name on that node, or the reason it is refused there. */
function verifies(keys: ApiKeyStore, secret: string): string {
  try {
    return keys.verify(secret).name;
  } catch (e) {
    return (e as Error).message;
  }
}

async function bucketEntries(nc: NatsConnection, b: string): Promise<Map<string, Record<string, unknown>>> {
  const kv = await new Kvm(nc).open(b);
  const out = new Map<string, Record<string, unknown>>();
  for await (const k of await kv.keys()) {
    const e = await kv.get(k);
    if (e?.operation === 'PUT') out.set(k, e.json<Record<string, unknown>>());
  }
  return out;
}

describe.skipIf(!run)('API keys across nodes on a JetStream key-value bucket', () => {
  it('a key created on one node verifies on the two others, with its role, scope and limits; its last use reaches the node that never verified it', async () => {
    const b = bucket();
    const [a, n2, n3] = [await node('node-a', b), await node('node-b', b), await node('node-c', b)];
    const { key, secret } = a.keys.create({
      name: 'ci',
      role: 'operator',
      scope: { agents: ['support-*'] },
      limits: { requests_per_minute: 60 },
      createdBy: 'key:admin',
    });
    for (const n of [n2, n3])
      await waitUntil(() => verifies(n.keys, secret) === 'ci', { what: 'the key verifying on every node' });
    expect(n3.keys.verify(secret)).toMatchObject({
      id: 'key:ci',
      role: 'operator',
      scope: { agents: ['support-*'] },
      keyId: key.id,
    });
    expect(n3.keys.get('ci')).toMatchObject({
      id: key.id,
      created_at: key.created_at,
      created_by: 'key:admin',
      state: 'active',
      limits: { requests_per_minute: 60 },
    });
    expect(n3.keys.limitsOf(key.id)).toEqual({ requests_per_minute: 60 });
    // Used on node-b and node-c only (the waits above verified it there, milliseconds apart): node-a learns a use
    // between their first and their last (a node tells the others of a use at most once a minute per key).
    const first = (n: Node) => n.keys.get('ci')!.last_used_at!;
    const [earliest, latest] = [first(n2), first(n3)].sort();
    await waitUntil(
      () => {
        const seen = a.keys.get('ci')?.last_used_at;
        return seen != null && seen >= earliest! && seen <= latest!;
      },
      { what: 'a use of the key on node-a' },
    );
    // The bucket holds its hash, never its secret.
    const entry = (await bucketEntries(a.nc, b)).get(key.id)!;
    expect(entry).toMatchObject({ node: 'node-a', id: key.id, name: 'ci', role: 'operator', revoked_at: null });
    expect(Buffer.from(entry.hash as string, 'base64')).toHaveLength(32);
    expect(JSON.stringify(entry)).not.toContain(secret.slice(-32));
    expect(entry).not.toHaveProperty('last_used_at');
    expect([a.warnings, n2.warnings, n3.warnings]).toEqual([[], [], []]);
  });

  it('a key revoked on another node stops verifying here, though verified here before', async () => {
    const b = bucket();
    const [a, n2] = [await node('node-a', b), await node('node-b', b)];
    const { secret } = a.keys.create({ name: 'deployer', role: 'developer' });
    expect(verifies(a.keys, secret)).toBe('deployer');
    await waitUntil(() => n2.keys.get('deployer'), { what: 'the key on node-b' });
    n2.keys.revoke('deployer');
    await waitUntil(() => verifies(a.keys, secret) === 'API key "deployer" was revoked', {
      what: 'the revocation on node-a',
    });
    expect(a.keys.get('deployer')).toBeUndefined(); // no active key of that name any more
    expect(a.keys.list({ all: true })).toMatchObject([{ name: 'deployer', state: 'revoked' }]);
    // The name is free again on every node: a new key of that name travels too.
    const again = a.keys.create({ name: 'deployer', role: 'viewer' });
    await waitUntil(() => verifies(n2.keys, again.secret) === 'deployer', { what: 'the new key on node-b' });
    expect([a.warnings, n2.warnings]).toEqual([[], []]);
  });

  it('a revocation reaches a node whose watch the server stopped serving (its consumer lost): the watch is started again', async () => {
    const b = bucket();
    const [a, n2] = [await node('node-a', b, keyStore(), 200), await node('node-b', b)];
    const { secret } = a.keys.create({ name: 'ci', role: 'developer' });
    await waitUntil(() => n2.keys.get('ci'), { what: 'the key on node-b' });
    // node-a's watches stop receiving: the server lost their consumers (nats.js does not notice).
    const jsm = await jetstreamManager(a.nc);
    for (const stream of [`KV_${b}`, `KV_${b}_used`])
      for await (const c of jsm.consumers.list(stream)) await jsm.consumers.delete(stream, c.name);
    n2.keys.revoke('ci');
    // Before: the key went on verifying on node-a (nothing delivered for as long as the test waited).
    await waitUntil(() => verifies(a.keys, secret) === 'API key "ci" was revoked', {
      timeoutMs: 5_000,
      what: 'the revocation on node-a',
    });
    // The new watch applies the bucket's entries before its start resolves and the restart is said.
    await waitUntil(() => a.warnings.includes('a watch of the cluster API keys was started again'), {
      timeoutMs: 5_000,
      what: "node-a's warning that its watch was started again",
    });
  });

  it('a key rotated on one node: the old secret fails and the new one works on another', async () => {
    const b = bucket();
    const [a, n2] = [await node('node-a', b), await node('node-b', b)];
    const { key, secret } = a.keys.create({ name: 'ci', role: 'developer' });
    await waitUntil(() => verifies(n2.keys, secret) === 'ci', { what: 'the key verifying on node-b' });
    const rotated = a.keys.rotate('ci');
    await waitUntil(() => verifies(n2.keys, rotated.secret) === 'ci', { what: 'the new secret on node-b' });
    expect(verifies(n2.keys, secret)).toBe('unknown API key');
    expect(n2.keys.get('ci')).toMatchObject({ id: key.id, rotated_at: rotated.key.rotated_at, state: 'active' });
  });

  it('a node that starts later gets every key, revoked ones too, before start() resolves, and publishes its own', async () => {
    const b = bucket();
    const a = await node('node-a', b);
    const kept = a.keys.create({ name: 'kept', role: 'viewer' });
    const gone = a.keys.create({ name: 'gone', role: 'admin' });
    a.keys.revoke('gone');
    const turned = a.keys.create({ name: 'turned', role: 'invoker' });
    const newSecret = a.keys.rotate('turned').secret;
    // node-a's puts go out in order: once the rotation, its last change, is in the bucket, all are.
    await waitUntil(async () => (await bucketEntries(a.nc, b)).get(turned.key.id)?.rotated_at != null, {
      what: "node-a's keys in the bucket",
    });

    const own = keyStore();
    const mine = own.create({ name: 'admin-node-late', role: 'admin', createdBy: 'bootstrap' });
    const late = await node('node-late', b, own);
    expect(verifies(late.keys, kept.secret)).toBe('kept');
    expect(verifies(late.keys, gone.secret)).toBe('API key "gone" was revoked');
    expect(verifies(late.keys, turned.secret)).toBe('unknown API key');
    expect(verifies(late.keys, newSecret)).toBe('turned');
    expect(
      late.keys
        .list({ all: true })
        .map((k) => `${k.name}:${k.state}`)
        .sort(),
    ).toEqual(['admin-node-late:active', 'gone:revoked', 'kept:active', 'turned:active']);
    await waitUntil(() => verifies(a.keys, mine.secret) === 'admin-node-late', {
      what: "the late node's own key on node-a",
    });
    expect([a.warnings, late.warnings]).toEqual([[], []]);
  });

  it('a revoke on one node and a rotate on another at once end revoked everywhere, the bucket included', async () => {
    const b = bucket();
    const [a, n2] = [await node('node-a', b), await node('node-b', b)];
    const { key } = a.keys.create({ name: 'racy', role: 'operator' });
    await waitUntil(() => n2.keys.get('racy'), { what: 'the key on node-b' });
    // Neither has heard of the other's change when it makes its own.
    const rotated = a.keys.rotate('racy');
    n2.keys.revoke('racy');
    // A node that applies the other's change ends with a row other than that entry and puts its
    // row back (once or twice in all: a node whose watch is behind sees only the latest entry).
    const kv = await new Kvm(a.nc).open(b);
    const settled = async () => {
      const last = await kv.get(key.id);
      const entry = last?.json<Record<string, unknown>>();
      const [onA, onB] = [a.keys.list({ all: true })[0]!, n2.keys.list({ all: true })[0]!];
      return (
        entry?.revoked_at != null &&
        entry.rotated_at === Date.parse(rotated.key.rotated_at!) &&
        onA.state === 'revoked' &&
        onB.state === 'revoked' &&
        onA.rotated_at === onB.rotated_at &&
        onA.rotated_at === rotated.key.rotated_at
      );
    };
    await waitUntil(settled, { what: 'both nodes and the bucket revoked, with the rotation kept' });
    // Then nothing more is put (the two rows put back are the same). node-c starts on the quiet
    // bucket: nats-server 2.9's watch can stall when its first entry is replaced as it starts.
    await waitUntil(
      async () => {
        const before = (await kv.get(key.id))?.revision;
        await sleep(150);
        return before === (await kv.get(key.id))?.revision;
      },
      { what: 'the bucket quiet' },
    );
    expect((await kv.get(key.id))?.json<Record<string, unknown>>()).toMatchObject({
      revoked_at: expect.any(Number),
      rotated_at: Date.parse(rotated.key.rotated_at!),
    });
    expect(verifies(a.keys, rotated.secret)).toBe('API key "racy" was revoked');
    expect(verifies(n2.keys, rotated.secret)).toBe('API key "racy" was revoked');
    // A third node reading the bucket now agrees.
    const c = await node('node-c', b);
    expect(verifies(c.keys, rotated.secret)).toBe('API key "racy" was revoked');
  });

  it('skips bucket entries that are not keys, with a warning naming the key, and goes on syncing', async () => {
    const b = bucket();
    const a = await node('node-a', b);
    const kv = await new Kvm(a.nc).open(b);
    const good = {
      node: 'node-x',
      published_at: Date.now(),
      id: 'AAAAAAAAAAAA',
      name: 'x',
      role: 'viewer',
      scope: {},
      limits: {},
      hash: Buffer.alloc(32, 1).toString('base64'),
    };
    const row = { ...good, created_at: 1, created_by: null, expires_at: null, revoked_at: null, rotated_at: null };
    await kv.put('broken', 'not json');
    await kv.put('BBBBBBBBBBBB', JSON.stringify({ ...row, id: 'BBBBBBBBBBBB', role: 'root' }));
    await kv.put('CCCCCCCCCCCC', JSON.stringify({ ...row, id: 'CCCCCCCCCCCC', hash: 'c2hvcnQ=' }));
    await kv.put(
      'DDDDDDDDDDDD',
      JSON.stringify({ ...row, id: 'DDDDDDDDDDDD', scope: { agents: ['a'], everything_else: true } }),
    );
    await kv.put('EEEEEEEEEEEE', JSON.stringify(row));
    await kv.put('FFFFFFFFFFFF', JSON.stringify({ ...good, id: 'FFFFFFFFFFFF' }));
    await waitUntil(() => a.warnings.length === 6, { what: 'six warnings' });
    expect(a.warnings[0]).toBe('skipped cluster key entry "broken": it is not JSON');
    expect(a.warnings[1]).toMatch(/^skipped cluster key entry "BBBBBBBBBBBB" from node node-x: role: /);
    expect(a.warnings[2]).toBe(
      'skipped cluster key entry "CCCCCCCCCCCC" from node node-x: hash: expected the base64 of a SHA-256 (32 bytes)',
    );
    expect(a.warnings[3]).toMatch(
      /^skipped cluster key entry "DDDDDDDDDDDD" from node node-x: scope: .*everything_else/,
    );
    expect(a.warnings[4]).toBe(
      'skipped cluster key entry "EEEEEEEEEEEE" from node node-x: it holds key id "AAAAAAAAAAAA"',
    );
    expect(a.warnings[5]).toMatch(/^skipped cluster key entry "FFFFFFFFFFFF" from node node-x: created_at: /);
    expect(a.keys.list({ all: true })).toEqual([]);
    // The watch goes on: a good entry after them is applied.
    await kv.put('AAAAAAAAAAAA', JSON.stringify(row));
    await waitUntil(() => a.keys.get('x'), { what: 'the good entry applied' });
    expect(a.keys.get('AAAAAAAAAAAA')).toMatchObject({ name: 'x', role: 'viewer', state: 'active' });
  });

  it('skips a key whose name an active key of this node holds, with a warning on both nodes, goes on syncing, and applies it once the name is free', async () => {
    const b = bucket();
    const a = await node('node-a', b);
    const theirs = a.keys.create({ name: 'ci', role: 'admin' });
    await waitUntil(async () => (await bucketEntries(a.nc, b)).size === 1, { what: "node-a's key in the bucket" });
    const own = keyStore();
    const mine = own.create({ name: 'ci', role: 'viewer' });
    const n2 = await node('node-b', b, own);
    // node-b keeps its own "ci"; node-a keeps its own when node-b's arrives.
    expect(n2.warnings).toEqual([
      `API key from node node-a: key "ci" (id ${theirs.key.id}) is not applied here: an active key of that name with another id (${mine.key.id}) exists on this node; revoke one of them`,
    ]);
    await waitUntil(() => a.warnings.length === 1, { what: "node-a's warning" });
    expect(a.warnings[0]).toBe(
      `API key from node node-b: key "ci" (id ${mine.key.id}) is not applied here: an active key of that name with another id (${theirs.key.id}) exists on this node; revoke one of them`,
    );
    expect(verifies(n2.keys, mine.secret)).toBe('ci');
    expect(verifies(n2.keys, theirs.secret)).toBe('unknown API key');
    expect(a.keys.get('ci')?.role).toBe('admin');
    // Sync goes on for other keys.
    const next = a.keys.create({ name: 'other', role: 'viewer' });
    await waitUntil(() => verifies(n2.keys, next.secret) === 'other', { what: 'the next key on node-b' });
    // node-b revokes its own "ci": the name is free there, node-a's "ci" is applied at once; node-a gets the revocation.
    n2.keys.revoke(mine.key.id);
    expect(verifies(n2.keys, theirs.secret)).toBe('ci');
    await waitUntil(() => verifies(a.keys, mine.secret) === 'API key "ci" was revoked', {
      what: "node-b's revocation on node-a",
    });
    expect(a.keys.get('ci')?.id).toBe(theirs.key.id);
    expect([a.warnings.length, n2.warnings.length]).toEqual([1, 1]);
  });

  it('when a key was last used reaches every node, never moves back, and a node that starts later has it when start() resolves', async () => {
    const b = bucket();
    const t0 = Date.parse('2026-11-25T00:00:00Z');
    const clock = { a: t0, b: t0 };
    const a = await node(
      'node-a',
      b,
      keyStore(() => clock.a),
    );
    const n2 = await node(
      'node-b',
      b,
      keyStore(() => clock.b),
    );
    const { key, secret } = a.keys.create({ name: 'ci', role: 'viewer' });
    const other = a.keys.create({ name: 'other', role: 'viewer' });
    await waitUntil(() => n2.keys.get('other'), { what: 'the keys on node-b' });
    const lastUse = (n: Node, name = 'ci') => n.keys.get(name)?.last_used_at;

    clock.a = t0 + 60_000;
    a.keys.verify(secret);
    await waitUntil(() => lastUse(n2) === new Date(t0 + 60_000).toISOString(), { what: "node-a's use on node-b" });
    // node-b uses it later: node-a gets that. Its own later check, on a clock behind, keeps the later use.
    clock.b = t0 + 300_000;
    n2.keys.verify(secret);
    await waitUntil(() => lastUse(a) === new Date(t0 + 300_000).toISOString(), { what: "node-b's use on node-a" });
    clock.a = t0 + 120_000;
    a.keys.verify(secret);
    expect(lastUse(a)).toBe(new Date(t0 + 300_000).toISOString());

    // An earlier use arriving late (another node's clock behind) does not move it back.
    const kv = await new Kvm(a.nc).open(`${b}_used`);
    await kv.put(key.id, JSON.stringify({ node: 'node-x', at: t0 + 30_000 }));
    await kv.put(other.key.id, JSON.stringify({ node: 'node-x', at: t0 + 30_000 }));
    for (const n of [a, n2])
      await waitUntil(() => lastUse(n, 'other') === new Date(t0 + 30_000).toISOString(), {
        what: 'the later put on every node',
      });
    expect([lastUse(a), lastUse(n2)]).toEqual([
      new Date(t0 + 300_000).toISOString(),
      new Date(t0 + 300_000).toISOString(),
    ]);

    // A node that starts later: the last uses are there when start() resolves.
    const late = await node('node-c', b);
    expect(lastUse(late, 'other')).toBe(new Date(t0 + 30_000).toISOString());
    // The bucket holds the last put for that key (node-x's, earlier): node-c applied it, then nothing later came. What it
    // shows is what the bucket holds; node-a and node-b keep their later use.
    expect(lastUse(late)).toBe(new Date(t0 + 30_000).toISOString());
    expect([a.warnings, n2.warnings, late.warnings]).toEqual([[], [], []]);

    // An entry that is not a use is skipped with a warning naming its key; the last use stays.
    await kv.put(key.id, JSON.stringify({ node: 'node-x', at: 'yesterday' }));
    for (const n of [a, n2, late])
      await waitUntil(() => n.warnings.length === 1, { what: 'the warning on every node' });
    expect(late.warnings[0]).toBe(`skipped cluster key use "${key.id}": expected {"node", "at"} under a key id`);
    expect([lastUse(a), lastUse(n2)]).toEqual([
      new Date(t0 + 300_000).toISOString(),
      new Date(t0 + 300_000).toISOString(),
    ]);
  });
});
