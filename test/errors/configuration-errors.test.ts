/**
 * An agent whose `[llm] provider` is not configured is the operator's problem,
 * not the caller's. Every way of running it answers `configuration_error` (500) naming the agent,
 * the field and the fix — invoke, /v1/chat/completions, MCP `ask_<agent>` — and a message to it
 * goes straight to the dead-letter queue with that reason (never retried), against a real server.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const TOML = `[llm]\ndefault_provider = "main"\n[llm.providers.main]\ntype = "scripted"\nscript = "replies.toml"\n\n[messaging]\nmax_attempts = 5\nretry_base = "10ms"\n`;
const LOST = `name = "lost"\ndescription = "names a provider nobody configured"\ncapabilities = ["lost-things"]\nsystem_prompt = "You are lost."\n[llm]\nprovider = "mian"\n`;

let t: TestServer;

beforeAll(async () => {
  const dir = makeTempDir('caxton-config-errors-');
  writeFileSync(join(dir, 'replies.toml'), 'fallback = "ok"\n');
  t = await startTestServer({ dir, toml: TOML, agentFiles: { 'lost.toml': LOST } });
});

afterAll(async () => {
  await t?.close();
  removeTempDirs();
});

interface Envelope {
  error: { code: string; message: string; details: { agent?: string; field?: string; provider?: string } };
}

function expectConfigurationError(status: number, body: Envelope): void {
  expect(status).toBe(500);
  expect(body.error.code).toBe('configuration_error');
  expect(body.error.message).toContain('agent "lost"');
  expect(body.error.message).toContain('llm.provider');
  expect(body.error.message).toContain('"mian"');
  expect(body.error.message).toContain('did you mean "main"');
  expect(body.error.message).toContain('[llm.providers.mian]');
  expect(body.error.details).toMatchObject({ agent: 'lost', field: 'llm.provider', provider: 'mian' });
}

describe('an agent naming a provider that does not exist', () => {
  it('invoke → 500 configuration_error naming agent, field and fix', async () => {
    const res = await fetch(`${t.url}/api/v1/agents/lost/invoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ request: 'hi' }),
    });
    expectConfigurationError(res.status, (await res.json()) as Envelope);
  });

  it('/v1/chat/completions → 5xx with the configuration code', async () => {
    const res = await fetch(`${t.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'lost', messages: [{ role: 'user', content: 'hi' }] }),
    });
    const text = await res.text();
    expect(res.status, text).toBe(500);
    expect(text).toContain('configuration_error');
    expect(text).toContain('agent \\"lost\\"');
    expect(text).toContain('llm.provider');
  });

  it('MCP ask_lost → an error result saying configuration, naming the agent', async () => {
    const client = new Client({ name: 'config-errors-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${t.url}/mcp`)));
    try {
      const r = (await client.callTool({ name: 'ask_lost', arguments: { request: 'hi' } })) as {
        isError?: boolean;
        content: { type: string; text: string }[];
      };
      expect(r.isError).toBe(true);
      const text = r.content.map((c) => c.text).join('\n');
      expect(text).toContain('configuration');
      expect(text).toContain('agent "lost"');
      expect(text).toContain('llm.provider');
    } finally {
      await client.close();
    }
  });

  it('a message to it is dead-lettered at the first attempt with the configuration reason (no retries)', async () => {
    const res = await fetch(`${t.url}/api/v1/messages?wait=30`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ performative: 'request', receivers: ['lost'], content: 'are you there?' }),
    });
    const sent = (await res.json()) as { id: string; conversation: { state: string; reason: string } };
    expect(res.status, JSON.stringify(sent)).toBe(200);
    expect(sent.conversation.state).toBe('failed');
    const list = (await (await fetch(`${t.url}/api/v1/dead-letters`)).json()) as {
      dead_letters: { message_id: string; attempts: number; last_error: string }[];
    };
    const dead = list.dead_letters.find((d) => d.message_id === sent.id);
    expect(dead).toBeDefined();
    expect(dead!.attempts).toBe(1);
    expect(dead!.last_error).toContain('server configuration error');
    expect(dead!.last_error).toContain('agent "lost"');
  });
});
