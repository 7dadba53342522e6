/**
 * Stored responses of POST /v1/responses: the SQLite store (owned by a principal, expired rows
 * ignored then pruned, text scrubbed of secrets), the bounded in-memory store, and a stored
 * response that a restarted server still continues through previous_response_id.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteResponseStore } from '../../src/api/index.js';
import { MemoryResponseStore, type StoredResponse } from '../../src/api/openai/index.js';
import { registerSecrets } from '../../src/shared/secrets.js';
import { openDatabase, type Db } from '../../src/storage/index.js';
import { startTestServer } from '../helpers/server.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

const SECRET = 'sk-response-store-secret-5678';

function rec(id: string, principal: string | null, text = 'hello'): StoredResponse {
  return {
    id,
    agent: 'helper',
    principal,
    messages: [
      { role: 'user', content: text },
      { role: 'assistant', content: 'hi' },
    ],
    response: { id, object: 'response', output: [] },
  };
}

afterAll(() => removeTempDirs());

describe('SqliteResponseStore', () => {
  let db: Db;
  let store: SqliteResponseStore;
  beforeAll(() => {
    registerSecrets([SECRET]);
    db = openDatabase(makeTempDir('caxton-resp-store-'));
    store = new SqliteResponseStore(db, { ttlMs: 60_000, maxRows: 3 });
  });
  afterAll(() => {
    store.close();
    db.close();
    registerSecrets([]);
  });

  it('returns a response only to its principal, and deletes it only for them', () => {
    store.save(rec('resp_a', 'key:alice'));
    store.save(rec('resp_local', null));
    expect(store.get('resp_a', 'key:alice')?.messages).toHaveLength(2);
    expect(store.get('resp_a', 'key:bob')).toBeUndefined();
    expect(store.get('resp_a', null)).toBeUndefined();
    expect(store.get('resp_local', null)?.id).toBe('resp_local');
    expect(store.delete('resp_a', 'key:bob')).toBe(false);
    expect(store.delete('resp_a', 'key:alice')).toBe(true);
    expect(store.get('resp_a', 'key:alice')).toBeUndefined();
  });

  it('scrubs the configured secrets before storing', () => {
    store.save(rec('resp_s', 'key:alice', `my key is ${SECRET}`));
    const raw = db
      .prepare('SELECT messages FROM openai_responses WHERE response_id = ?')
      .pluck()
      .get('resp_s') as string;
    expect(raw).not.toContain(SECRET);
  });

  it('ignores expired rows and prunes them, and keeps at most maxRows', () => {
    db.prepare('UPDATE openai_responses SET created_at = ? WHERE response_id = ?').run(Date.now() - 120_000, 'resp_s');
    expect(store.get('resp_s', 'key:alice')).toBeUndefined();
    for (const id of ['resp_1', 'resp_2', 'resp_3', 'resp_4']) store.save(rec(id, 'key:alice'));
    store.prune();
    const left = db.prepare('SELECT response_id FROM openai_responses ORDER BY id').pluck().all();
    expect(left).toEqual(['resp_2', 'resp_3', 'resp_4']);
  });
});

describe('MemoryResponseStore', () => {
  it('drops expired responses and the oldest beyond its size bound', () => {
    let now = 0;
    const store = new MemoryResponseStore({ ttlMs: 1_000, maxChars: 400, now: () => now });
    store.save(rec('resp_1', null));
    now = 500;
    store.save(rec('resp_2', null));
    expect(store.get('resp_1', null)).toBeDefined();
    now = 1_200;
    expect(store.get('resp_1', null)).toBeUndefined();
    expect(store.get('resp_2', null)).toBeDefined();
    for (let i = 3; i < 10; i++) store.save(rec(`resp_${i}`, null));
    expect(store.get('resp_2', null)).toBeUndefined();
    expect(store.get('resp_9', null)).toBeDefined();
  });
});

describe('a restarted server', () => {
  it('still continues a stored response', async () => {
    const dir = makeTempDir('caxton-resp-restart-');
    writeFileSync(join(dir, 'replies.toml'), '[[rules]]\ncontent = "turns: {{request}}"\n');
    const toml = '[llm]\ndefault_provider = "s"\n[llm.providers.s]\ntype = "scripted"\nscript = "replies.toml"\n';
    const agentFiles = { 'helper.toml': 'name = "helper"\nsystem_prompt = "You help."\n' };
    const first = await startTestServer({ dir, toml, agentFiles });
    const client = (url: string) => new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
    let id: string;
    try {
      id = (await client(first.url).responses.create({ model: 'helper', input: 'remember me' })).id;
    } finally {
      await first.close();
    }
    const second = await startTestServer({ dir, toml });
    try {
      const c = client(second.url);
      expect((await c.responses.retrieve(id)).output_text).toBe('turns: remember me');
      const next = await c.responses.create({ model: 'helper', previous_response_id: id, input: 'again' });
      expect(next.output_text).toBe('turns: again');
    } finally {
      await second.close();
    }
  });
});
