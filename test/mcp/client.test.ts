/**
 * Mounting external MCP servers (McpClientManager) against the reference servers from npm, run as
 * real child processes over stdio, and server-everything in its Streamable HTTP mode.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { McpClientManager, type McpServerStatus } from '../../src/mcp/index.js';
import { ToolRegistry } from '../../src/tools/index.js';
import { MemoryToolAuditSink } from '../../src/audit/index.js';
import { waitUntil } from '../helpers/wait.js';
import {
  ctx,
  EVERYTHING,
  FILESYSTEM,
  freePort,
  httpServer,
  kill,
  killChildren,
  MEMORY,
  SLOW,
  startEverythingHttp,
  stdioServer,
} from './helpers.js';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'caxton-mcp-'));
  dirs.push(d);
  return d;
};

afterAll(async () => {
  await killChildren();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('stdio reference servers mounted as host tools', () => {
  let tools: ToolRegistry;
  let mcp: McpClientManager;
  let audit: MemoryToolAuditSink;
  let files: string;

  beforeAll(async () => {
    files = tmp();
    writeFileSync(join(files, 'hello.txt'), 'hello from a temp dir\n');
    tools = new ToolRegistry();
    audit = new MemoryToolAuditSink();
    mcp = new McpClientManager({
      tools,
      audit,
      backoff: { baseMs: 100, maxMs: 1000 },
      servers: {
        everything: stdioServer(EVERYTHING, ['stdio']),
        memory: stdioServer(MEMORY, [], { env: { MEMORY_FILE_PATH: join(tmp(), 'memory.jsonl') } }),
        fs: stdioServer(FILESYSTEM, [files]),
        off: stdioServer(EVERYTHING, ['stdio'], { enabled: false }),
      },
    });
    await mcp.start();
  });
  afterAll(async () => {
    await mcp.close();
  });

  it('lists every server ready with its tools registered as NAME.tool', () => {
    const byName = Object.fromEntries(mcp.statuses().map((s) => [s.name, s])) as Record<string, McpServerStatus>;
    expect(byName.everything).toMatchObject({ state: 'ready', transport: 'stdio', last_error: null, attempts: 0 });
    expect(byName.everything!.tool_names).toEqual(
      expect.arrayContaining(['everything.echo', 'everything.get-sum', 'everything.trigger-long-running-operation']),
    );
    expect(byName.everything!.tools).toBe(byName.everything!.tool_names.length);
    expect(byName.everything!.pid).toEqual(expect.any(Number));
    expect(byName.memory).toMatchObject({ state: 'ready' });
    expect(byName.memory!.tool_names).toEqual(expect.arrayContaining(['memory.create_entities', 'memory.read_graph']));
    expect(byName.fs!.tool_names).toEqual(expect.arrayContaining(['fs.read_text_file', 'fs.list_directory']));
    expect(byName.off).toMatchObject({ state: 'disabled', tools: 0 });
    expect(tools.get('everything.echo')?.input_schema).toMatchObject({
      type: 'object',
      properties: { message: { type: 'string' } },
    });
    expect(tools.list().some((t) => t.name.startsWith('off.'))).toBe(false);
  });

  it('calls echo and get-sum on server-everything', async () => {
    expect(await tools.invoke(['everything.*'], 'everything.echo', { message: 'hi there' }, ctx())).toEqual({
      content: 'Echo: hi there',
    });
    expect(await tools.invoke(['everything.get-sum'], 'everything.get-sum', { a: 2, b: 40 }, ctx())).toEqual({
      content: 'The sum of 2 and 40 is 42.',
    });
  });

  it('creates entities and reads the graph back on server-memory', async () => {
    const created = await tools.invoke(
      ['memory.*'],
      'memory.create_entities',
      { entities: [{ name: 'Caxton', entityType: 'project', observations: ['speaks MCP both ways'] }] },
      ctx(),
    );
    expect(created.is_error).toBeFalsy();
    const graph = await tools.invoke(['memory.*'], 'memory.read_graph', {}, ctx());
    expect(graph.is_error).toBeFalsy();
    expect(graph.content).toContain('speaks MCP both ways');
  });

  it('reads a file in the granted directory with server-filesystem, and is refused outside it', async () => {
    const ok = await tools.invoke(['fs.*'], 'fs.read_text_file', { path: join(files, 'hello.txt') }, ctx());
    expect(ok).toEqual({ content: 'hello from a temp dir\n' });
    const outside = await tools.invoke(['fs.*'], 'fs.read_text_file', { path: '/etc/hostname' }, ctx());
    expect(outside.is_error).toBe(true);
    expect(outside.content).toMatch(/access denied|outside allowed/i);
  });

  it('obeys the allowlist: a tool not listed is refused, never run', async () => {
    const before = audit.records.length;
    const r = await tools.invoke(['memory.*', 'everything.get-sum'], 'everything.echo', { message: 'x' }, ctx());
    expect(r).toEqual({
      content: expect.stringContaining('tool "everything.echo" is not allowed for agent "tester"'),
      is_error: true,
      refused: true,
    });
    expect(tools.specsFor(['everything.echo']).map((s) => s.name)).toEqual(['everything.echo']);
    expect(audit.records.length).toBe(before);
  });

  it('audits every call: server, tool, digest, outcome, sizes', async () => {
    await tools.invoke(
      ['everything.*'],
      'everything.echo',
      { message: 'audited' },
      { ...ctx(), conversation_id: 'conv_1' },
    );
    const rec = audit.records.at(-1)!;
    expect(rec).toMatchObject({
      agent: 'tester',
      execution_id: 'exec_test',
      conversation_id: 'conv_1',
      server: 'everything',
      tool: 'everything.echo',
      outcome: 'ok',
      fuel_used: 0,
    });
    expect(rec.args_digest).toMatch(/^[0-9a-f]{64}$/);
    expect(rec.input_bytes).toBe(Buffer.byteLength(JSON.stringify({ message: 'audited' })));
    expect(rec.output_bytes).toBe(Buffer.byteLength('Echo: audited'));
  });

  it('times out a slow call at the deadline, cancels it, and the server keeps working', async () => {
    const t0 = Date.now();
    const r = await tools.invoke(
      ['everything.*'],
      'everything.trigger-long-running-operation',
      { duration: 20, steps: 20 },
      ctx(800),
    );
    const elapsed = Date.now() - t0;
    expect(r.is_error).toBe(true);
    expect(r.content).toMatch(
      /MCP server "everything" did not answer tool "everything.trigger-long-running-operation" within \d+ ms; the call was cancelled|timed out/,
    );
    expect(elapsed).toBeLessThan(3000);
    await waitUntil(
      () =>
        audit.records.some((x) => x.tool === 'everything.trigger-long-running-operation' && x.outcome === 'timeout'),
      { timeoutMs: 5000, what: 'a timeout audit record' },
    );
    expect(mcp.status('everything')!.state).toBe('ready');
    expect(await tools.invoke(['everything.*'], 'everything.echo', { message: 'still here' }, ctx())).toEqual({
      content: 'Echo: still here',
    });
  });

  it('the server timeout applies when it is shorter than the deadline', async () => {
    const t = new ToolRegistry();
    // connect_timeout keeps the 500 ms call timeout off the child's start and handshake, which a
    // loaded machine can take seconds over (with one timeout for both, the connect kept failing).
    const m = new McpClientManager({
      tools: t,
      servers: { slow: stdioServer(EVERYTHING, ['stdio'], { timeout: 500, connect_timeout: 20_000 }) },
    });
    await m.start();
    try {
      expect(m.status('slow')!.state).toBe('ready');
      const r = await t.invoke(
        ['slow.*'],
        'slow.trigger-long-running-operation',
        { duration: 10, steps: 10 },
        ctx(20_000),
      );
      expect(r).toEqual({
        content:
          'MCP server "slow" did not answer tool "slow.trigger-long-running-operation" within 500 ms; the call was cancelled',
        is_error: true,
      });
    } finally {
      await m.close();
    }
    expect(t.list()).toEqual([]);
  });

  it('cancels the call when the execution is cancelled', async () => {
    const ac = new AbortController();
    const p = tools.invoke(
      ['everything.*'],
      'everything.trigger-long-running-operation',
      { duration: 20, steps: 20 },
      ctx(20_000, ac.signal),
    );
    setTimeout(() => ac.abort(new Error('client went away')), 200);
    await expect(p).rejects.toThrow('client went away');
    expect(await tools.invoke(['everything.*'], 'everything.echo', { message: 'after cancel' }, ctx())).toEqual({
      content: 'Echo: after cancel',
    });
  });

  it('child killed: status shows the failure, tools stay registered and fail clearly, then it reconnects', async () => {
    const before = mcp.status('everything')!;
    const count = before.tools;
    process.kill(before.pid!, 'SIGKILL');
    const { value: down } = await waitUntil(
      () => {
        const s = mcp.status('everything')!;
        return s.state !== 'ready' && s;
      },
      { timeoutMs: 5000, what: 'everything to be seen down' },
    );
    expect(['failed', 'reconnecting']).toContain(down.state);
    expect(down.last_error).toMatch(/connection lost: the server process exited/);
    expect(down.tools).toBe(count);
    expect(tools.get('everything.echo')).toBeDefined();

    // Starting a new child and its handshake take longer than this call.
    const r = await tools.invoke(['everything.*'], 'everything.echo', { message: 'anyone?' }, ctx());
    expect(r.is_error).toBe(true);
    expect(r.content).toMatch(
      /^MCP server "everything" is unavailable \(state: (failed|reconnecting); last error: connection lost: the server process exited/,
    );
    expect(r.content).toContain('tool "everything.echo" cannot be called now');
    expect(audit.records.at(-1)).toMatchObject({ tool: 'everything.echo', outcome: 'io_error' });

    const { value: up } = await waitUntil(
      () => {
        const s = mcp.status('everything')!;
        return s.state === 'ready' && s;
      },
      { timeoutMs: 10_000, what: 'everything to reconnect' },
    );
    // Exactly one more: a reconnection counts when it succeeds (failed attempts count in
    // `attempts`), so one kill is one reconnection however many attempts a loaded machine needs.
    expect(up.reconnects).toBe(before.reconnects + 1);
    expect(up.pid).not.toBe(before.pid);
    expect(up.tools).toBe(count);
    expect(await tools.invoke(['everything.*'], 'everything.echo', { message: 'back' }, ctx())).toEqual({
      content: 'Echo: back',
    });
  });

  it('a call in flight when the child dies fails with the server named', async () => {
    const pid = mcp.status('everything')!.pid!;
    const p = tools.invoke(
      ['everything.*'],
      'everything.trigger-long-running-operation',
      { duration: 20, steps: 20 },
      ctx(),
    );
    setTimeout(() => process.kill(pid, 'SIGKILL'), 200);
    const r = await p;
    expect(r.is_error).toBe(true);
    expect(r.content).toMatch(
      /^MCP server "everything" closed the connection during the call to "everything.trigger-long-running-operation": connection lost: the server process exited/,
    );
    await waitUntil(() => mcp.status('everything')!.state === 'ready', {
      timeoutMs: 10_000,
      what: 'everything to reconnect',
    });
  });
});

describe('deadlines and cancellation reach the MCP server', () => {
  it('connect_timeout bounds starting and the handshake; timeout bounds each call', async () => {
    const events = join(tmp(), 'events.log');
    writeFileSync(events, '');
    const env = { EVENTS_FILE: events, START_DELAY_MS: '1500' };
    const tools = new ToolRegistry();
    // The server answers its handshake 1.5 s after it starts, the calls are cut at 300 ms.
    const mcp = new McpClientManager({
      tools,
      servers: {
        short: stdioServer(SLOW, [], { env, timeout: 300 }),
        patient: stdioServer(SLOW, [], { env, timeout: 300, connect_timeout: 30_000 }),
      },
      backoff: { baseMs: 60_000, maxMs: 60_000 },
    });
    await mcp.start();
    try {
      expect(mcp.status('short')).toMatchObject({
        state: 'failed',
        last_error: expect.stringMatching(/^connecting failed: .*time/i),
      });
      expect(mcp.status('patient')!.state).toBe('ready');
      const r = await tools.invoke(['patient.*'], 'patient.wait', { ms: 20_000, tag: 'cut' }, ctx(20_000));
      expect(r).toEqual({
        content: 'MCP server "patient" did not answer tool "patient.wait" within 300 ms; the call was cancelled',
        is_error: true,
      });
    } finally {
      await mcp.close();
    }
  });

  it('a call past its deadline or cancelled by the execution is cancelled on the server (notifications/cancelled)', async () => {
    const events = join(tmp(), 'events.log');
    writeFileSync(events, '');
    const tools = new ToolRegistry();
    const mcp = new McpClientManager({
      tools,
      servers: { slow: stdioServer(SLOW, [], { env: { EVENTS_FILE: events } }) },
    });
    await mcp.start();
    const seen = () => readFileSync(events, 'utf8').trim().split('\n');
    try {
      expect(await tools.invoke(['slow.*'], 'slow.wait', { ms: 10, tag: 'quick' }, ctx())).toEqual({
        content: 'waited 10',
      });

      const r = await tools.invoke(['slow.*'], 'slow.wait', { tag: 'deadline' }, ctx(400));
      // The MCP call's own timeout is due just before the registry's: it names the server. When the
      // event loop stalls past both (a loaded machine), the registry's answer can come first; the
      // server is told to cancel either way.
      expect(r).toMatchObject({
        content: expect.stringMatching(
          /^(MCP server "slow" did not answer tool "slow.wait" within \d+ ms; the call was cancelled|tool "slow.wait" timed out after \d+ ms)$/,
        ),
        is_error: true,
      });
      await waitUntil(() => seen().includes('cancelled deadline'), {
        timeoutMs: 5000,
        what: 'the server to see the cancellation',
      });

      const ac = new AbortController();
      setTimeout(() => ac.abort(new Error('execution cancelled')), 200);
      await expect(tools.invoke(['slow.*'], 'slow.wait', { tag: 'aborted' }, ctx(20_000, ac.signal))).rejects.toThrow(
        'execution cancelled',
      );
      await waitUntil(() => seen().includes('cancelled aborted'), {
        timeoutMs: 5000,
        what: 'the server to see the cancellation',
      });
      expect(seen()).toEqual([
        'started quick',
        'finished quick',
        'started deadline',
        'cancelled deadline',
        'started aborted',
        'cancelled aborted',
      ]);
    } finally {
      await mcp.close();
    }
  });
});

describe('servers that cannot start', () => {
  afterEach(async () => {
    await killChildren();
  });

  it('never a silent empty list: the status says why and keeps retrying with backoff', async () => {
    const tools = new ToolRegistry();
    const mcp = new McpClientManager({
      tools,
      backoff: { baseMs: 50, maxMs: 200 },
      servers: {
        missing: {
          command: '/nonexistent/mcp-server',
          args: [],
          env: {},
          headers: {},
          timeout: 2000,
          enabled: true,
          gateway: false,
        },
        // Its timeout far above a child's start on a loaded machine: the exit, not the timeout, ends its attempt.
        crashing: stdioServer('-e', ['console.error("fatal: MCP_TOKEN is not set"); process.exit(3)'], {
          timeout: 30_000,
        }),
      },
    });
    await mcp.start();
    try {
      const missing = mcp.status('missing')!;
      // Between two attempts it is 'failed', during one 'reconnecting' (retries run every 50-200 ms).
      expect(['failed', 'reconnecting']).toContain(missing.state);
      expect(missing.tools).toBe(0);
      expect(missing.attempts).toBeGreaterThanOrEqual(1); // retries every 50-200 ms: more may have run while the other server started
      expect(missing.last_error).toMatch(/connecting failed: spawn \/nonexistent\/mcp-server ENOENT/);
      // Only between attempts is a next one scheduled; during one, next_retry_at is null.
      expect(missing.next_retry_at).toEqual(missing.state === 'failed' ? expect.any(String) : null);
      const { value: between } = await waitUntil(
        () => {
          const s = mcp.status('missing')!;
          return s.state === 'failed' && s;
        },
        { timeoutMs: 5000, what: 'missing to be between two attempts' },
      );
      expect(Date.parse(between.next_retry_at!)).toBeGreaterThan(Date.parse(between.last_error_at!));
      const { value: crashed } = await waitUntil(() => mcp.status('crashing')!.last_error ?? false, {
        timeoutMs: 30_000,
        what: 'crashing to say why it failed',
      });
      expect(crashed).toContain('fatal: MCP_TOKEN is not set');
      await waitUntil(() => mcp.status('missing')!.attempts >= 3, { timeoutMs: 5000, what: 'more attempts' });
    } finally {
      await mcp.close();
    }
    expect(mcp.status('missing')!.state).toBe('closed');
  });
});

describe('Streamable HTTP server mounted by url', () => {
  afterAll(async () => {
    await killChildren();
  });

  it('lists and calls tools, notices the server going away, and reconnects when it is back', async () => {
    const port = await freePort();
    let child = await startEverythingHttp(port);
    const tools = new ToolRegistry();
    const audit = new MemoryToolAuditSink();
    const mcp = new McpClientManager({
      tools,
      audit,
      backoff: { baseMs: 100, maxMs: 500 },
      // A ping's timeout is its interval: 200 ms has been too short for the server on a loaded machine.
      pingIntervalMs: 1000,
      servers: { web: httpServer(`http://127.0.0.1:${port}/mcp`) },
    });
    await mcp.start();
    try {
      expect(mcp.status('web')).toMatchObject({
        state: 'ready',
        transport: 'http',
        target: `http://127.0.0.1:${port}/mcp`,
        pid: null,
      });
      expect(await tools.invoke(['web.*'], 'web.echo', { message: 'over http' }, ctx())).toEqual({
        content: 'Echo: over http',
      });
      expect(await tools.invoke(['web.*'], 'web.get-sum', { a: 1, b: 2 }, ctx())).toEqual({
        content: 'The sum of 1 and 2 is 3.',
      });
      const slow = await tools.invoke(
        ['web.*'],
        'web.trigger-long-running-operation',
        { duration: 20, steps: 20 },
        ctx(600),
      );
      expect(slow.is_error).toBe(true);

      await kill(child);
      const { value: down } = await waitUntil(
        () => {
          const s = mcp.status('web')!;
          return s.state !== 'ready' && s;
        },
        { timeoutMs: 5000, what: 'the HTTP server to be seen down' },
      );
      expect(down.last_error).toMatch(/connection lost|connecting failed/);
      expect(tools.get('web.echo')).toBeDefined();
      const r = await tools.invoke(['web.*'], 'web.echo', { message: 'down?' }, ctx());
      expect(r.is_error).toBe(true);
      expect(r.content).toMatch(/^MCP server "web" (is unavailable|could not be reached)/);
      expect(audit.records.at(-1)).toMatchObject({ tool: 'web.echo', outcome: 'io_error' });

      child = await startEverythingHttp(port);
      await waitUntil(() => mcp.status('web')!.state === 'ready', { timeoutMs: 10_000, what: 'web to reconnect' });
      expect(await tools.invoke(['web.*'], 'web.echo', { message: 'back' }, ctx())).toEqual({ content: 'Echo: back' });
      expect(mcp.status('web')!.reconnects).toBe(1); // one outage, one reconnection
    } finally {
      await mcp.close();
      await kill(child);
    }
  });
});
