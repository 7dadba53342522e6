/**
 * With `[metrics] enabled = false` no /metrics endpoint reads the HTTP duration histogram, so a
 * live server does not observe it; the request counter, which the status page's request rate
 * reads, still counts every request.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTempDirs, startCaxton, tempDir, writeScript, type Caxton } from '../execution/helpers/caxton.js';

let cx: Caxton;

beforeAll(async () => {
  const script = writeScript(tempDir(), { rules: [{ name: 'echo', content: 'Echo: {{request}}' }] });
  cx = await startCaxton({
    config: { llm: { default_provider: 'bench', providers: { bench: { type: 'scripted', script } } } },
    agents: [{ name: 'echo', capabilities: ['echoing'] }],
  });
});

afterAll(async () => {
  await cx?.close();
  removeTempDirs();
});

const total = async (text: Promise<string>, name: string): Promise<number> =>
  (await text)
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) && l.includes('route="/api/v1/agents/:name/invoke"'))
    .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);

describe('HTTP metrics with [metrics] off', () => {
  it('counts requests for the status page and leaves the duration histogram alone', async () => {
    for (let i = 0; i < 3; i++) expect((await cx.invoke('echo', { request: `hi ${i}` })).status).toBe(200);
    const registry = cx.server.metrics.registry;
    expect(
      await total(registry.getSingleMetricAsString('caxton_http_requests_total'), 'caxton_http_requests_total'),
    ).toBe(3);
    expect(
      await total(
        registry.getSingleMetricAsString('caxton_http_request_duration_seconds'),
        'caxton_http_request_duration_seconds_count',
      ),
    ).toBe(0);
  });
});
