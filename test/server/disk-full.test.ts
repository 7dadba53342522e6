/**
 * A full disk on a request path is a 507 `insufficient_storage` saying the disk is full
 * and nothing was stored, not a 500; once space is freed the same store works again. The disk is
 * filled for real as SQLite sees it: `PRAGMA max_page_count` caps the server's own database file
 * at its current size (SQLite then fails writes with SQLITE_FULL, exactly as on a full disk).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { getJson, http } from '../helpers/http.js';
import { waitUntil } from '../helpers/wait.js';
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
    const post = (path: string, body: unknown, type = 'application/json') =>
      http<Json>(t!.url, 'POST', path, {
        body: typeof body === 'string' ? body : JSON.stringify(body),
        contentType: type,
      });
    const big = 'x'.repeat(200_000);
    const before = db.prepare('SELECT count(*) FROM messages').pluck().get() as number;
    // The disk is "full": no page beyond those the file has now.
    db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true }) as number}`);

    const res = await post('/api/v1/messages', {
      performative: 'inform',
      sender: 'tester',
      receivers: ['filler'],
      content: big,
    });
    expect(res.status, JSON.stringify(res.json)).toBe(507);
    expect(res.json.error.code).toBe('insufficient_storage');
    expect(res.json.error.message).toMatch(/disk .*is full: nothing was stored/);
    expect(res.headers.get('retry-after')).toBe('30');
    expect(db.prepare('SELECT count(*) FROM messages').pluck().get()).toBe(before);
    expect((await getJson<Json>(t.url, '/api/v1/conversations')).json.total).toBe(0);

    const deploy = await post(
      '/api/v1/agents',
      `name = "other"\ncapabilities = ["x"]\nsystem_prompt = "${'y'.repeat(300_000)}"\n`,
      'application/toml',
    );
    expect(deploy.status, JSON.stringify(deploy.json)).toBe(507);
    expect(deploy.json.error.code).toBe('insufficient_storage');
    expect((await getJson<Json>(t.url, '/api/v1/agents/other')).status).toBe(404);

    // Space freed: the same store accepts the same message.
    db.pragma('max_page_count = 1073741823');
    const ok = await post('/api/v1/messages', {
      performative: 'inform',
      sender: 'tester',
      receivers: ['filler'],
      content: big,
    });
    expect(ok.status, JSON.stringify(ok.json)).toBe(202);
    const stored = await getJson<Json>(t.url, `/api/v1/messages/${ok.json.id}`);
    expect(stored.status).toBe(200);
    expect(stored.json.content).toBe(big);
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
  });

  it('the disk fills while a delivery is acknowledged: no crash, nothing lost, the waiting caller gets 507, the delivery stays pending and is acknowledged once there is room', async () => {
    t = await startTestServer({
      agentFiles: { 'filler.toml': AGENT },
      toml: '[messaging]\nretry_base = "200ms"\nretry_max = "1s"\n',
      flags: { logLevel: 'warn' },
    });
    const db = t.server.db;
    const answer = 'z'.repeat(300_000);
    let calls = 0;
    // The agent answers a large reply; the disk fills while it runs, so the acknowledgement (the
    // delivery's state and the reply, one transaction) is the write that meets SQLITE_FULL.
    t.server.bus.registerHandler('filler', () => {
      calls++;
      db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true }) as number}`);
      return { performative: 'inform', content: answer };
    });
    const res = await http<Json>(t.url, 'POST', '/api/v1/messages?wait=20', {
      body: JSON.stringify({ performative: 'request', sender: 'tester', receivers: ['filler'], content: 'fill it' }),
      contentType: 'application/json',
    });
    expect(res.status, JSON.stringify(res.json)).toBe(507);
    expect(res.json.error.code).toBe('insufficient_storage');
    expect(res.json.error.message).toMatch(
      /disk holding the data dir is full.*reply could not be stored.*stays pending/,
    );
    expect(res.headers.get('retry-after')).toBe('30');
    const conversation = String(res.json.error.details.conversation_id);
    const deliveryState = () =>
      db
        .prepare('SELECT d.state FROM deliveries d JOIN messages m ON m.id = d.message_id WHERE m.conversation_id = ?')
        .pluck()
        .get(conversation);
    expect(deliveryState()).toBe('pending');
    // Still full a while later: still pending, still answering, the handler not run again.
    await new Promise((r) => setTimeout(r, 700));
    expect(deliveryState()).toBe('pending');
    expect((await getJson<Json>(t.url, '/health')).status).toBe(200);
    const logs = (await getJson<Json>(t.url, '/api/v1/logs?level=warn&limit=1000')).json.logs as { msg: string }[];
    expect(logs.some((l) => /could not acknowledge .*disk .*is full.*stays pending/.test(l.msg))).toBe(true);

    // Space freed: the acknowledgement is retried and the reply stored; nothing ran twice.
    db.pragma('max_page_count = 1073741823');
    await waitUntil(() => deliveryState() === 'done', { timeoutMs: 10_000, what: 'the delivery acknowledged' });
    const conv = await getJson<Json>(t.url, `/api/v1/conversations/${conversation}`);
    expect(conv.json.conversation.state).toBe('completed');
    expect(conv.json.messages.map((m: Json) => m.performative)).toEqual(['request', 'agree', 'inform']);
    expect(conv.json.messages[2].content).toBe(answer);
    expect(calls).toBe(1);
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
  });
});
