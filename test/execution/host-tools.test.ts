/**
 * Host tools (Executor.hostTools): tools that run in the server process whatever the agent's
 * isolation mode. In `worker` and `process` mode the task reaches them through the isolation's
 * host calls. Each tool here records the ToolContext it got into an array of this test process,
 * with the thread and process it ran on: proof that it ran in the host.
 *
 * The executor is built directly (config from loadServerConfig, a registry filled here), against
 * a real OpenAI-compatible HTTP stub. Worker threads and child processes load the compiled task
 * module from dist/: `npm test` builds first (pretest); when running vitest directly, run
 * `npm run build` before.
 */
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread, threadId } from 'node:worker_threads';
import { stringify } from 'smol-toml';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AgentRegistry, parseAgent } from '../../src/agents/index.js';
import { loadServerConfig } from '../../src/config/index.js';
import { Executor, type ExecutionEvent } from '../../src/execution/index.js';
import { CaxtonError } from '../../src/shared/errors.js';
import { calculatorTool, ToolRegistry, type CalledTool, type Tool, type ToolContext } from '../../src/tools/index.js';
import { startLlmStub, type LlmStub, type Reply, type StubHit } from './helpers/llm-stub.js';
import { assistantTurns, offeredTools, toolResultsOf } from './helpers/wire.js';

const MODES = ['context', 'worker', 'process'] as const;
type Mode = (typeof MODES)[number];

interface Seen {
  tool: string;
  args: Record<string, unknown>;
  ctx: Omit<ToolContext, 'signal'> & { aborted: boolean };
  pid: number;
  thread: number;
  mainThread: boolean;
}

const seen: Seen[] = [];
/** What the host registry's audit hook heard (`onCalled`), in every mode. */
const called: CalledTool[] = [];

function record(tool: string, args: Record<string, unknown>, ctx: ToolContext): void {
  const { signal, ...rest } = ctx;
  seen.push({
    tool,
    args,
    ctx: { ...rest, aborted: signal.aborted },
    pid: process.pid,
    thread: threadId,
    mainThread: isMainThread,
  });
}

function hostTool(name: string, invoke: Tool['invoke']): Tool {
  return {
    name,
    description: `host tool ${name}`,
    input_schema: { type: 'object', properties: { text: { type: 'string' } } },
    invoke,
  };
}

const echoHost = hostTool('echo_host', async (args, ctx) => {
  record('echo_host', args, ctx);
  return { content: `echo:${String(args.text)}` };
});
const notesAdd = hostTool('notes.add', async (args, ctx) => {
  record('notes.add', args, ctx);
  return { content: 'noted' };
});
const secretHost = hostTool('secret_host', async (args, ctx) => {
  record('secret_host', args, ctx);
  return { content: 'the secret' };
});
const failHost = hostTool('fail_host', async (args, ctx) => {
  record('fail_host', args, ctx);
  throw new CaxtonError('tool_error', 'host exploded', { why: 'on purpose' });
});

let llm: LlmStub;
let dir: string;
let executor: Executor;
const registry = new AgentRegistry();

function deploy(name: string, mode: Mode, tools: string[]): void {
  const toml = stringify({
    name,
    description: `host tools test agent ${name}`,
    capabilities: ['testing'],
    tools,
    system_prompt: `You are ${name}.`,
    llm: { provider: 'oai' },
    ...(mode !== 'context' && { execution: { isolation: mode } }),
  });
  const parsed = parseAgent(toml, { format: 'toml' });
  if (!parsed.ok) throw new Error(`bad test agent: ${JSON.stringify(parsed.errors)}`);
  const now = new Date().toISOString();
  registry.upsert({
    definition: parsed.definition,
    format: 'toml',
    origin: { kind: 'api' },
    revision: 1,
    deployed_at: now,
    updated_at: now,
  });
}

beforeAll(async () => {
  process.env.TEST_OPENAI_KEY = 'sk-test-openai-key';
  llm = await startLlmStub();
  dir = mkdtempSync(join(tmpdir(), 'caxton-host-tools-'));
  const file = join(dir, 'caxton.toml');
  writeFileSync(
    file,
    stringify({
      server: { port: 0 },
      metrics: { enabled: false },
      logging: { level: 'silent' },
      llm: {
        default_provider: 'oai',
        providers: {
          oai: {
            type: 'openai',
            base_url: `${llm.url}/v1`,
            api_key_env: 'TEST_OPENAI_KEY',
            model: 'gpt-test',
            retry_base: '10ms',
          },
        },
      },
      execution: { pool_size: 1 },
    }),
  );
  const config = loadServerConfig({ file, env: {}, cwd: dir });
  const hostTools = new ToolRegistry();
  hostTools.register(echoHost);
  executor = new Executor(config, registry, { hostTools });
  // Host tools can also be registered once the executor exists.
  executor.hostTools.register(notesAdd);
  executor.hostTools.register(secretHost);
  executor.hostTools.register(failHost);
  executor.hostTools.onCalled = (c) => called.push(c);
  for (const mode of MODES) {
    deploy(`host-${mode}`, mode, ['calculator', 'echo_host', 'notes.*', 'fail_host']);
    deploy(`narrow-${mode}`, mode, ['echo_host']);
  }
});

