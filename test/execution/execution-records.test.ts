/**
 * Executions as records and traces without a tracing backend (ADR 0056), on a real server
 * (127.0.0.1, port 0, scripted provider, SQLite file) with no OTLP endpoint:
 *  - an invoke with a tool call is recorded once: agent, version, principal, each model turn,
 *    the tool call's arguments, result, duration and outcome, tokens; the configured secret in
 *    the request is scrubbed in the record;
 *  - a failed execution is recorded with its error; filters (status, agent, since) and cursor pages;
 *  - bad filters are 400 naming the field, an unknown id 404;
 *  - the execution links its trace, and GET /traces/{id} answers its spans from the node's own
 *    ring although no OTLP endpoint is set;
 *  - `caxton execution list|show` (the built CLI, a child process) with --json and exit codes;
 *  - the store's retention and the bounds on stored text;
 *  - a row written with every detail part and the indexes on every row reads as a new one does, the
 *    partial conversation and trace indexes hold only rows with the key and keep the reads' plans.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entryOf, EXECUTIONS_MIGRATIONS, SqliteExecutionStore } from '../../src/execution/index.js';
import { ENTRY_COLUMNS, entryValues, MAX_TOOL_TEXT, viewOfRow } from '../../src/execution/records/record-model.js';
import { migrate, openDatabase } from '../../src/storage/index.js';
import { runCli } from '../cli/helpers/cli.js';
import { removeTempDirs, startCaxton, tempDir, writeScript, type Caxton } from './helpers/caxton.js';

const SECRET = 'sk-exec-record-secret-0123456789';
let cx: Caxton;

beforeAll(async () => {
  process.env.EXEC_RECORD_KEY = SECRET;
  const dir = tempDir();
  const script = writeScript(dir, {
    rules: [
      {
        match: 'add',
        turns: [
          { content: 'adding', tool_calls: [{ name: 'calculator', arguments: { expression: '2+3' } }] },
          { content: 'the sum is {{tool_result.calculator}}' },
        ],
      },
      { match: 'hello', content: 'hello back' },
    ],
  });
  cx = await startCaxton({
    config: {
      llm: {
        default_provider: 's',
        providers: { s: { type: 'scripted', script, api_key_env: 'EXEC_RECORD_KEY' } },
      },
    },
    agents: [{ name: 'adder', system_prompt: 'You add.', tools: ['calculator'] }],
  });
}, 60_000);

afterAll(async () => {
  await cx?.close();
  delete process.env.EXEC_RECORD_KEY;
  removeTempDirs();
});

const get = async (path: string) => {
  const r = await fetch(`${cx.url}${path}`);
  return { status: r.status, json: (await r.json()) as Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
};

describe('execution records', () => {
  let id = '';

  it('records an invoke with its model turns and tool call, the secret scrubbed', async () => {
    const res = await cx.invoke('adder', { request: `add these, key ${SECRET}`, conversation_id: 'conv-rec-1' });
    expect(res.status, res.text).toBe(200);
    expect(res.json.content).toBe('the sum is 5');
    expect(res.json.model_turns).toBeUndefined();
    id = res.json.execution_id as string;
    const one = await get(`/api/v1/executions/${id}`);
    expect(one.status).toBe(200);
    const v = one.json;
    expect(v).toMatchObject({
      id,
      agent: 'adder',
      status: 'ok',
      error: null,
      conversation_id: 'conv-rec-1',
      turns: 2,
      provider: 's',
      finish_reason: 'stop',
      answer: 'the sum is 5',
    });
    expect(v.model_turns).toHaveLength(2);
    expect(v.model_turns[0]).toMatchObject({ turn: 1, provider: 's', tool_calls: 1 });
    expect(v.tool_calls).toHaveLength(1);
    expect(v.tool_calls[0]).toMatchObject({ name: 'calculator', result: '5', outcome: 'ok' });
    expect(JSON.parse(v.tool_calls[0].arguments as string)).toEqual({ expression: '2+3' });
    expect(typeof v.tool_calls[0].duration_ms).toBe('number');
    expect(JSON.stringify(v)).not.toContain(SECRET);
    expect(v.request).toContain('***');
    expect(v.usage.input_tokens).toBeGreaterThan(0);
  });

  it('records a failed execution with its error; filters and cursor pages', async () => {
    const bad = await cx.invoke('adder', { request: 'nothing scripted matches this' });
    expect(bad.status).toBeGreaterThanOrEqual(400);
    await cx.invoke('adder', { request: 'hello' });
    const errors = await get('/api/v1/executions?status=error');
    expect(errors.status).toBe(200);
    expect(errors.json.executions).toHaveLength(1);
    expect(errors.json.executions[0]).toMatchObject({ agent: 'adder', status: 'error' });
    expect(errors.json.executions[0].error.code).toBeTruthy();
    const all = await get('/api/v1/executions?agent=adder&since=1h');
    expect(all.json.executions).toHaveLength(3);
    // Newest first, one per page.
    const seen: string[] = [];
    let cursor: string | undefined;
    for (let i = 0; i < 5; i++) {
      const page = await get(`/api/v1/executions?limit=1${cursor ? `&cursor=${cursor}` : ''}`);
      seen.push(...(page.json.executions as { id: string }[]).map((e) => e.id));
      cursor = page.json.next_cursor as string | undefined;
      if (!cursor) break;
    }
    expect(seen).toEqual((all.json.executions as { id: string }[]).map((e) => e.id));
    expect(seen[2]).toBe(id);
    expect((await get('/api/v1/executions?agent=nobody')).json.executions).toEqual([]);
  });

  it('bad filters are 400 naming the field; an unknown id is 404', async () => {
    const s = await get('/api/v1/executions?status=maybe');
    expect(s.status).toBe(400);
    expect(JSON.stringify(s.json)).toContain('status');
    const t = await get('/api/v1/executions?since=yesterday');
    expect(t.status).toBe(400);
    expect(JSON.stringify(t.json)).toContain('since');
    expect((await get('/api/v1/executions?cursor=abc')).status).toBe(400);
    expect((await get('/api/v1/executions/exec_nope')).status).toBe(404);
    expect((await get('/api/v1/traces/not-a-trace')).status).toBe(400);
    expect((await get(`/api/v1/traces/${'0'.repeat(31)}1`)).status).toBe(404);
  });

  it("links its trace, whose spans come from the node's own ring without an OTLP endpoint", async () => {
    const v = (await get(`/api/v1/executions/${id}`)).json;
    expect(v.trace_id).toMatch(/^[0-9a-f]{32}$/);
    expect(v.links.trace).toBe(`/api/v1/traces/${v.trace_id}`);
    const t = await get(v.links.trace as string);
    expect(t.status).toBe(200);
    const names = (t.json.spans as { name: string }[]).map((s) => s.name);
    expect(names).toContain('agent.execute adder');
    expect(names).toContain('llm.chat');
    expect(names).toContain('tool.call calculator');
    expect(t.json.executions.map((e: { id: string }) => e.id)).toContain(id);
  });
});

describe('caxton execution list|show', () => {
  const cli = (...args: string[]) => runCli(['--server', cx.url, ...args], { cwd: tempDir() });

  it('lists and shows executions, as tables and as JSON; a bad flag or id fails with a clear message', async () => {
    const list = await cli('execution', 'list', '--agent', 'adder', '--status', 'ok');
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toContain('adder');
    expect(list.stdout).toMatch(/STATUS/);
    const json = await cli('--json', 'execution', 'list', '--since', '1h');
    expect(json.code, json.stderr).toBe(0);
    const parsed = JSON.parse(json.stdout) as { executions: { id: string }[] };
    expect(parsed.executions.length).toBeGreaterThanOrEqual(3);
    const id = parsed.executions.at(-1)!.id;
    const show = await cli('execution', 'show', id);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toContain('tool calculator ok');
    expect(show.stdout).toContain('turn 2:');
    const shown = await cli('--json', 'exec', 'show', id);
    expect(JSON.parse(shown.stdout)).toMatchObject({ id, agent: 'adder' });
    const bad = await cli('execution', 'list', '--status', 'maybe');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('--status expects one of ok, error');
    const missing = await cli('execution', 'show', 'exec_missing');
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('no execution "exec_missing"');
  }, 60_000);
});

describe('the SQLite store', () => {
  it('applies retention by rows and bounds stored text with a marker', async () => {
    const db = openDatabase(tempDir());
    migrate(db, EXECUTIONS_MIGRATIONS);
    const store = new SqliteExecutionStore({ db, retentionMs: 3_600_000, maxRows: 100 });
    const big = 'x'.repeat(MAX_TOOL_TEXT * 3);
    for (let i = 0; i < 150; i++)
      store.record(
        entryOf({
          id: `exec_${i}`,
          agent: 'a',
          version: '1',
          shadow: false,
          started: Date.now(),
          duration_ms: 1,
          request: { request: 'r' },
          response: {
            id: 'r',
            execution_id: `exec_${i}`,
            agent: 'a',
            content: 'c',
            tool_calls: [{ id: 't', name: 'n', arguments: {}, result: big, is_error: false, duration_ms: 1 }],
            usage: { input_tokens: 1, output_tokens: 1, total_tokens: 2 },
            execution_time_ms: 1,
            finish_reason: 'stop',
            provider: 'p',
            model: 'm',
            turns: 1,
            isolation: 'context',
          },
        }),
      );
    store.flush();
    store.sweep();
    const kept = await store.list({ limit: 1000 });
    expect(kept.executions).toHaveLength(100);
    expect(kept.executions[99]!.id).toBe('exec_50');
    const v = await store.get('exec_149');
    expect(v!.tool_calls[0]!.result).toMatch(/…\[truncated \d+ chars\]$/);
    expect(v!.tool_calls[0]!.result.length).toBeLessThan(MAX_TOOL_TEXT + 40);
    store.close();
    db.close();
  });

  it('reads a trace by its second-keyed index, also on a database made with the first schema', async () => {
    const db = openDatabase(tempDir());
    migrate(db, EXECUTIONS_MIGRATIONS.slice(0, 1));
    const finished = (id: string, trace_id: string, agent = 'a') =>
      entryOf({
        id,
        agent,
        version: '1',
        shadow: false,
        started: Date.now(),
        duration_ms: 1,
        request: { request: 'r' },
        error: new Error('x'),
        trace_id,
      });
    const second = Math.floor(Date.now() / 1000)
      .toString(16)
      .padStart(8, '0');
    const local = `${second}${'a'.repeat(24)}`;
    const neighbour = `${second}${'b'.repeat(24)}`;
    const continued = 'f0e1d2c3b4a5968778695a4b3c2d1e0f';
    const old = new SqliteExecutionStore({ db, retentionMs: 3_600_000, maxRows: 100 });
    old.record(finished('exec_1', local));
    old.close();
    migrate(db, EXECUTIONS_MIGRATIONS);
    const indexes = db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'executions'")
      .pluck();
    expect(indexes.all()).toContain('executions_traced');
    expect(indexes.all()).not.toContain('executions_trace');
    const store = new SqliteExecutionStore({ db, retentionMs: 3_600_000, maxRows: 100 });
    store.record(finished('exec_2', neighbour));
    store.record(finished('exec_3', local, 'b'));
    store.record(finished('exec_4', continued));
    const ids = async (trace: string, agents?: string[]) =>
      (await store.byTrace(trace, agents && { agents })).map((e) => e.id);
    expect(await ids(local)).toEqual(['exec_1', 'exec_3']);
    expect(await ids(local, ['b'])).toEqual(['exec_3']);
    expect(await ids(neighbour)).toEqual(['exec_2']);
    expect(await ids(continued)).toEqual(['exec_4']);
    expect(await ids(`${second}${'c'.repeat(24)}`)).toEqual([]);
    const plan = db
      .prepare(
        'EXPLAIN QUERY PLAN SELECT id FROM executions WHERE substr(trace_id, 1, 8) = ? AND trace_id = ? ORDER BY id',
      )
      .all('0', '0') as { detail: string }[];
    expect(plan.map((p) => p.detail).join(' ')).toMatch(/USING (COVERING )?INDEX executions_traced/);
    store.close();
    db.close();
  });

  it('keeps rows written before the keys-only-where-set indexes and the shorter detail readable, with the same plans', async () => {
    const db = openDatabase(tempDir());
    migrate(db, EXECUTIONS_MIGRATIONS.slice(0, 2));
    const response = {
      id: 'r',
      execution_id: 'exec_new',
      agent: 'a',
      content: 'the sum is 5',
      conversation_id: 'conv_1',
      tool_calls: [{ id: 't', name: 'calc', arguments: { e: '2+3' }, result: '5', is_error: false, duration_ms: 1.5 }],
      usage: { input_tokens: 3, output_tokens: 4, total_tokens: 7 },
      execution_time_ms: 2,
      finish_reason: 'stop' as const,
      provider: 'p',
      model: 'm',
      turns: 2,
      isolation: 'context' as const,
      model_turns: [
        {
          turn: 1,
          provider: 'fallback',
          model: 'f',
          input_tokens: 1,
          output_tokens: 2,
          latency_ms: 0.5,
          finish_reason: 'tool_calls',
          tool_calls: 1,
        },
        {
          turn: 2,
          provider: 'p',
          model: 'm',
          input_tokens: 2,
          output_tokens: 2,
          latency_ms: 0.25,
          finish_reason: 'stop',
          tool_calls: 0,
        },
      ],
    };
    const finished = (id: string) => ({
      id,
      agent: 'a',
      version: '1',
      shadow: false,
      started: 1_700_000_000_000,
      duration_ms: 2,
      request: { request: 'add', conversation_id: 'conv_1' },
      response: { ...response, execution_id: id },
      trace_id: '0123456789abcdef0123456789abcdef',
    });
    // A row as the first detail format wrote it: every part present, nulls and defaults included.
    const entry = entryOf(finished('exec_old'));
    const v = viewOfRow({ ...entry, id: 1, execution_id: entry.id });
    const {
      id: _i,
      agent: _a,
      version: _v,
      principal: _p,
      conversation_id: _c,
      message_id: _m,
      status: _s,
      started_at: _st,
      finished_at: _f,
      duration_ms: _d,
      usage: _u,
      trace_id: _t,
      node: _n,
      ...parts
    } = v;
    const old = db.prepare(
      `INSERT INTO executions (${ENTRY_COLUMNS.join(', ')}) VALUES (${ENTRY_COLUMNS.map(() => '?').join(', ')})`,
    );
    old.run(entryValues({ ...entry, detail: JSON.stringify(parts) }));
    const { conversation_id: _none, ...unconversed } = response;
    old.run(
      entryValues(
        entryOf({ ...finished('exec_bare'), request: { request: 'x' }, response: unconversed, trace_id: undefined }),
      ),
    );
    migrate(db, EXECUTIONS_MIGRATIONS);
    const store = new SqliteExecutionStore({ db, retentionMs: 1e12, maxRows: 100 });
    store.record(entryOf(finished('exec_new')));
    store.record(
      entryOf({
        ...finished('exec_failed'),
        response: undefined,
        error: new Error('boom'),
        shadow: true,
        version_number: 3,
        addressed: true,
      }),
    );
    const before = await store.get('exec_old');
    const after = await store.get('exec_new');
    expect(before).toEqual(v);
    expect({ ...after, id: 'exec_old' }).toEqual(v);
    expect(after!.model_turns[0]).toEqual(response.model_turns[0]);
    expect(Object.keys(after!.model_turns[1]!)).toEqual(Object.keys(response.model_turns[1]!));
    const failed = await store.get('exec_failed');
    expect(failed).toMatchObject({
      status: 'error',
      error: { code: 'internal', message: 'boom' },
      shadow: true,
      version_number: 3,
      addressed: true,
      answer: null,
      provider: null,
      turns: 0,
      model_turns: [],
      tool_calls: [],
      steps_not_stored: 0,
    });
    expect((await store.list({ conversation_id: 'conv_1' })).executions.map((e) => e.id)).toEqual([
      'exec_failed',
      'exec_new',
      'exec_old',
    ]);
    expect((await store.byTrace('0123456789abcdef0123456789abcdef')).map((e) => e.id)).toEqual([
      'exec_old',
      'exec_new',
      'exec_failed',
    ]);
    expect((await store.thread('a', 'conv_1')).map((e) => e.id)).toEqual(['exec_old', 'exec_new', 'exec_failed']);
    // Only the rows with a conversation or a trace have an entry in its index.
    const entries = (index: string, where: string) =>
      db.prepare(`SELECT COUNT(*) FROM executions INDEXED BY ${index} WHERE ${where}`).pluck().get();
    expect(entries('executions_in_conversation', 'conversation_id IS NOT NULL')).toBe(3);
    expect(entries('executions_traced', 'trace_id IS NOT NULL')).toBe(3);
    const plan = (sql: string) =>
      (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all('x', 'y', 'z') as { detail: string }[])
        .map((p) => p.detail)
        .join(' ');
    expect(
      plan(
        'SELECT id FROM executions WHERE conversation_id = ? AND agent = ? AND message_id IS NULL AND ? IS NOT NULL ORDER BY id',
      ),
    ).toMatch(/INDEX executions_in_conversation/);
    expect(
      plan(
        'SELECT conversation_id, MIN(id) FROM executions WHERE agent = ? AND conversation_id IS NOT NULL AND message_id IS NULL AND conversation_id IN (?, ?) GROUP BY conversation_id',
      ),
    ).toMatch(/INDEX executions_in_conversation/);
    expect(
      plan('SELECT id FROM executions WHERE substr(trace_id, 1, 8) = ? AND trace_id = ? AND ? IS NOT NULL ORDER BY id'),
    ).toMatch(/INDEX executions_traced/);
    store.close();
    db.close();
  });
});
