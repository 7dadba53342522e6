/**
 * Files Caxton creates are readable by their owner only (0600), in directories it creates 0700,
 * whatever the process umask: the data dir, caxton.db and the -wal/-shm files SQLite makes beside
 * it, the saved ANN graph and its sidecar, the embedding model cache, the admin key, the audit
 * JSON-lines copy. Checked on real files.
 */
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JsonlAppender } from '../../src/audit/jsonl.js';
import { bootstrapAdminKey } from '../../src/auth/local-auth.js';
import { ApiKeyStore } from '../../src/auth/keys.js';
import { saveAnnFile } from '../../src/memory/ann-file.js';
import type { VectorIndex } from '../../src/memory/vector-index.js';
import { migrate, openDatabase } from '../../src/storage/database.js';

const mode = (p: string) => statSync(p).mode & 0o777;

let root: string;
let umask: number;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'caxton-modes-'));
  umask = process.umask();
});
afterEach(() => {
  process.umask(umask);
  rmSync(root, { recursive: true, force: true });
});

describe.each([0o022, 0o000])('with umask %o', (mask) => {
  it('the data dir is 0700; caxton.db, -wal and -shm are 0600', () => {
    process.umask(mask);
    const dir = join(root, 'data', 'nested');
    const db = openDatabase(dir);
    migrate(db, [{ id: 't-1', sql: 'CREATE TABLE t (x TEXT)' }]);
    db.prepare('INSERT INTO t VALUES (?)').run('row');
    for (const d of [join(root, 'data'), dir]) expect(mode(d), d).toBe(0o700);
    for (const f of ['caxton.db', 'caxton.db-wal', 'caxton.db-shm']) {
      expect(existsSync(join(dir, f)), f).toBe(true);
      expect(mode(join(dir, f)), f).toBe(0o600);
    }
    db.close();
  });

  it('a -wal or -shm left looser than caxton.db is brought down to its mode at the open', () => {
    process.umask(mask);
    const dir = join(root, 'data');
    openDatabase(dir).close();
    writeFileSync(join(dir, 'caxton.db-shm'), '', { mode: 0o644 });
    const db = openDatabase(dir);
    expect(mode(join(dir, 'caxton.db-shm'))).toBe(0o600);
    db.close();
  });

  it('the admin key file and the audit JSON-lines copy are 0600, their new directories 0700', async () => {
    process.umask(mask);
    const db = openDatabase(join(root, 'data'));
    const keys = new ApiKeyStore(db);
    const file = bootstrapAdminKey(keys, join(root, 'data'))!;
    expect(mode(file)).toBe(0o600);
    const jsonl = new JsonlAppender(join(root, 'logs', 'audit', 'audit.jsonl'), () => {});
    jsonl.write('{}\n');
    await jsonl.close();
    expect(mode(join(root, 'logs'))).toBe(0o700);
    expect(mode(join(root, 'logs', 'audit'))).toBe(0o700);
    expect(mode(join(root, 'logs', 'audit', 'audit.jsonl'))).toBe(0o600);
    db.close();
  });

  it('the saved ANN graph and its sidecar are 0600', () => {
    process.umask(mask);
    // Stands for usearch, which writes its file with the process's default mode.
    const index = {
      dimensions: 4,
      size: 1,
      saveAnn: (p: string) => writeFileSync(p, 'graph'),
    } as unknown as VectorIndex;
    const path = join(root, 'memory.usearch');
    saveAnnFile(index, path, { db_uid: 'u', seq: 1, model: 'm' });
    expect(mode(path)).toBe(0o600);
    expect(mode(`${path}.json`)).toBe(0o600);
  });
});
