/**
 * AuditStore on a real SQLite file: retention by age and by count, details kept small, the
 * JSON-lines file refused clearly when it cannot be opened; `[audit]` in caxton.toml (defaults,
 * enabled = false answering 404 audit_disabled).
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AuditStore, MAX_DETAILS_BYTES } from '../../src/audit/index.js';
import { ConfigError, loadServerConfig } from '../../src/config/index.js';
import { openDatabase } from '../../src/storage/index.js';
import { startTestServer } from '../helpers/server.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

afterAll(() => removeTempDirs());

const DAY = 24 * 3_600_000;

function store(opts: ConstructorParameters<typeof AuditStore>[1] = {}) {
  const db = openDatabase(makeTempDir('caxton-audit-store-'));
  return { db, audit: new AuditStore(db, opts) };
}

describe('retention', () => {
  it('deletes rows older than the retention, and the oldest beyond max_rows', async () => {
    const { db, audit } = store({ retentionMs: 90 * DAY, maxRows: 100 });
    const now = Date.now();
    for (let i = 0; i < 30; i++)
      audit.record({ time: now - 100 * DAY + i, action: 'agent.deploy', target: `old-${i}`, outcome: 'ok' });
    for (let i = 0; i < 150; i++)
      audit.record({ time: now - 1000 + i, action: 'agent.deploy', target: `new-${i}`, outcome: 'ok' });
    // Writing 180 rows past max_rows / 10 already asks the pruner for a run; prune() waits for it and runs again.
    await audit.prune();
    const left = db.prepare('SELECT target FROM audit_log ORDER BY id').pluck().all() as string[];
    expect(left).toHaveLength(100);
    expect(left[0]).toBe('new-50');
    expect(left.at(-1)).toBe('new-149');
    await audit.close();
    db.close();
  });

  it('beyond max_rows, refusals go before the rows of what was done', async () => {
    const { db, audit } = store({ retentionMs: 90 * DAY, maxRows: 100 });
    for (let i = 0; i < 10; i++) audit.record({ action: 'agent.deploy', target: `done-${i}`, outcome: 'ok' });
    // A caller refused 500 times (a scoped key probing what it may not do).
    for (let i = 0; i < 500; i++)
      audit.record({ action: 'agent.read', target: `refused-${i}`, outcome: 'denied', status: 403 });
    await audit.prune();
    const left = db.prepare('SELECT target FROM audit_log ORDER BY id').pluck().all() as string[];
    expect(left).toHaveLength(100);
    expect(left.slice(0, 10)).toEqual(Array.from({ length: 10 }, (_, i) => `done-${i}`));
    expect(left.at(-1)).toBe('refused-499');
    expect(left[10]).toBe('refused-410');
    await audit.close();
    db.close();
  });
});

describe('rows', () => {
  it('keep details small: an oversized details object is replaced by {truncated: true}', async () => {
    const { db, audit } = store();
    audit.record({ action: 'memory.write', outcome: 'ok', details: { op: 'x'.repeat(MAX_DETAILS_BYTES) } });
    audit.record({ action: 'memory.write', outcome: 'ok', details: { op: 'create_entities' } });
    const [small, big] = audit.query();
    expect(small!.details).toEqual({ op: 'create_entities' });
    expect(big!.details).toEqual({ truncated: true });
    await audit.close();
    db.close();
  });

  it('are no longer taken after close', async () => {
    const { db, audit } = store();
    audit.record({ action: 'a.b', outcome: 'ok' });
    await audit.close();
    audit.record({ action: 'c.d', outcome: 'ok' });
    expect(db.prepare('SELECT action FROM audit_log').pluck().all()).toEqual(['a.b']);
    db.close();
  });
});

describe('the JSON-lines file', () => {
  it('that cannot be opened stops the store with an error naming the file and the setting', () => {
    const dir = makeTempDir('caxton-audit-ro-');
    mkdirSync(join(dir, 'locked'));
    writeFileSync(join(dir, 'locked', 'audit.jsonl'), '');
    chmodSync(join(dir, 'locked', 'audit.jsonl'), 0o400);
    const db = openDatabase(dir);
    // root may write anywhere: a directory in the file's place fails for everyone.
    const path = process.getuid?.() === 0 ? join(dir, 'locked') : join(dir, 'locked', 'audit.jsonl');
    expect(() => new AuditStore(db, { jsonl: path })).toThrow(
      /\[audit\] jsonl: cannot open ".*locked.*" for appending/,
    );
    db.close();
  });
});

describe('[audit] configuration', () => {
  it('has defaults: on, 90 days, 1,000,000 rows, no JSON lines', () => {
    const c = loadServerConfig({ env: {}, cwd: makeTempDir() });
    expect(c.audit).toEqual({
      enabled: true,
      retention: 90 * DAY,
      max_rows: 1_000_000,
      anonymous_interval: 60_000,
      anonymous_sources: 1000,
    });
  });

  it('takes a retention up to 366 days and refuses unknown keys naming them', () => {
    const dir = makeTempDir();
    writeFileSync(join(dir, 'caxton.toml'), '[audit]\nretention = "8760h"\nmax_rows = 500\njsonl = "audit.jsonl"\n');
    expect(loadServerConfig({ file: join(dir, 'caxton.toml'), env: {}, cwd: dir }).audit).toEqual({
      enabled: true,
      retention: 365 * DAY,
      max_rows: 500,
      jsonl: 'audit.jsonl',
      anonymous_interval: 60_000,
      anonymous_sources: 1000,
    });
    writeFileSync(join(dir, 'caxton.toml'), '[audit]\nretain = "1d"\n');
    expect(() => loadServerConfig({ file: join(dir, 'caxton.toml'), env: {}, cwd: dir })).toThrow(ConfigError);
    try {
      loadServerConfig({ file: join(dir, 'caxton.toml'), env: {}, cwd: dir });
    } catch (e) {
      expect((e as ConfigError).issues[0]).toMatchObject({ field: 'audit.retain', code: 'unknown_key' });
    }
  });

  it('enabled = false records nothing and GET /api/v1/audit answers 404 audit_disabled', async () => {
    const ts = await startTestServer({ toml: '[audit]\nenabled = false\n' });
    try {
      expect(ts.server.audit).toBeUndefined();
      const res = await fetch(`${ts.url}/api/v1/agents/nobody`, { method: 'DELETE' });
      expect(res.status).toBe(404);
      const r = await fetch(`${ts.url}/api/v1/audit`);
      expect(r.status).toBe(404);
      expect(((await r.json()) as { error: { details: { reason: string } } }).error.details.reason).toBe(
        'audit_disabled',
      );
      expect(ts.server.db.prepare("SELECT name FROM sqlite_master WHERE name = 'audit_log'").all()).toEqual([]);
    } finally {
      await ts.close();
    }
  });
});
