/**
 * Issue 13: a full disk on a request path is a 507 `insufficient_storage` saying the disk is full
 * and nothing was stored, not a 500; once space is freed the same store works again. The disk is
 * filled for real as SQLite sees it: `PRAGMA max_page_count` caps the server's own database file
 * at its current size (SQLite then fails writes with SQLITE_FULL, exactly as on a full disk).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { getJson, http } from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const AGENT = 'name = "filler"\ncapabilities = ["filling"]\nsystem_prompt = "You fill."\n';

describe('a full disk', () => {
  let t: TestServer | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
    removeTempDirs();
  });

  it('answers 507 insufficient_storage on writes, stores nothing, and works again once space is freed', async () => {
    t = await startTestServer({ agentFiles: { 'filler.toml': AGENT } });
    const db = t.server.db;
    const post = (path: string, body: unknown, type = 'application/json') => http<Json>(t!.url, 'POST', path, { body: typeof body === 'string' ? body : JSON.stringify(body), contentType: type });
    const big = 'x'.repeat(200_000);
    const before = (db.prepare('SELECT count(*) FROM messages').pluck().get() as number);
    // The disk is "full": no page beyond those the file has now.
    db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true }) as number}`);

    const res = await post('/api/v1/messages', { performative: 'inform', sender: 'tester', receivers: ['filler'], content: big });
    expect(res.status, JSON.stringify(res.json)).toBe(507);
    expect(res.json.error.code).toBe('insufficient_storage');
    expect(res.json.error.message).toMatch(/disk .*is full: nothing was stored/);
    expect(res.headers.get('retry-after')).toBe('30');
    expect(db.prepare('SELECT count(*) FROM messages').pluck().get()).toBe(before);
    expect((await getJson<Json>(t.url, '/api/v1/conversations')).json.total).toBe(0);

    const deploy = await post('/api/v1/agents', `name = "other"\ncapabilities = ["x"]\nsystem_prompt = "${'y'.repeat(300_000)}"\n`, 'application/toml');
    expect(deploy.status, JSON.stringify(deploy.json)).toBe(507);
    expect(deploy.json.error.code).toBe('insufficient_storage');
    expect((await getJson<Json>(t.url, '/api/v1/agents/other')).status).toBe(404);

    // Space freed: the same store accepts the same message.
    db.pragma('max_page_count = 1073741823');
    const ok = await post('/api/v1/messages', { performative: 'inform', sender: 'tester', receivers: ['filler'], content: big });
    expect(ok.status, JSON.stringify(ok.json)).toBe(202);
    const stored = await getJson<Json>(t.url, `/api/v1/messages/${ok.json.id}`);
    expect(stored.status).toBe(200);
    expect(stored.json.content).toBe(big);
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
  });
});
