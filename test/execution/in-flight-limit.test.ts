/**
 * `[execution] max_in_flight`: a node holding its limit of runs refuses the next one at once with
 * 429 rate_limited and Retry-After, on every surface that starts runs (REST invoke, streamed or
 * not, and /v1/chat/completions in OpenAI's error shape), decided in one place (Executor.admit);
 * the runs under the limit are unaffected, and the count goes back down as runs end. A real
 * server on port 0, with a scripted model that holds the runs until their clients go away.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitUntil } from '../helpers/wait.js';
import { removeTempDirs, startCaxton, tempDir, writeScript, type Caxton } from './helpers/caxton.js';

let cx: Caxton;

beforeAll(async () => {
  const script = writeScript(tempDir(), {
    rules: [
      // Held until the client goes away (the test never waits this long).
      { name: 'hold', match: '^hold$', latency_ms: 600_000, content: 'late' },
      { name: 'echo', content: 'Echo: {{request}}' },
    ],
  });
  cx = await startCaxton({
    config: {
      execution: { max_in_flight: 2 },
      llm: { default_provider: 'demo', providers: { demo: { type: 'scripted', script } } },
    },
  });
  await cx.deploy({ name: 'slow', system_prompt: 'You answer.' });
});

afterAll(async () => {
  await cx?.close();
  removeTempDirs();
});

/** Starts `n` runs the model holds; resolves once the node counts them in flight. */
async function hold(n: number): Promise<AbortController> {
  const ac = new AbortController();
  for (let i = 0; i < n; i++)
    void fetch(`${cx.url}/api/v1/agents/slow/invoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ request: 'hold' }),
      signal: ac.signal,
    }).catch(() => undefined);
  await waitUntil(() => cx.server.executor.inFlight === n, { what: `${n} runs in flight` });
  return ac;
}

describe('[execution] max_in_flight', () => {
  it('answers 429 with Retry-After beyond the limit on REST invoke, streamed invoke and /v1 chat; runs under it are unaffected', async () => {
    // Under the limit: answered as usual.
    const under = await cx.invoke('slow', { request: 'first' });
    expect(under.status).toBe(200);
    expect(under.json.content).toBe('Echo: first');

    const held = await hold(2);
    try {
      const refused = await cx.invoke('slow', { request: 'third' });
      expect(refused.status).toBe(429);
      expect(refused.headers.get('retry-after')).toBe('1');
      expect(refused.json.error.code).toBe('rate_limited');
      expect(refused.json.error.message).toContain('max_in_flight');
      expect(refused.json.error.details).toMatchObject({ limit: 'in_flight', scope: 'node', value: 2 });

      const streamed = await fetch(`${cx.url}/api/v1/agents/slow/invoke`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
        body: JSON.stringify({ request: 'third' }),
      });
      expect(streamed.status).toBe(429);
      expect(streamed.headers.get('retry-after')).toBe('1');
      expect(((await streamed.json()) as { error: { code: string } }).error.code).toBe('rate_limited');

      for (const stream of [false, true]) {
        const chat = await fetch(`${cx.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'slow', stream, messages: [{ role: 'user', content: 'third' }] }),
        });
        expect(chat.status).toBe(429);
        expect(chat.headers.get('retry-after')).toBe('1');
        const body = (await chat.json()) as { error: { type: string; message: string } };
        expect(body.error.type).toBe('rate_limit_error');
        expect(body.error.message).toContain('max_in_flight');
      }
      // Nothing refused took a place.
      expect(cx.server.executor.inFlight).toBe(2);
    } finally {
      held.abort();
    }
    // The held runs end with their clients; the node takes runs again.
    await waitUntil(() => cx.server.executor.inFlight === 0, { what: 'the held runs to end' });
    const after = await cx.invoke('slow', { request: 'again' });
    expect(after.status).toBe(200);
    expect(after.json.content).toBe('Echo: again');
    const chat = await fetch(`${cx.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'slow', messages: [{ role: 'user', content: 'chat' }] }),
    });
    expect(chat.status).toBe(200);
    expect(cx.server.executor.inFlight).toBe(0);
  });
});
