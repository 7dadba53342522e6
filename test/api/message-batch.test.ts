/**
 * POST /api/v1/messages with a JSON array, on a real server (127.0.0.1, port 0) whose agents talk
 * to the scripted LLM stub: one result per message in order, a bad message refused by its index
 * without dropping the others, the count and size bounds, one audit row per request, and every
 * accepted message delivered.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  openaiProvider,
  removeTempDirs,
  setTestKeys,
  startCaxton,
  type Caxton,
  type HttpResult,
} from '../execution/helpers/caxton.js';
import { startLlmStub, type LlmStub } from '../execution/helpers/llm-stub.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

async function post(base: string, path: string, body: string): Promise<HttpResult> {
  const res = await fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: text === '' ? undefined : JSON.parse(text) };
}
async function get(base: string, path: string): Promise<HttpResult> {
  const res = await fetch(base + path);
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: text === '' ? undefined : JSON.parse(text) };
}
const sendBatch = (base: string, msgs: unknown, query = ''): Promise<HttpResult> =>
  post(base, `/api/v1/messages${query}`, JSON.stringify(msgs));

let stub: LlmStub;
let cx: Caxton;

beforeAll(async () => {
  setTestKeys();
  stub = await startLlmStub(() => ({ content: 'noted' }));
  cx = await startCaxton({
    config: {
      server: { port: 0, max_body_size: '16KB' },
      llm: { default_provider: 'stub', providers: { stub: openaiProvider(stub.url) } },
      messaging: { max_message_size: '4KB', max_batch_messages: 50, max_batch_size: '64KB' },
    },
    agents: [{ name: 'helper', capabilities: ['answering'] }],
  });
});

afterAll(async () => {
  await cx?.close();
  await stub?.close();
  removeTempDirs();
});

describe('POST /api/v1/messages with an array', () => {
  it('answers 202 with one result per message, in order, and delivers every one', async () => {
    const msgs = Array.from({ length: 20 }, (_, i) => ({
      id: `batch-ok-${i}`,
      performative: 'request',
      capability: 'answering',
      content: `question ${i}`,
    }));
    const res = await sendBatch(cx.url, msgs);
    expect(res.status, res.text).toBe(202);
    expect(res.json).toMatchObject({ accepted: 20, duplicates: 0, refused: 0 });
    expect(res.json.results.map((r: Json) => [r.index, r.status, r.id])).toEqual(msgs.map((m, i) => [i, 202, m.id]));
    for (const r of res.json.results) {
      expect(r).toMatchObject({ routed_to: ['helper'], routing: 'one', duplicate: false });
      const c = await cx.server.bus.wait(r.conversation_id, 10_000);
      expect(c.state).toBe('completed');
    }
    // The same batch again: every message a duplicate (200), nothing stored twice.
    const again = await sendBatch(cx.url, msgs);
    expect(again.status, again.text).toBe(202);
    expect(again.json).toMatchObject({ accepted: 0, duplicates: 20, refused: 0 });
    expect(again.json.results.every((r: Json) => r.status === 200 && r.duplicate === true)).toBe(true);
  });

  it('refuses a bad message by its index, naming the field, and sends the others', async () => {
    const msgs: unknown[] = [
      { id: 'batch-mixed-0', performative: 'inform', receiver: 'helper', content: 'first' },
      { id: 'batch-mixed-1', performative: 'shout', receiver: 'helper', content: 'bad act' },
      { id: 'batch-mixed-2', performative: 'inform', receiver: 'helper', content: 'x'.repeat(5000) },
      'not an object',
      { id: 'batch-mixed-4', performative: 'inform', receiver: 'helper', content: 'last' },
    ];
    const res = await sendBatch(cx.url, msgs);
    expect(res.status, res.text).toBe(202);
    expect(res.json).toMatchObject({ accepted: 2, refused: 3 });
    const [a, b, c, d, e] = res.json.results as Json[];
    expect(a).toMatchObject({ index: 0, status: 202, id: 'batch-mixed-0' });
    expect(b).toMatchObject({ index: 1, status: 400, error: { code: 'invalid_message' } });
    expect(b.error.message).toMatch(/^message \[1\]: /);
    expect(b.error.message).toContain('performative');
    expect(b.error.details.index).toBe(1);
    expect(c).toMatchObject({ index: 2, status: 413, error: { code: 'payload_too_large', details: { index: 2 } } });
    expect(c.error.message).toMatch(/^message \[2\]: .*max_message_size/);
    expect(d).toMatchObject({ index: 3, status: 400, error: { code: 'invalid_message', details: { index: 3 } } });
    expect(e).toMatchObject({ index: 4, status: 202, id: 'batch-mixed-4' });
    // Refused messages were not stored; the others were.
    expect((await get(cx.url, '/api/v1/messages/batch-mixed-1')).status).toBe(404);
    expect((await get(cx.url, '/api/v1/messages/batch-mixed-4')).status).toBe(200);
  });

  it('takes a batch larger than [server] max_body_size, up to [messaging] max_batch_size', async () => {
    const msgs = Array.from({ length: 40 }, (_, i) => ({
      performative: 'inform',
      receiver: 'helper',
      content: `${i} ${'y'.repeat(1000)}`,
    }));
    expect(JSON.stringify(msgs).length).toBeGreaterThan(16 * 1024);
    const res = await sendBatch(cx.url, msgs);
    expect(res.status, res.text).toBe(202);
    expect(res.json.accepted).toBe(40);
    // A single message is still bounded by max_body_size and max_message_size.
    const one = await sendBatch(cx.url, { performative: 'inform', receiver: 'helper', content: 'z'.repeat(20_000) });
    expect(one.status, one.text).toBe(413);
  });

  it('refuses a whole batch over the count or size bound, an empty one, and ?wait with a batch', async () => {
    const many = Array.from({ length: 51 }, () => ({ performative: 'inform', receiver: 'helper', content: 'x' }));
    const tooMany = await sendBatch(cx.url, many);
    expect(tooMany.status, tooMany.text).toBe(413);
    expect(tooMany.json.error.message).toContain('max_batch_messages');
    const big = Array.from({ length: 30 }, () => ({
      performative: 'inform',
      receiver: 'helper',
      content: 'x'.repeat(3000),
    }));
    const tooBig = await sendBatch(cx.url, big);
    expect(tooBig.status, tooBig.text).toBe(413);
    expect(tooBig.json.error.details.limit_bytes).toBe(64 * 1024);
    const empty = await sendBatch(cx.url, []);
    expect(empty.status, empty.text).toBe(400);
    expect(empty.json.error.code).toBe('invalid_message');
    const wait = await sendBatch(cx.url, [{ performative: 'inform', receiver: 'helper', content: 'x' }], '?wait=5');
    expect(wait.status, wait.text).toBe(400);
    expect(wait.json.error.details.field).toBe('wait');
  });

  it('records one audit row per request, with the counts', async () => {
    const msgs = Array.from({ length: 5 }, (_, i) => ({
      id: `batch-audit-${i}`,
      performative: 'inform',
      receiver: 'helper',
      content: 'x',
    }));
    const res = await sendBatch(cx.url, msgs);
    expect(res.status, res.text).toBe(202);
    const requestId = res.headers.get('x-request-id')!;
    cx.server.audit!.flush();
    const audit = await get(cx.url, '/api/v1/audit?action=message.send&limit=1000');
    expect(audit.status, audit.text).toBe(200);
    const rows = (audit.json.records as Json[]).filter((r) => r.request_id === requestId);
    expect(rows).toHaveLength(1);
    expect(rows[0].details).toMatchObject({ messages: 5, accepted: 5, refused: 0 });
  });
});
