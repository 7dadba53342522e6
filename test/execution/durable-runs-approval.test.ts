/**
 * Approval (docs/runs.md): a tool call that needs a person pauses its run in `awaiting_approval`,
 * holding nothing in memory, across a restart (kill -9); approved, the call runs once and the run
 * finishes; denied, the model gets a tool error with the reason; nobody deciding within
 * `[approvals] timeout` denies it. Runs started in the background, by invoke (202 with the run
 * named) and by a message (its delivery waits, then is answered). A real `caxton serve`, a real
 * stdio MCP server with a side effect, the strict model stand-in.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, cleanup, type ServeProcess } from '../cli/helpers/cli.js';
import { startLlmStub, type LlmStub, stubLlmSection } from './helpers/llm-stub.js';
import {
  api,
  appendDir,
  appendedLines,
  approverAgent,
  approverReply,
  decide,
  runView as run,
  startAppendServer,
  waitForRun as waitFor,
  writeAppendConfig,
} from './helpers/runs.js';
import { waitUntil } from '../helpers/wait.js';

let stub: LlmStub;

beforeAll(async () => {
  assertBuilt();
  stub = await startLlmStub(approverReply);
});

afterAll(async () => {
  await cleanup();
  await stub?.close();
});

function project(opts: { approvalTimeout?: string } = {}): string {
  const dir = appendDir({ writer: approverAgent('writer', 'journal.append') });
  writeAppendConfig(
    dir,
    {},
    {
      messaging: { retry_base: '100ms', retry_max: '300ms' },
      ...(opts.approvalTimeout !== undefined && { approvals: { timeout: opts.approvalTimeout } }),
      llm: stubLlmSection(stub.url),
    },
  );
  return dir;
}

const start = (dir: string): Promise<ServeProcess> => startAppendServer(dir, { STUB_KEY: 'k' });
const lines = appendedLines;

describe('a tool call that needs approval', () => {
  it(
    'waits across kill -9 holding nothing, runs once when approved, and a denial reaches the model',
    { timeout: 90_000 },
    async () => {
      const dir = project();
      let server = await start(dir);
      const started = await api<{ run_id: string }>(server.url, '/api/v1/agents/writer/runs', {
        method: 'POST',
        body: JSON.stringify({ request: 'append two lines' }),
      });
      expect(started.status).toBe(202);
      const id = started.body.run_id;
      const waiting = await waitFor(server.url, id, 'awaiting_approval');
      expect(waiting.approvals).toEqual([
        expect.objectContaining({
          call_id: 'c-first',
          tool: 'journal.append',
          arguments: { line: 'first' },
          decision: null,
        }),
      ]);
      expect(lines(dir)).toEqual([]);
      // Listed as what needs a person.
      const list = await api<{ runs: { id: string }[] }>(server.url, '/api/v1/runs?status=awaiting_approval');
      expect(list.body.runs.map((r) => r.id)).toEqual([id]);

      server.child.kill('SIGKILL');
      await server.exited;
      const hitsBefore = stub.hits.length;
      server = await start(dir);
      // Still waiting after the restart; nothing was run or asked again.
      expect((await run(server.url, id)).status).toBe('awaiting_approval');
      expect(stub.hits.length).toBe(hitsBefore);

      const approved = await decide(server.url, id, 'approve', { reason: 'looks fine' });
      expect(approved.status).toBe(200);
      // The second call waits in turn: deny it with a reason.
      const second = await waitFor(server.url, id, 'awaiting_approval');
      expect(second.approvals.map((a) => [a.call_id, a.decision, a.decided_by])).toEqual([
        ['c-first', 'approved', 'local:anonymous'],
        ['c-second', null, null],
      ]);
      expect(lines(dir)).toEqual(['first']);
      const denied = await decide(server.url, id, 'deny', { call_id: 'c-second', reason: 'not today' });
      expect(denied.status).toBe(200);
      const done = await waitFor(server.url, id, 'completed');
      expect(lines(dir)).toEqual(['first']);
      expect(done.response?.content).toMatch(/^done: appended first \| .*approval was denied: not today/);
      // Deciding again: nothing waits.
      const again = await decide(server.url, id, 'approve');
      expect(again.status).toBe(409);
      server.child.kill('SIGTERM');
      await server.exited;
    },
  );

  it(
    'an invoke is answered 202 naming the run; a message delivery waits and is answered after approval',
    { timeout: 90_000 },
    async () => {
      const dir = project();
      const server = await start(dir);
      const invoked = await api<{ error: { code: string; details: { run_id: string; tool: string } } }>(
        server.url,
        '/api/v1/agents/writer/invoke',
        { method: 'POST', body: JSON.stringify({ request: 'append two lines' }) },
      );
      expect(invoked.status).toBe(202);
      expect(invoked.body.error.code).toBe('awaiting_approval');
      expect(invoked.body.error.details.tool).toBe('journal.append');
      const invokeRun = invoked.body.error.details.run_id;
      await decide(server.url, invokeRun, 'approve');
      await waitFor(server.url, invokeRun, 'awaiting_approval');
      await decide(server.url, invokeRun, 'approve');
      expect((await waitFor(server.url, invokeRun, 'completed')).response?.content).toBe(
        'done: appended first | appended second',
      );

      const sent = await api<{ conversation_id: string }>(server.url, '/api/v1/messages', {
        method: 'POST',
        body: JSON.stringify({ performative: 'request', receiver: 'writer', content: 'append two lines' }),
      });
      expect(sent.status).toBe(202);
      let messageRun = '';
      await waitUntil(
        async () => {
          const r = await api<{ runs: { id: string; origin: string }[] }>(
            server.url,
            '/api/v1/runs?status=awaiting_approval&origin=message',
          );
          messageRun = r.body.runs[0]?.id ?? '';
          return messageRun !== '';
        },
        { timeoutMs: 20_000 },
      );
      await decide(server.url, messageRun, 'approve');
      await waitFor(server.url, messageRun, 'awaiting_approval');
      await decide(server.url, messageRun, 'approve');
      // The delivery asked again finds the run finished and answers the conversation with it.
      await waitUntil(
        async () => {
          const c = await api<{ messages: { performative: string; content: unknown }[] }>(
            server.url,
            `/api/v1/conversations/${sent.body.conversation_id}`,
          );
          return (c.body.messages ?? []).some((m) => m.performative === 'inform');
        },
        { timeoutMs: 20_000 },
      );
      expect(lines(dir)).toEqual(['first', 'second', 'first', 'second']);
      server.child.kill('SIGTERM');
      await server.exited;
    },
  );

  it(
    'a waiting run cancelled stays cancelled: a decision is refused, its message is answered failed, nothing ran',
    { timeout: 90_000 },
    async () => {
      const dir = project();
      const server = await start(dir);
      const sent = await api<{ conversation_id: string }>(server.url, '/api/v1/messages', {
        method: 'POST',
        body: JSON.stringify({ performative: 'request', receiver: 'writer', content: 'append two lines' }),
      });
      expect(sent.status).toBe(202);
      let id = '';
      await waitUntil(
        async () => {
          const r = await api<{ runs: { id: string }[] }>(server.url, '/api/v1/runs?status=awaiting_approval');
          id = r.body.runs[0]?.id ?? '';
          return id !== '';
        },
        { timeoutMs: 20_000 },
      );
      const cancelled = await api<{ status: string }>(server.url, `/api/v1/runs/${id}/cancel`, {
        method: 'POST',
        body: '{}',
      });
      expect(cancelled.body.status).toBe('cancelled');
      expect((await decide(server.url, id, 'approve')).status).toBe(409);
      // The delivery, asked again, finds the run cancelled: the sender is told, nothing is retried.
      await waitUntil(
        async () => {
          const c = await api<{ messages: { performative: string }[] }>(
            server.url,
            `/api/v1/conversations/${sent.body.conversation_id}`,
          );
          return (c.body.messages ?? []).some((m) => m.performative === 'failure');
        },
        { timeoutMs: 20_000, what: 'a failure reply' },
      );
      expect((await run(server.url, id)).status).toBe('cancelled');
      expect(lines(dir)).toEqual([]);
      server.child.kill('SIGTERM');
      await server.exited;
    },
  );

  it('nobody deciding within [approvals] timeout denies the call', { timeout: 60_000 }, async () => {
    const dir = project({ approvalTimeout: '1s' });
    const server = await start(dir);
    const started = await api<{ run_id: string }>(server.url, '/api/v1/agents/writer/runs', {
      method: 'POST',
      body: JSON.stringify({ request: 'append two lines' }),
    });
    const done = await waitFor(server.url, started.body.run_id, 'completed');
    expect(done.approvals.map((a) => [a.decision, a.decided_by])).toEqual([
      ['denied', 'timeout'],
      ['denied', 'timeout'],
    ]);
    expect(lines(dir)).toEqual([]);
    server.child.kill('SIGTERM');
    await server.exited;
  });
});
