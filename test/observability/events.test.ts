/**
 * The agent event store against a real server: lifecycle (deploy, update, remove, invalid file),
 * communication (message sent and received) and performance (execution finished) events in
 * SQLite, queried with filters, followed over SSE, with trace ids; retention; bad input.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, migrate } from '../../src/storage/index.js';
import type { AgentEvent } from '../../src/observability/agent-events.js';
import { EVENTS_MIGRATIONS, EventStore } from '../../src/observability/sqlite-agent-events.js';
import { openaiProvider, removeTempDirs, setTestKeys, tempDir } from '../execution/helpers/caxton.js';
import { startLlmStub, type LlmStub } from '../execution/helpers/llm-stub.js';
import { startObserved, type Observed } from './helpers/observed.js';
import { waitUntil } from '../helpers/wait.js';

let stub: LlmStub;
let cx: Observed;
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';

beforeAll(async () => {
  setTestKeys();
  // A request saying "refuse me" is refused by the provider: the execution fails.
  stub = await startLlmStub((hit) =>
    JSON.stringify(hit.body).includes('refuse me')
      ? (res) => {
          res.statusCode = 400;
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify({ error: { message: 'refused', type: 'invalid_request_error' } }));
        }
      : { content: 'done', usage: { input: 11, output: 7 } },
  );
  cx = await startObserved({
    config: {
      llm: { default_provider: 'stub', providers: { stub: openaiProvider(stub.url) } },
      messaging: { max_attempts: 1 },
    },
    spanProcessors: [new SimpleSpanProcessor(new InMemorySpanExporter())],
  });
});

afterAll(async () => {
  await cx?.close();
  await stub?.close();
  removeTempDirs();
});

type Events = { events: AgentEvent[]; count: number };

describe('agent event store', () => {
  it('records lifecycle events with the request trace id', async () => {
    await cx.deploy({ name: 'ev-alpha', capabilities: ['ev-cap'] }, { traceparent: `00-${TRACE}-00f067aa0ba902b7-01` });
    await cx.send(
      'PUT',
      '/api/v1/agents/ev-alpha',
      'name = "ev-alpha"\nsystem_prompt = "v2"\ncapabilities = ["ev-cap"]\n',
      { 'content-type': 'application/toml' },
    );
    const r = await cx.get<Events>('/api/v1/events?agent=ev-alpha&type=lifecycle');
    expect(r.status).toBe(200);
    const types = r.json.events.map((e) => e.type);
    expect(types).toEqual(['agent.updated', 'agent.deployed']); // newest first
    const deployed = r.json.events[1]!;
    expect(deployed).toMatchObject({
      category: 'lifecycle',
      agent: 'ev-alpha',
      trace_id: TRACE,
      data: { old_state: null, new_state: 'deployed (revision 1)', origin: 'api' },
    });
    expect(deployed.span_id).toMatch(/^[0-9a-f]{16}$/);
    expect(r.json.events[0]!.data).toMatchObject({
      old_state: 'deployed (revision 1)',
      new_state: 'deployed (revision 2)',
    });
  });

  it('records an invalid agent file', async () => {
    writeFileSync(join(cx.server.config.agents_dir, 'broken.toml'), 'name = "broken"\nsystem_prompt = 42\n');
    const { value: e } = await waitUntil(
      async () => (await cx.get<Events>('/api/v1/events?type=agent.invalid_file')).json.events[0],
      { timeoutMs: 5000 },
    );
    expect(e).toMatchObject({ type: 'agent.invalid_file', data: { new_state: 'invalid' } });
    expect((e.data as { file: string }).file).toContain('broken.toml');
  });

  it('records executions with duration, tokens and status', async () => {
    const res = await cx.send('POST', '/api/v1/agents/ev-alpha/invoke', JSON.stringify({ request: 'hi' }), {
      'content-type': 'application/json',
      traceparent: `00-${TRACE}-00f067aa0ba902b7-01`,
    });
    expect(res.status).toBe(200);
    const r = await cx.get<Events>('/api/v1/events?agent=ev-alpha&type=execution.finished&limit=1');
    const e = r.json.events[0]!;
    expect(e.category).toBe('performance');
    expect(e.trace_id).toBe(TRACE);
    expect(e.data).toMatchObject({
      status: 'ok',
      input_tokens: 11,
      output_tokens: 7,
      turns: 1,
      tool_calls: 0,
      provider: 'stub',
      execution_id: (res.json as { execution_id: string }).execution_id,
    });
    expect((e.data as { duration_ms: number }).duration_ms).toBeGreaterThan(0);
  });

  it('records a failed execution with its id, which names its record', async () => {
    const res = await cx.send('POST', '/api/v1/agents/ev-alpha/invoke', JSON.stringify({ request: 'refuse me' }), {
      'content-type': 'application/json',
    });
    expect(res.status).toBeGreaterThanOrEqual(400);
    const r = await cx.get<Events>('/api/v1/events?agent=ev-alpha&type=execution.finished&limit=1');
    const e = r.json.events[0]!;
    const data = e.data as { status: string; execution_id: string | null };
    expect(data.status).not.toBe('ok');
    expect(data.execution_id).toMatch(/^exec_/);
    // The id is the one its execution record (and a run page) is found by.
    const rec = await cx.get<{ id: string; status: string }>(`/api/v1/executions/${data.execution_id}`);
    expect(rec.status).toBe(200);
    expect(rec.json).toMatchObject({ id: data.execution_id, status: 'error' });
  });

  it('records messages sent and received, with the trace id they carry', async () => {
    const tp = `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`;
    const sent = await cx.send(
      'POST',
      '/api/v1/messages?wait=10',
      JSON.stringify({
        performative: 'request',
        capability: 'ev-cap',
        content: 'do it',
        trace_context: { traceparent: tp },
      }),
      {
        'content-type': 'application/json',
      },
    );
    expect(sent.status).toBe(200);
    const { id, conversation_id } = sent.json as { id: string; conversation_id: string };
    const r = await cx.get<Events>('/api/v1/events?type=communication&limit=100');
    const mine = r.json.events
      .filter((e) => (e.data as { conversation_id: string }).conversation_id === conversation_id)
      .reverse();
    const first = mine.find((e) => e.type === 'message.sent' && (e.data as { message_id: string }).message_id === id)!;
    expect(first).toMatchObject({
      agent: 'user',
      trace_id: 'a'.repeat(32),
      data: { performative: 'request', sender: 'user', receivers: ['ev-alpha'] },
    });
    const received = mine.find((e) => e.type === 'message.received')!;
    expect(received).toMatchObject({
      agent: 'ev-alpha',
      trace_id: 'a'.repeat(32),
      data: { message_id: id, sender: 'user', attempt: 1 },
    });
    // The agent's reply is a message it sent.
    expect(
      mine.some(
        (e) =>
          e.type === 'message.sent' &&
          e.agent === 'ev-alpha' &&
          (e.data as { performative: string }).performative === 'inform',
      ),
    ).toBe(true);
    // The execution the delivery started is in the same conversation.
    const exec = (await cx.get<Events>('/api/v1/events?type=execution.finished&agent=ev-alpha')).json.events;
    expect(exec.some((e) => (e.data as { conversation_id: string }).conversation_id === conversation_id)).toBe(true);
  });

  it('filters by several types, since and limit', async () => {
    const both = await cx.get<Events>('/api/v1/events?type=agent.deployed,execution.finished&agent=ev-alpha');
    expect(new Set(both.json.events.map((e) => e.type))).toEqual(new Set(['agent.deployed', 'execution.finished']));
    const future = await cx.get<Events>(
      `/api/v1/events?since=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`,
    );
    expect(future.json.events).toEqual([]);
    const recent = await cx.get<Events>('/api/v1/events?since=5m&limit=2');
    expect(recent.json.count).toBe(2);
    const all = await cx.get<Events>('/api/v1/events?limit=1000');
    expect(all.json.events[0]!.id).toBeGreaterThan(all.json.events.at(-1)!.id);
  });

  it('streams new events over SSE, filtered, after replaying `since`', async () => {
    const got = cx.stream('/api/v1/events/stream?type=agent.deployed,agent.removed&agent=ev-beta', (evs) =>
      evs.some((e) => e.event === 'agent.removed'),
    );
    // Wait until the stream is open (the ready event) before acting: poll the store's listeners.
    await waitUntil(() => (cx.server.events!.store as EventStore).listenerCount('event') > 0, { timeoutMs: 5000 });
    await cx.deploy({ name: 'ev-beta' });
    expect((await cx.send('DELETE', '/api/v1/agents/ev-beta')).status).toBe(204);
    const events = await got;
    expect(events[0]!.event).toBe('ready');
    expect(events.slice(1).map((e) => e.event)).toEqual(['agent.deployed', 'agent.removed']);
    expect(events[1]!.json).toMatchObject({ agent: 'ev-beta', type: 'agent.deployed' });
    // ?follow with since replays the stored ones first, oldest first.
    const replay = await cx.stream(
      '/api/v1/events?follow&agent=ev-beta&since=1h',
      (evs) => evs.filter((e) => e.event !== 'ready').length >= 2,
    );
    expect(replay.map((e) => e.event)).toEqual(['ready', 'agent.deployed', 'agent.removed']);
  });

  it('answers bad input with 400 naming the field', async () => {
    const type = await cx.get<{ error: { code: string; message: string; details: { issues: { field: string }[] } } }>(
      '/api/v1/events?type=agent.deploy',
    );
    expect(type.status).toBe(400);
    expect(type.json.error.details.issues[0]!.field).toBe('type');
    expect(type.json.error.message).toContain('unknown event type "agent.deploy"; did you mean "agent.deployed"?');
    const since = await cx.get<{ error: { message: string; details: { issues: { field: string }[] } } }>(
      '/api/v1/events?since=yesterday',
    );
    expect(since.status).toBe(400);
    expect(since.json.error.details.issues[0]!.field).toBe('since');
    expect(since.json.error.message).toContain('ISO 8601');
    const limit = await cx.get<{ error: { details: { issues: { field: string }[] } } }>('/api/v1/events?limit=0');
    expect(limit.status).toBe(400);
    expect(limit.json.error.details.issues[0]!.field).toBe('limit');
    const streamBad = await cx.get<{ error: { details: { issues: { field: string }[] } } }>(
      '/api/v1/events/stream?type=nope',
    );
    expect(streamBad.status).toBe(400);
    expect(streamBad.json.error.details.issues[0]!.field).toBe('type');
  });
});

describe('EventStore retention', () => {
  it('writes a tick of events in one batch, deletes events past the retention and beyond max_rows', async () => {
    const db = openDatabase(tempDir('caxton-events-'));
    migrate(db, EVENTS_MIGRATIONS);
    const store = new EventStore({ db, retentionMs: 60_000, maxRows: 150, sweepIntervalMs: 3_600_000 });
    const seen: AgentEvent[] = [];
    store.on('event', (e) => seen.push(e));
    const data = { old_state: null, new_state: 'deployed', reason: null };
    store.record({ type: 'agent.deployed', agent: 'old', time: Date.now() - 120_000, data });
    for (let i = 0; i < 99; i++) store.record({ type: 'agent.deployed', agent: `a${i}`, data });
    // count() flushes what is queued: 100 rows in one transaction, which also triggered a sweep
    // (every max(100, max_rows / 10) inserts) that deleted the one past the retention.
    expect(store.count()).toBe(99);
    expect(seen).toHaveLength(100);
    expect(store.query({ agent: 'old' })).toEqual([]);
    expect(store.sweep()).toBe(0);
    for (let i = 0; i < 100; i++) store.record({ type: 'agent.updated', agent: `b${i}`, data });
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(store.count()).toBeLessThanOrEqual(199);
    store.sweep();
    expect(store.count()).toBe(150);
    const newest = store.query({ limit: 1 })[0]!;
    expect(newest.agent).toBe('b99');
    expect(store.query({ order: 'asc', limit: 1 })[0]!.agent).toBe('a49');
    store.close();
    db.close();
  });
});
