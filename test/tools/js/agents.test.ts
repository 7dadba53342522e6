/**
 * A JavaScript tool server deployed over REST (`{"manifest", "wasm": base64 of tool.js}`) into a
 * real server, called by an agent driven by the scripted LLM as a host tool `js-text.slugify`,
 * audited with the agent; a script that does not parse is refused with 422 and nothing is stored.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLlmStub, type LlmStub, type Reply, type StubHit } from '../../execution/helpers/llm-stub.js';
import {
  openaiProvider,
  removeTempDirs,
  setTestKeys,
  startCaxton,
  type Caxton,
} from '../../execution/helpers/caxton.js';
import { assistantTurns, offeredTools, toolResultsOf } from '../../execution/helpers/wire.js';
import { api } from '../servers/helpers.js';
import { jsExample, jsManifestText } from './helpers.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

let llm: LlmStub;
let cx: Caxton;

beforeAll(async () => {
  setTestKeys();
  llm = await startLlmStub();
  cx = await startCaxton({
    config: { llm: { default_provider: 'stub', providers: { stub: openaiProvider(llm.url) } } },
    agents: [],
  });
});

afterAll(async () => {
  await cx?.close();
  await llm?.close();
  removeTempDirs();
});

describe('JavaScript tools over REST and for agents', () => {
  it('deploys tool.js base64-encoded in "wasm"; an agent calls js-text.slugify; the call is audited', async () => {
    const { manifest, source } = jsExample();
    const d = await api(cx.url, 'POST', '/api/v1/tools', { manifest, wasm: source.toString('base64') });
    expect(d.status, d.text).toBe(201);
    expect(d.json).toMatchObject({
      name: 'js-text',
      state: 'loaded',
      tools: ['js-text.stats', 'js-text.slugify', 'js-text.read_file', 'js-text.calls'],
    });

    const direct = await api(cx.url, 'POST', '/api/v1/tools/js-text/stats/call', { args: { text: 'a b c' } });
    expect(direct.json).toMatchObject({ is_error: false, outcome: 'ok', json: { chars: 5, words: 3, lines: 1 } });
    // An agent naming the server's tools deploys once the server offers them.
    await cx.deploy({ name: 'writer', tools: ['js-text.*'] });

    llm.reset();
    llm.setScript((hit: StubHit): Reply =>
      assistantTurns(hit) === 0
        ? { tool_calls: [{ id: 's1', name: 'js-text_slugify', arguments: { title: 'Hello, QuickJS World' } }] }
        : { content: `slug: ${toolResultsOf(hit).at(-1)!.content}` },
    );
    const res = await cx.invoke('writer', { request: 'make a slug', conversation_id: 'conv-js' });
    expect(res.status, res.text).toBe(200);
    expect(offeredTools(llm.hits[0]!)).toEqual([
      'js-text_calls',
      'js-text_read_file',
      'js-text_slugify',
      'js-text_stats',
    ]);
    expect(res.json.content).toBe('slug: hello-quickjs-world');
    cx.server.toolAudit.flush();
    const recs = (await api(cx.url, 'GET', '/api/v1/tools/audit?agent=writer')).json.records as Json[];
    expect(recs).toHaveLength(1);
    expect(recs[0]).toMatchObject({
      agent: 'writer',
      tool: 'js-text.slugify',
      server: 'js-text',
      outcome: 'ok',
      conversation_id: 'conv-js',
      execution_id: res.json.execution_id,
    });
  });

  it('a syntax error is refused with 422 naming the line; nothing is stored', async () => {
    const before = ((await api(cx.url, 'GET', '/api/v1/tools')).json.servers as Json[]).map((s) => s.name);
    const r = await api(cx.url, 'POST', '/api/v1/tools', {
      manifest: jsManifestText('broken', ['f']),
      wasm: Buffer.from('export function f( {\n}\n').toString('base64'),
    });
    expect(r.status).toBe(422);
    expect(r.json.error.code).toBe('validation_failed');
    expect(r.json.error.message).toMatch(/the module failed to load: SyntaxError: .*\(at tool\.js:\d+:\d+\)/);
    expect(((await api(cx.url, 'GET', '/api/v1/tools')).json.servers as Json[]).map((s) => s.name)).toEqual(before);
  });
});
