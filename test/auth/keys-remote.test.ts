/**
 * The API key store's side of key propagation between cluster nodes (ADR 0044), without NATS: two
 * stores on two SQLite files stand for two nodes, and records are handed over by hand. The change
 * listener hears creates, revokes and rotates but not `applyRemote`; `applyRemote` takes effect on
 * `verify` at once, never undoes a revocation, keeps the latest rotation whichever order two
 * concurrent changes arrive in, and skips an active key whose name another active key holds.
 * Propagation itself is tested in test/cluster/key-sync.test.ts.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ApiKeyStore, type ApiKeyRecord } from '../../src/auth/index.js';
import { openDatabase, type Db } from '../../src/storage/index.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

const dbs: Db[] = [];

afterAll(() => {
  for (const db of dbs) db.close();
  removeTempDirs();
});

function store(now?: () => number): { keys: ApiKeyStore; heard: ApiKeyRecord[] } {
  const db = openDatabase(makeTempDir('caxton-keys-remote-'));
  dbs.push(db);
  const keys = new ApiKeyStore(db, now ? { now } : {});
  const heard: ApiKeyRecord[] = [];
  keys.onChange((k) => heard.push(k));
  return { keys, heard };
}

const record = (keys: ApiKeyStore, id: string) => keys.records().find((k) => k.id === id)!;

describe('ApiKeyStore across nodes', () => {
  it('tells its listener each create, revoke and rotate with the row as it now is, without last_used_at', () => {
    const { keys, heard } = store();
    const { key, secret } = keys.create({
      name: 'ci',
      role: 'operator',
      scope: { agents: ['support-*'] },
      limits: { requests_per_minute: 60 },
      createdBy: 'key:admin',
    });
    keys.verify(secret);
    const rotated = keys.rotate('ci');
    keys.revoke('ci');
    keys.revoke(key.id); // already revoked: nothing changed, nothing told
    expect(heard.map((k) => [k.id, k.revoked_at !== null, k.rotated_at !== null])).toEqual([
      [key.id, false, false],
      [key.id, false, true],
      [key.id, true, true],
    ]);
    expect(heard[0]).toEqual({
      id: key.id,
      name: 'ci',
      role: 'operator',
      scope: { agents: ['support-*'] },
      limits: { requests_per_minute: 60 },
      hash: expect.any(Buffer),
      created_at: Date.parse(key.created_at),
      created_by: 'key:admin',
      expires_at: null,
      revoked_at: null,
      rotated_at: null,
    });
    expect(heard[0]).not.toHaveProperty('last_used_at');
    expect(heard[1]!.hash.equals(heard[0]!.hash)).toBe(false);
    expect(rotated.key.id).toBe(key.id);
  });

  it('applies a key from another node without telling its listener; it verifies here at once', () => {
    const a = store();
    const b = store();
    const { key, secret } = a.keys.create({ name: 'ci', role: 'developer' });
    expect(() => b.keys.verify(secret)).toThrow('unknown API key');
    expect(b.keys.applyRemote(a.heard[0]!)).toMatchObject({ status: 'applied' });
    expect(b.keys.verify(secret)).toMatchObject({ id: 'key:ci', role: 'developer', keyId: key.id });
    expect(b.heard).toEqual([]);
    // The same record again changes nothing.
    expect(b.keys.applyRemote(a.heard[0]!)).toMatchObject({ status: 'unchanged' });
  });

  it('a revoke or rotate from another node takes effect on a key verified here before (its cached entry is dropped)', () => {
    const a = store();
    const b = store();
    const { secret } = a.keys.create({ name: 'ci', role: 'developer' });
    b.keys.applyRemote(a.heard[0]!);
    expect(b.keys.verify(secret).name).toBe('ci');
    const { secret: next } = a.keys.rotate('ci');
    b.keys.applyRemote(a.heard[1]!);
    expect(() => b.keys.verify(secret)).toThrow('unknown API key');
    expect(b.keys.verify(next).name).toBe('ci');
    a.keys.revoke('ci');
    b.keys.applyRemote(a.heard[2]!);
    expect(() => b.keys.verify(next)).toThrow('API key "ci" was revoked');
  });

  it('never undoes a revocation, and keeps the latest rotation, whichever order two concurrent changes arrive in', () => {
    let t = 1_000_000;
    const a = store(() => t);
    const b = store(() => t);
    const { key } = a.keys.create({ name: 'ci', role: 'developer' });
    b.keys.applyRemote(a.heard[0]!);
    t += 10;
    const { secret } = a.keys.rotate('ci'); // on A
    t += 10;
    b.keys.revoke('ci'); // on B, before A's rotation reached it
    const fromA = a.heard[1]!;
    const fromB = b.heard[0]!;
    const onA = a.keys.applyRemote(fromB);
    const onB = b.keys.applyRemote(fromA);
    // Both end with the same row: revoked at B's time, with A's rotated hash; each differs from the entry it was given.
    expect(onA).toMatchObject({ status: 'applied', record: { revoked_at: t, rotated_at: t - 10 } });
    expect(onB).toMatchObject({ status: 'applied', record: { revoked_at: t, rotated_at: t - 10 } });
    expect(record(a.keys, key.id)).toEqual(record(b.keys, key.id));
    expect(() => a.keys.verify(secret)).toThrow('was revoked');
    expect(() => b.keys.verify(secret)).toThrow('was revoked');
    // A stale entry (the key before either change) changes nothing on either node.
    expect(a.keys.applyRemote(a.heard[0]!)).toMatchObject({ status: 'unchanged' });
    expect(b.keys.applyRemote(a.heard[0]!)).toMatchObject({ status: 'unchanged', record: { revoked_at: t } });
  });

  it('skips an active key whose name an active key with another id holds here, and applies it once revoked', () => {
    const a = store();
    const b = store();
    a.keys.create({ name: 'ci', role: 'admin' });
    const mine = b.keys.create({ name: 'ci', role: 'viewer' });
    const r = b.keys.applyRemote(a.heard[0]!);
    expect(r).toEqual({
      status: 'skipped',
      problem: `key "ci" (id ${a.heard[0]!.id}) is not applied here: an active key of that name with another id (${mine.key.id}) exists on this node; revoke one of them`,
    });
    expect(b.keys.get('ci')).toMatchObject({ id: mine.key.id, role: 'viewer' });
    expect(b.keys.list()).toHaveLength(1);
    // Revoked keys do not hold names: A's revocation is stored beside B's active key.
    a.keys.revoke('ci');
    expect(b.keys.applyRemote(a.heard[1]!)).toMatchObject({ status: 'applied' });
    expect(
      b.keys
        .list({ all: true })
        .map((k) => `${k.role}:${k.state}`)
        .sort(),
    ).toEqual(['admin:revoked', 'viewer:active']);
  });
});

describe('streams held under a key across nodes', () => {
  it('a revocation or rotation another node made ends the streams held here under that key; other changes do not', () => {
    const a = store();
    const b = store();
    const { key, secret } = a.keys.create({ name: 'streamer', role: 'viewer' });
    b.keys.applyRemote(record(a.keys, key.id));
    const principal = b.keys.verify(secret);
    const ended: string[] = [];
    const hold = () => b.keys.holdStream(principal, (why) => ended.push((why.details as { reason: string }).reason));
    expect(hold()).toBeDefined();
    // The same row again changes nothing: the stream stays.
    b.keys.applyRemote(record(a.keys, key.id));
    expect(ended).toEqual([]);
    a.keys.rotate(key.id);
    b.keys.applyRemote(record(a.keys, key.id));
    expect(ended).toEqual(['key_rotated']);
    hold();
    a.keys.revoke(key.id);
    b.keys.applyRemote(record(a.keys, key.id));
    expect(ended).toEqual(['key_rotated', 'key_revoked']);
    expect(b.keys.streams.count()).toBe(0);
  });

  it('a stream released by itself is no longer held', () => {
    const { keys } = store();
    const { secret } = keys.create({ name: 'short', role: 'viewer' });
    const release = keys.holdStream(keys.verify(secret), () => expect.fail('released streams are not closed'))!;
    expect(keys.streams.count()).toBe(1);
    release();
    expect(keys.streams.count()).toBe(0);
    keys.revoke('short');
  });
});