afterAll(async () => {
  await executor?.close();
  await llm?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  llm.reset();
  seen.length = 0;
  called.length = 0;
});

describe('registering host tools', () => {
  it('exposes the registry it was given', () => {
    expect(executor.hostTools.get('echo_host')).toBe(echoHost);
    expect(executor.hostTools.list().map((t) => t.name)).toEqual([
      'echo_host',
      'fail_host',
      'notes.add',
      'secret_host',
    ]);
  });

  it('reserves the built-in tool names', () => {
    for (const name of ['calculator', 'current_time', 'llm.chat']) {
      expect(() => executor.hostTools.register(hostTool(name, async () => ({ content: 'impostor' })))).toThrow(
        CaxtonError,
      );
    }
    try {
      executor.hostTools.register(hostTool('calculator', async () => ({ content: 'impostor' })));
    } catch (e) {
      expect((e as CaxtonError).code).toBe('conflict');
      expect((e as CaxtonError).message).toMatch(/"calculator" is the name of a built-in tool/);
    }
    const clash = new ToolRegistry();
    clash.register(calculatorTool);
    expect(
      () => new Executor(loadServerConfig({ env: {}, cwd: dir }), new AgentRegistry(), { hostTools: clash }),
    ).toThrow(/reserved for a built-in tool/);
    // Without a registry the executor makes an empty one.
    const own = new Executor(loadServerConfig({ env: {}, cwd: dir }), new AgentRegistry());
    expect(own.hostTools.list()).toEqual([]);
  });
});

