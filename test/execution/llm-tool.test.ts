import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTempDirs, startCaxton, tempDir, writeScript, type Caxton } from './helpers/caxton.js';

/** LLM providers are also a tool (`llm.chat`), reached through the same allowlist as any tool. */
let cx: Caxton;

beforeAll(async () => {
  const script = writeScript(tempDir(), {
    rules: [
      { name: 'inner', match: '^inner question$', content: 'inner answer' },
      {
        name: 'delegate',
        match: 'delegate',
        turns: [
          { tool_calls: [{ name: 'llm.chat', arguments: { prompt: 'inner question' } }] },
          { content: 'Inner said: {{last_tool_result}}' },
        ],
      },
    ],
  });
  cx = await startCaxton({
    config: { llm: { default_provider: 'demo', providers: { demo: { type: 'scripted', script } } } },
  });
  await cx.deploy({ name: 'delegator', tools: ['llm.chat'] });
  await cx.deploy({ name: 'no-llm-tool', tools: [] });
});

afterAll(async () => {
  await cx?.close();
  removeTempDirs();
});

describe('llm.chat tool', () => {
  it('an agent allowed llm.chat calls a provider through the tool registry', async () => {
    const res = await cx.invoke('delegator', { request: 'please delegate' });
    expect(res.status).toBe(200);
    expect(res.json.tool_calls).toMatchObject([{ name: 'llm.chat', result: 'inner answer', is_error: false }]);
    expect(res.json.content).toBe('Inner said: inner answer');
  });

  it('an agent without llm.chat in its tools is refused it', async () => {
    const res = await cx.invoke('no-llm-tool', { request: 'please delegate' });
    expect(res.status).toBe(200);
    expect(res.json.tool_calls[0]).toMatchObject({ name: 'llm.chat', is_error: true });
    expect(res.json.tool_calls[0].result).toMatch(/not allowed/);
  });
});
