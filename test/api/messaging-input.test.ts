/**
 * Bad input to the messaging REST API on a real server: every kind of malformed message, body and
 * query gets a clear error naming the field (or the line and column), and nothing is stored.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectEnvelope, type Caxton } from '../execution/helpers/caxton.js';
import {
  conversationTotal,
  get,
  request,
  send,
  startMessagingServer,
  type MessagingServer,
} from './helpers/messaging-server.js';

let server: MessagingServer;
let cx: Caxton;

beforeAll(async () => {
  server = await startMessagingServer();
  ({ cx } = server);
});

afterAll(() => server?.close());

describe('bad input: a clear error naming the field, and nothing stored', () => {
  interface Case {
    label: string;
    body: string | Uint8Array;
    status: number;
    code: string;
    field?: string;
    says: RegExp;
  }
  const ok = { performative: 'request', capability: 'answering', content: 'fine' };
  const cases: Case[] = [
    {
      label: 'malformed JSON (line and column)',
      body: '{\n  "performative": "request",\n  "capability": "answering"\n  "content": "x"\n}',
      status: 400,
      code: 'invalid_message',
      says: /not valid JSON: line 4, column 3: expected "," or "}"/,
    },
    {
      label: 'an unknown performative (with a suggestion)',
      body: JSON.stringify({ ...ok, performative: 'reqest' }),
      status: 400,
      code: 'invalid_message',
      field: 'performative',
      says: /unknown performative "reqest"; did you mean "request"\?/,
    },
    {
      label: 'oversized content ([messaging] max_message_size)',
      body: JSON.stringify({ ...ok, content: 'x'.repeat(5000) }),
      status: 413,
      code: 'payload_too_large',
      field: 'content',
      says: /at most 4096 \(\[messaging\] max_message_size\)/,
    },
    {
      label: 'a body over [server] max_body_size',
      body: JSON.stringify({ ...ok, content: 'x'.repeat(20 * 1024) }),
      status: 413,
      code: 'payload_too_large',
      says: /larger than the 16 KiB limit/,
    },
    {
      label: 'neither receiver nor capability',
      body: JSON.stringify({ performative: 'request', content: 'to whom?' }),
      status: 400,
      code: 'invalid_message',
      field: 'receivers',
      says: /needs a receiver .* or a "capability"/,
    },
    {
      label: 'both receiver and capability',
      body: JSON.stringify({ ...ok, receiver: 'helper' }),
      status: 400,
      code: 'invalid_message',
      field: 'capability',
      says: /either receivers or a capability, not both/,
    },
    {
      label: 'a user-defined parameter without the X- prefix',
      body: JSON.stringify({ ...ok, params: { Priority: 'high' } }),
      status: 400,
      code: 'invalid_message',
      field: 'params.Priority',
      says: /start with "X-"/,
    },
    {
      label: 'an X- parameter that is not a string',
      body: JSON.stringify({ ...ok, 'X-priority': 5 }),
      status: 400,
      code: 'invalid_message',
      field: 'X-priority',
      says: /X-priority: expected a string value/,
    },
    {
      label: 'a reply_by that is neither a time nor a duration',
      body: JSON.stringify({ ...ok, reply_by: 'tomorrow' }),
      status: 400,
      code: 'invalid_message',
      field: 'reply_by',
      says: /reply_by: "tomorrow" is neither an ISO 8601 time nor a duration/,
    },
    {
      label: 'a reply_by beyond what a date can hold',
      body: JSON.stringify({ ...ok, reply_by: '99999999999999999s' }),
      status: 400,
      code: 'invalid_message',
      field: 'reply_by',
      says: /reply_by: "99999999999999999s" is out of range/,
    },
    {
      label: 'an unknown parameter (with a suggestion)',
      body: JSON.stringify({ ...ok, conversaton_id: 'c1' }),
      status: 400,
      code: 'invalid_message',
      field: 'conversaton_id',
      says: /unknown parameter; did you mean "conversation_id"\?/,
    },
    {
      label: 'an unknown protocol',
      body: JSON.stringify({ ...ok, protocol: 'fipa-gossip' }),
      status: 400,
      code: 'invalid_message',
      field: 'protocol',
      says: /unknown protocol "fipa-gossip"/,
    },
    {
      label: 'a JSON number instead of an object',
      body: '12',
      status: 400,
      code: 'invalid_message',
      field: '(message)',
      says: /expected a JSON object/,
    },
    { label: 'an empty body', body: '', status: 400, code: 'invalid_message', says: /body is empty/ },
    {
      label: 'a body that is not UTF-8',
      body: Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d]),
      status: 400,
      code: 'invalid_message',
      says: /not valid UTF-8 \(invalid byte at line 1, column 3\)/,
    },
  ];

  for (const c of cases) {
    it(c.label, async () => {
      const before = await conversationTotal(cx.url);
      const res = await request(cx.url, 'POST', '/api/v1/messages', c.body, { 'content-type': 'application/json' });
      const err = expectEnvelope(res, c.status, c.code);
      expect(err.message).toMatch(c.says);
      if (c.field !== undefined) {
        // invalid_message names the field in the message and in details.issues; payload_too_large in details.field.
        if (c.code === 'invalid_message') expect(err.message).toContain(`${c.field}: `);
        expect(err.details.field ?? err.details.issues?.[0]?.field).toBe(c.field);
      }
      expect(await conversationTotal(cx.url)).toBe(before);
    });
  }

  it('a JSON syntax error reports its line and column in the details too', async () => {
    const res = await send(cx.url, '{"performative": "request",, "capability": "answering"}');
    const err = expectEnvelope(res, 400, 'invalid_message');
    expect(err.details).toMatchObject({ line: 1, column: 28 });
  });

  it('bad query parameters and ids name the parameter', async () => {
    const state = expectEnvelope(await get(cx.url, '/api/v1/conversations?state=complete'), 400, 'invalid_request');
    expect(state.message).toContain('state: unknown state "complete"; did you mean "completed"?');
    const limit = expectEnvelope(await get(cx.url, '/api/v1/conversations?limit=0'), 400, 'invalid_request');
    expect(limit.message).toContain('limit');
    const id = expectEnvelope(await get(cx.url, '/api/v1/dead-letters/abc'), 400, 'invalid_request');
    expect(id.message).toContain('id: expected a dead-letter id (a positive integer)');
    expectEnvelope(await request(cx.url, 'POST', '/api/v1/dead-letters/1.5/replay'), 400, 'invalid_request');
    const before = await conversationTotal(cx.url);
    const wait = expectEnvelope(await send(cx.url, ok, '?wait=forever'), 400, 'invalid_request');
    expect(wait.message).toContain('wait');
    expectEnvelope(await send(cx.url, ok, '?wait=301'), 400, 'invalid_request');
    expect(await conversationTotal(cx.url)).toBe(before);
  });
});