describe.each(MODES)('%s isolation', (mode) => {
  it('runs host tools in the server process next to the built-ins, and the model sees their results', async () => {
    llm.setScript((hit: StubHit): Reply => {
      if (assistantTurns(hit) === 0) {
        return {
          tool_calls: [
            { id: 'h1', name: 'echo_host', arguments: { text: 'hello' } },
            { id: 'c1', name: 'calculator', arguments: { expression: '6*7' } },
            { id: 'n1', name: 'notes_add', arguments: { text: 'remember' } },
          ],
        };
      }
      return {
        content: `model saw: ${toolResultsOf(hit)
          .map((r) => r.content)
          .join(' | ')}`,
      };
    });
    const events: ExecutionEvent[] = [];
    const before = Date.now();
    const res = await executor.invoke(
      `host-${mode}`,
      {
        request: 'use the host',
        conversation_id: 'conv-1',
        chain: ['alpha', 'beta'],
        traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      },
      { onEvent: (e) => events.push(e) },
    );
    expect(res.isolation).toBe(mode);
    expect(res.content).toBe('model saw: echo:hello | 42 | noted');
    expect(res.tool_calls.map((c) => [c.name, c.result, c.is_error])).toEqual([
      ['echo_host', 'echo:hello', false],
      ['calculator', '42', false],
      ['notes.add', 'noted', false],
    ]);
    // The model was offered the allowed built-ins and host tools (`notes.*` covers notes.add), nothing else.
    expect(offeredTools(llm.hits[0]!)).toEqual(['calculator', 'echo_host', 'fail_host', 'notes_add']);

    // Both host tools ran here: this process, this (main) thread.
    expect(seen.map((s) => s.tool)).toEqual(['echo_host', 'notes.add']);
    for (const s of seen) {
      expect(s).toMatchObject({ pid: process.pid, thread: threadId, mainThread: true });
      expect(s.ctx).toMatchObject({
        agent: `host-${mode}`,
        execution_id: res.execution_id,
        conversation_id: 'conv-1',
        chain: ['alpha', 'beta'],
        traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
        aborted: false,
      });
      expect(s.ctx.deadline).toBeGreaterThan(before);
    }
    expect(seen[0]!.args).toEqual({ text: 'hello' });
    // The audit hook heard each call once, with this execution: the built-in too, which ran in
    // the task in worker and process mode and was reported to the server.
    expect(called.map((c) => [c.name, c.ctx.execution_id, c.ctx.agent, c.outcome, c.result]).sort()).toEqual([
      ['calculator', res.execution_id, `host-${mode}`, 'ok', '42'],
      ['echo_host', res.execution_id, `host-${mode}`, 'ok', 'echo:hello'],
      ['notes.add', res.execution_id, `host-${mode}`, 'ok', 'noted'],
    ]);
    expect(called.find((c) => c.name === 'calculator')!.args).toEqual({ expression: '6*7' });
    // Tool events stream from wherever the execution runs.
    expect(events.filter((e) => e.type === 'tool_result').map((e) => (e as { name: string }).name)).toEqual([
      'echo_host',
      'calculator',
      'notes.add',
    ]);
  });

  it('refuses a host tool outside the allowlist without running it', async () => {
    llm.setScript((hit: StubHit): Reply => {
      if (assistantTurns(hit) === 0) {
        return {
          tool_calls: [
            { id: 's1', name: 'secret_host', arguments: {} },
            // Not offered, so not in the request's wire names: a model naming it as Caxton does.
            { id: 'n1', name: 'notes.add', arguments: {} },
            { id: 'e1', name: 'echo_host', arguments: { text: 'allowed' } },
          ],
        };
      }
      return { content: 'done' };
    });
    const res = await executor.invoke(`narrow-${mode}`, { request: 'try everything' });
    expect(offeredTools(llm.hits[0]!)).toEqual(['echo_host']);
    const [secret, notes, echo] = res.tool_calls;
    expect(secret).toMatchObject({ name: 'secret_host', is_error: true });
    expect(secret!.result).toMatch(/not allowed for agent "narrow-/);
    expect(notes).toMatchObject({ name: 'notes.add', is_error: true });
    expect(notes!.result).toMatch(/not allowed/);
    expect(echo).toMatchObject({ name: 'echo_host', is_error: false, result: 'echo:allowed' });
    expect(seen.map((s) => s.tool)).toEqual(['echo_host']);
  });

  it('turns a host tool that throws into an error result for the model', async () => {
    llm.setScript((hit: StubHit): Reply => {
      if (assistantTurns(hit) === 0) return { tool_calls: [{ id: 'f1', name: 'fail_host', arguments: { text: 'x' } }] };
      return { content: `after: ${toolResultsOf(hit)[0]?.content ?? '?'}` };
    });
    const res = await executor.invoke(`host-${mode}`, { request: 'fail please', chain: ['root'] });
    expect(res.tool_calls).toHaveLength(1);
    expect(res.tool_calls[0]).toMatchObject({ name: 'fail_host', is_error: true });
    expect(res.tool_calls[0]!.result).toBe('tool "fail_host" failed: host exploded');
    expect(res.content).toContain('host exploded');
    expect(res.finish_reason).toBe('stop');
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ tool: 'fail_host', mainThread: true, ctx: { chain: ['root'] } });
  });

  it('leaves chain and traceparent out of the ToolContext when the request has none', async () => {
    llm.setScript((hit: StubHit): Reply =>
      assistantTurns(hit) === 0
        ? { tool_calls: [{ id: 'e1', name: 'echo_host', arguments: { text: 'bare' } }] }
        : { content: 'ok' },
    );
    await executor.invoke(`narrow-${mode}`, { request: 'plain' });
    expect(seen).toHaveLength(1);
    expect(seen[0]!.ctx).not.toHaveProperty('chain');
    expect(seen[0]!.ctx).not.toHaveProperty('traceparent');
    expect(seen[0]!.ctx).not.toHaveProperty('conversation_id');
  });

  it("gives the host tool the execution's own signal: cancelling the request aborts it", async () => {
    const ac = new AbortController();
    const signals: boolean[] = [];
    const cancelling = hostTool(`cancel_${mode}`, async (_args, ctx) => {
      ac.abort(); // the client goes away while the tool runs
      signals.push(ctx.signal.aborted);
      return { content: 'too late' };
    });
    executor.hostTools.register(cancelling);
    try {
      deploy(`cancel-${mode}`, mode, [cancelling.name]);
      llm.setScript((hit: StubHit): Reply =>
        assistantTurns(hit) === 0
          ? { tool_calls: [{ id: 'x1', name: cancelling.name, arguments: {} }] }
          : { content: 'should not get here' },
      );
      let error: unknown;
      try {
        await executor.invoke(`cancel-${mode}`, { request: 'go' }, { signal: ac.signal });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(CaxtonError);
      expect((error as CaxtonError).code).toBe('cancelled');
      expect(signals).toEqual([true]);
    } finally {
      executor.hostTools.unregister(cancelling.name);
    }
  });
});

describe('request checks', () => {
  it('rejects a malformed chain or traceparent', async () => {
    await expect(
      executor.check('host-context', { request: 'x', chain: 'alpha' as unknown as string[] }),
    ).rejects.toThrow(/"chain" must be an array of agent names/);
    await expect(
      executor.check('host-context', { request: 'x', chain: ['a', 3] as unknown as string[] }),
    ).rejects.toThrow(/"chain"/);
    await expect(executor.check('host-context', { request: 'x', traceparent: 5 as unknown as string })).rejects.toThrow(
      /"traceparent" must be a string/,
    );
  });
});
