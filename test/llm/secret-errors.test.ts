/**
 * Provider errors are scrubbed of the configured secrets where they enter Caxton (ADR 0017), for
 * both HTTP clients: an error body echoing the key (also where it would be cut at the quoting
 * limit), a stream's error event, a non-JSON body, and a response that is not an event stream.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  AnthropicProvider,
  LlmError,
  OpenAiProvider,
  type LlmProvider,
  type StreamEvent,
} from '../../src/llm/index.js';
import { registerSecrets } from '../../src/shared/secrets.js';
import {
  frame,
  json,
  providerConfig,
  sse,
  startServer,
  text,
  type Handler,
  type TestServer,
} from './helpers/server.js';

const KEY_ENV = 'CAXTON_TEST_SECRET_ERRORS_KEY';
const KEY = 'sk-scrub-me-0123456789abcdefghij';
const servers: TestServer[] = [];
async function serve(handler: Handler): Promise<TestServer> {
  const s = await startServer(handler);
  servers.push(s);
  return s;
}
beforeAll(() => {
  process.env[KEY_ENV] = KEY;
  registerSecrets([KEY]); // what startServer does with secretValues(config)
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

const forms = [KEY, encodeURIComponent(KEY), Buffer.from(`u:${KEY}`).toString('base64').slice(3, -3), KEY.slice(0, 20)];

async function failure(p: Promise<unknown>): Promise<LlmError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(LlmError);
  return e as LlmError;
}

function expectNoKey(e: LlmError): void {
  const all = JSON.stringify({ message: e.message, reason: e.reason, details: e.details, stack: e.stack });
  for (const f of forms) expect(all, `contains ${f}`).not.toContain(f);
}

const flavours: { name: string; make(url: string): LlmProvider; streamError: string[] }[] = [
  {
    name: 'openai',
    make: (url) =>
      new OpenAiProvider(
        'p',
        providerConfig({ type: 'openai', base_url: url, api_key_env: KEY_ENV, model: 'm', max_retries: 0 }),
      ),
    streamError: [
      frame({
        error: {
          message: `upstream rejected Bearer ${KEY}`,
          type: 'invalid_request_error',
          param: null,
          code: 'invalid_api_key',
        },
      }),
    ],
  },
  {
    name: 'anthropic',
    make: (url) =>
      new AnthropicProvider(
        'p',
        providerConfig({ type: 'anthropic', base_url: url, api_key_env: KEY_ENV, model: 'm', max_retries: 0 }),
      ),
    streamError: [
      frame(
        { type: 'error', error: { type: 'authentication_error', message: `upstream rejected x-api-key ${KEY}` } },
        'error',
      ),
    ],
  },
];

describe.each(flavours)('$name', (f) => {
  const req = { model: 'm', messages: [{ role: 'user' as const, content: 'hi' }] };

  it('a 401 body echoing the key (raw, URL-encoded, inside Basic) is quoted without it', async () => {
    const s = await serve(
      json(401, {
        error: {
          message: `bad key ${KEY} / ${encodeURIComponent(KEY)} / Basic ${Buffer.from(`u:${KEY}`).toString('base64')}`,
        },
      }),
    );
    const e = await failure(f.make(s.url).chat(req));
    expect(e.kind).toBe('unauthorized');
    expect(e.message).toContain('bad key *** / *** / Basic');
    expectNoKey(e);
  });

  it('the key where the quote is cut (300 characters) leaves no beginning of it either', async () => {
    const s = await serve(text(500, `${'x'.repeat(279)} ${KEY} tail`));
    const e = await failure(f.make(s.url).chat(req));
    expect(e.kind).toBe('server_error');
    expectNoKey(e);
  });

  it('an error event in the stream is quoted without the key', async () => {
    const s = await serve(sse(f.streamError));
    const e = await failure(
      (async () => {
        const events: StreamEvent[] = [];
        for await (const ev of f.make(s.url).stream(req)) events.push(ev);
      })(),
    );
    expect(e.message).toContain('upstream rejected');
    expectNoKey(e);
  });

  it('a body that is not an event stream is quoted without the key', async () => {
    const s = await serve(text(200, `<html>proxy login for ${KEY}</html>`, 'text/html'));
    const e = await failure(
      (async () => {
        for await (const _ of f.make(s.url).stream(req)) void _;
      })(),
    );
    expect(e.kind).toBe('malformed_response');
    expectNoKey(e);
  });
});
