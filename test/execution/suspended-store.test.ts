/**
 * The SQLite store of suspended executions (ADR 0029): found by id and by pending call id,
 * expired rows ignored and then pruned by the storage Pruner, text scrubbed of the configured
 * secrets before it is stored, and the table made by the migrations mechanism.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteSuspendedStore, type SuspendedExecution } from '../../src/execution/index.js';
import { registerSecrets } from '../../src/shared/secrets.js';
import { openDatabase, type Db } from '../../src/storage/index.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

const SECRET = 'sk-suspended-secret-value-1234';
let db: Db;
let store: SqliteSuspendedStore;

beforeAll(() => {
  registerSecrets([SECRET]);
  db = openDatabase(makeTempDir('caxton-susp-'));
  store = new SqliteSuspendedStore(db, { ttlMs: 60_000 });
});
afterAll(() => {
  store.close();
  db.close();
  registerSecrets([]);
  removeTempDirs();
});

function execution(id: string, expiresIn: number, calls: string[]): SuspendedExecution {
  return {
    id,
    agent: 'helper',
    principal: 'key:alice',
    transcript: [
      { role: 'system', content: 'You are Helper.' },
      { role: 'user', content: `my key is ${SECRET}` },
      {
        role: 'assistant',
        content: '',
        tool_calls: calls.map((c) => ({ id: c, name: 'get_weather', arguments: { city: 'Paris' } })),
      },
    ],
    pending_call_ids: calls,
    expires_at: Date.now() + expiresIn,
  };
}

describe('SqliteSuspendedStore', () => {
  it('finds an execution by id and by each pending call id, scrubbed', async () => {
    await store.save(execution('susp_a', 60_000, ['call_a1', 'call_a2']));
    const byId = await store.get('susp_a');
    expect(byId).toMatchObject({
      id: 'susp_a',
      agent: 'helper',
      principal: 'key:alice',
      pending_call_ids: ['call_a1', 'call_a2'],
    });
    expect(JSON.stringify(byId)).not.toContain(SECRET);
    expect((await store.findByCallId('call_a2'))?.id).toBe('susp_a');
    expect(await store.findByCallId('call_none')).toBeUndefined();
    const raw = db.prepare('SELECT transcript FROM suspended_executions WHERE id = ?').pluck().get('susp_a') as string;
    expect(raw).not.toContain(SECRET);
  });

  it('forgets a deleted execution and its calls', async () => {
    await store.save(execution('susp_b', 60_000, ['call_b1']));
    await store.delete('susp_b');
    expect(await store.get('susp_b')).toBeUndefined();
    expect(await store.findByCallId('call_b1')).toBeUndefined();
    expect(db.prepare('SELECT count(*) FROM suspended_tool_calls WHERE call_id = ?').pluck().get('call_b1')).toBe(0);
  });

  it('ignores expired rows, and the Pruner deletes them with their calls', async () => {
    await store.save(execution('susp_old', -1, ['call_old']));
    expect(await store.get('susp_old')).toBeUndefined();
    expect(await store.findByCallId('call_old')).toBeUndefined();
    expect(store.prune().suspended_executions).toBeGreaterThanOrEqual(1);
    expect(db.prepare('SELECT count(*) FROM suspended_executions WHERE id = ?').pluck().get('susp_old')).toBe(0);
    expect(db.prepare('SELECT count(*) FROM suspended_tool_calls WHERE call_id = ?').pluck().get('call_old')).toBe(0);
    // The live one stays.
    expect(await store.get('susp_a')).toBeDefined();
  });
});
