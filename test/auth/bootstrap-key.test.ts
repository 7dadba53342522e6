/**
 * The first admin key's name (ADR 0025, ADR 0044): `admin` on a single node, `admin-<node>` on a
 * cluster node, so that nodes' first keys never clash once keys travel between them; a node name
 * too long for a key name still gives a valid, distinct name. Created only when the node has no
 * active key.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ADMIN_KEY_FILE, ApiKeyStore, bootstrapAdminKey, bootstrapKeyName } from '../../src/auth/index.js';
import { openDatabase, type Db } from '../../src/storage/index.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

const dbs: Db[] = [];

afterAll(() => {
  for (const db of dbs) db.close();
  removeTempDirs();
});

function node(): { keys: ApiKeyStore; dir: string } {
  const dir = makeTempDir('caxton-bootstrap-');
  const db = openDatabase(dir);
  dbs.push(db);
  return { keys: new ApiKeyStore(db), dir };
}

describe('the bootstrap admin key', () => {
  it('is "admin" on a single node', () => {
    const { keys, dir } = node();
    const file = bootstrapAdminKey(keys, dir);
    expect(file).toBe(join(dir, ADMIN_KEY_FILE));
    expect(statSync(file!).mode & 0o777).toBe(0o600);
    expect(keys.verify(readFileSync(file!, 'utf8').trim())).toMatchObject({ id: 'key:admin', role: 'admin' });
  });

  it('is "admin-<node>" on a cluster node, and only when the node has no active key', () => {
    const { keys, dir } = node();
    const file = bootstrapAdminKey(keys, dir, { node: 'node-a' });
    expect(keys.verify(readFileSync(file!, 'utf8').trim())).toMatchObject({ id: 'key:admin-node-a', role: 'admin' });
    expect(keys.get('admin-node-a')).toMatchObject({ created_by: 'bootstrap' });
    expect(keys.get('admin')).toBeUndefined();
    expect(bootstrapAdminKey(keys, dir, { node: 'node-a' })).toBeUndefined();
    expect(keys.list()).toHaveLength(1);
  });

  it('stays a valid key name, distinct per node, for the longest node names', () => {
    const long = (c: string) => `${'n'.repeat(60)}-${c}${c}`;
    const [x, y] = [bootstrapKeyName(long('x')), bootstrapKeyName(long('y'))];
    expect(x).toHaveLength(64);
    expect(x).not.toBe(y);
    expect(x.startsWith(`admin-${'n'.repeat(49)}-`)).toBe(true);
    const { keys, dir } = node();
    bootstrapAdminKey(keys, dir, { node: long('x') });
    expect(keys.get(x)).toMatchObject({ role: 'admin' });
    expect(bootstrapKeyName('b'.repeat(58))).toBe(`admin-${'b'.repeat(58)}`);
  });
});
