/**
 * The Prometheus endpoint of a live server after real traffic (executions with tool calls,
 * messages delivered, a dead letter): the documented metric names are there with bounded labels,
 * and `promtool check metrics` (Debian package prometheus) accepts the output.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasSystem } from '../helpers/system.js';
import { openaiProvider, removeTempDirs, setTestKeys, startCaxton, type Caxton } from '../execution/helpers/caxton.js';
import { startLlmStub, type LlmStub, type StubHit } from '../execution/helpers/llm-stub.js';

let stub: LlmStub;
let cx: Caxton;
let text = '';

beforeAll(async () => {
  setTestKeys();
  stub = await startLlmStub((hit: StubHit) => {
    const msgs = hit.body.messages as { role: string; content: string }[];
    if (!msgs.some((m) => m.role === 'tool'))
      return { content: '', tool_calls: [{ id: 'c1', name: 'calculator', arguments: { expression: '6 * 7' } }] };
    return { content: 'forty-two' };
  });
  cx = await startCaxton({
    config: {
      metrics: { enabled: true, port: 0 },
      llm: { default_provider: 'stub', providers: { stub: openaiProvider(stub.url) } },
      messaging: { max_attempts: 1 },
    },
    agents: [{ name: 'math', capabilities: ['arithmetic'], tools: ['calculator'] }],
  });
  for (let i = 0; i < 3; i++) expect((await cx.invoke('math', { request: `question ${i}` })).status).toBe(200);
  const ok = await cx.server.bus.submit({
    performative: 'request',
    capability: 'arithmetic',
    content: 'what is 6 * 7?',
  });
  await cx.server.bus.wait(ok.conversation_id, 10_000);
  const fyi = await cx.server.bus.submit({ performative: 'inform', capability: 'arithmetic', content: 'fyi' });
  await cx.server.bus.wait(fyi.conversation_id, 10_000);
  expect((await cx.invoke('nobody', { request: 'x' })).status).toBe(404);
  await cx.server.bus.settled();
  // A memory operation through the host tool (as an agent would call it).
  const mem = await cx.server.executor.hostTools.invoke(
    ['create_entities'],
    'create_entities',
    { entities: [{ name: 'Ada', entityType: 'person', observations: ['wrote the first program'] }] },
    { agent: 'math', execution_id: 'exec_test', deadline: Date.now() + 30_000, signal: new AbortController().signal },
  );
  expect(mem.is_error, mem.content).toBeFalsy();
  const res = await fetch(cx.server.metricsUrl!);
  expect(res.status).toBe(200);
  text = await res.text();
});

afterAll(async () => {
  await cx?.close();
  await stub?.close();
  removeTempDirs();
});

const sample = (name: string, labels: Record<string, string> = {}): number | undefined => {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
      return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
};

describe('Prometheus metrics', () => {
  it('counts executions, LLM requests and tokens, tool calls and messages with bounded labels', () => {
    expect(sample('caxton_agent_executions_total', { agent: 'math', status: 'ok' })).toBe(5);
    expect(sample('caxton_agent_execution_duration_seconds_count', { agent: 'math' })).toBe(5);
    expect(sample('caxton_llm_requests_total', { provider: 'stub', status: 'ok' })).toBe(10);
    expect(sample('caxton_llm_tokens_total', { provider: 'stub', kind: 'input' })).toBeGreaterThan(0);
    expect(sample('caxton_tool_calls_total', { tool: 'calculator', status: 'ok' })).toBe(5);
    expect(sample('caxton_tool_call_duration_seconds_count', { tool: 'calculator' })).toBe(5);
    expect(sample('caxton_messages_processed_total', { performative: 'request', status: 'delivered' })).toBe(1);
    expect(sample('caxton_messages_processed_total', { performative: 'inform', status: 'delivered' })).toBe(1);
    expect(sample('caxton_message_processing_duration_seconds_count', { performative: 'request' })).toBe(1);
    expect(sample('caxton_errors_total', { code: 'agent_not_found' })).toBe(1);
    for (const name of [
      'caxton_queue_depth',
      'caxton_dead_letters',
      'caxton_active_conversations',
      'caxton_agent_events_total',
      'caxton_http_requests_total',
      'caxton_process_cpu_seconds_total',
      'caxton_nodejs_heap_size_used_bytes',
    ]) {
      expect(text, name).toMatch(new RegExp(`^${name}(\\{| )`, 'm'));
    }
    expect(sample('caxton_queue_depth')).toBe(0);
    expect(sample('caxton_memory_operations_total', { operation: 'create_entities', status: 'ok' })).toBe(1);
    expect(sample('caxton_memory_operation_duration_seconds_count', { operation: 'create_entities' })).toBe(1);
    expect(sample('caxton_memory_entities')).toBe(1);
    // No ids in labels: nothing that looks like a message, conversation or execution id.
    expect(text).not.toMatch(/(msg|conv|exec)_[0-9a-z]{8,}/);
  });

  it.skipIf(!hasSystem('promtool'))('passes promtool check metrics', () => {
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(r.error, 'promtool not found: apt-get install prometheus').toBeUndefined();
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
