/**
 * Every JSON log line has each key once. Pino writes a child logger's bindings
 * and the line's own fields (mixin included) side by side, so `trace_id`/`span_id` bound on a
 * request's child logger and added again by the trace mixin appeared twice. The lines of a
 * request, an agent execution and message deliveries (delivered, retried, dead-lettered) are
 * parsed strictly here (scanJsonText refuses duplicate keys), with tracing on.
 */
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scanJsonText } from '../../src/shared/json-text.js';
import { openaiProvider, removeTempDirs, setTestKeys } from '../execution/helpers/caxton.js';
import { startLlmStub, status, type LlmStub } from '../execution/helpers/llm-stub.js';
import { startObserved, type Observed } from './helpers/observed.js';

let stub: LlmStub;
let broken: LlmStub;
let o: Observed;

beforeAll(async () => {
  setTestKeys();
  stub = await startLlmStub(() => ({ content: 'fine' }));
  broken = await startLlmStub(() => status(500, { error: { message: 'down' } }));
  o = await startObserved({
    level: 'debug',
    config: {
      llm: {
        default_provider: 'stub',
        providers: { stub: openaiProvider(stub.url), broken: openaiProvider(broken.url, { max_retries: 0 }) },
      },
      messaging: { max_attempts: 2, retry_base: '10ms' },
    },
    agents: [
      { name: 'helper', capabilities: ['helping'] },
      { name: 'fragile', capabilities: ['breaking'], llm: { provider: 'broken' } },
    ],
    spanProcessors: [new SimpleSpanProcessor(new InMemorySpanExporter())],
  });
});

afterAll(async () => {
  await o?.close();
  await stub?.close();
  await broken?.close();
  removeTempDirs();
});

describe('log lines', () => {
  it('have each key once across a request, an execution and message deliveries', async () => {
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    expect((await o.get('/api/v1/agents', { traceparent })).status).toBe(200);
    const inv = await o.send('POST', '/api/v1/agents/helper/invoke', JSON.stringify({ request: 'hi' }), {
      'content-type': 'application/json',
      traceparent,
    });
    expect(inv.status, inv.text).toBe(200);
    const ok = await o.send(
      'POST',
      '/api/v1/messages?wait=30',
      JSON.stringify({ performative: 'request', receivers: ['helper'], content: 'hello' }),
      { 'content-type': 'application/json' },
    );
    expect(ok.status, ok.text).toBe(200);
    const bad = await o.send(
      'POST',
      '/api/v1/messages?wait=30',
      JSON.stringify({ performative: 'request', receivers: ['fragile'], content: 'hello' }),
      { 'content-type': 'application/json' },
    );
    expect(bad.status, bad.text).toBe(200);
    expect((bad.json as { conversation: { state: string } }).conversation.state).toBe('failed');

    const lines = o.lines.flatMap((chunk) => chunk.split('\n')).filter((l) => l.trim() !== '');
    // The lines this test relies on are there: a request with its trace, a retry, a dead letter.
    expect(lines.some((l) => l.includes('"trace_id":"0af7651916cd43dd8448eb211c80319c"'))).toBe(true);
    expect(lines.some((l) => l.includes('will retry'))).toBe(true);
    expect(lines.some((l) => l.includes('dead-letter'))).toBe(true);
    const problems = lines.map((l) => ({ line: l, problem: scanJsonText(l) })).filter((p) => p.problem !== undefined);
    expect(problems).toEqual([]);
  });
});
