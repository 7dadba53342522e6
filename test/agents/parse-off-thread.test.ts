/**
 * A large valid agent body (a 1.2 MB TOML of flat keys takes about a second to parse)
 * is parsed on a worker thread, not on the event loop (src/agents/parse-pool.ts, ADR 0020). The
 * tests prove where the parse ran (the parser's counters and the worker's thread id), never by
 * timing; /health's latency meanwhile is measured in bench/hostile.ts. The result, errors
 * included (file, line, column, field), is the same as the in-thread parse's.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { parseAgent } from '../../src/agents/index.js';
import { AgentParser, OFF_THREAD_PARSE_BYTES } from '../../src/agents/parse-pool.js';
import { getJson, http } from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

/** A valid TOML agent of about `bytes` bytes: many flat keys in [metadata]. */
function bigToml(name: string, bytes: number, tail = ''): string {
  const lines: string[] = [`name = "${name}"`, 'system_prompt = "You hold a lot of metadata."', '[metadata]'];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const line = `key_${String(i).padStart(6, '0')} = "value number ${i}"`;
    lines.push(line);
    size += line.length + 1;
  }
  return `${lines.join('\n')}\n${tail}`;
}

const BIG = bigToml('big', 1_200_000);
// An error at the very end of a large file: its line number shows the worker counted every line.
const BIG_INVALID = bigToml('broken', 300_000, '[limits]\ntimeout = "soon"\n');

describe('AgentParser', () => {
  const parsers: AgentParser[] = [];
  const parser = () => {
    const p = new AgentParser();
    parsers.push(p);
    return p;
  };
  afterAll(async () => {
    for (const p of parsers) await p.close();
  });

  it('parses a large body on a worker thread, with the same result as parseAgent', async () => {
    const p = parser();
    expect(Buffer.byteLength(BIG)).toBeGreaterThan(1_200_000);
    const r = await p.parse(Buffer.from(BIG), { file: 'big.toml' });
    expect(p.stats()).toMatchObject({ in_thread: 0, off_thread: 1, workers_started: 1 });
    expect(p.stats().last_thread).not.toBe(threadId);
    expect(r.ok).toBe(true);
    expect(r).toEqual(parseAgent(Buffer.from(BIG), { file: 'big.toml' }));
    if (r.ok) expect(Object.keys(r.definition.metadata).length).toBeGreaterThan(30_000);
  });

  it('reports the errors of a large body exactly as the in-thread parse (file, line, column, field)', async () => {
    const p = parser();
    const r = await p.parse(BIG_INVALID, { file: 'agents/broken.toml' });
    expect(p.stats().off_thread).toBe(1);
    expect(r.ok).toBe(false);
    const lines = BIG_INVALID.split('\n').length;
    if (!r.ok)
      expect(r.errors).toEqual([
        expect.objectContaining({
          code: 'invalid_value',
          file: 'agents/broken.toml',
          field: 'limits.timeout',
          line: lines - 1,
        }),
      ]);
    expect(r).toEqual(parseAgent(BIG_INVALID, { file: 'agents/broken.toml' }));
  });

  it('keeps small bodies on the calling thread, and one worker for every large body', async () => {
    const p = parser();
    const small = 'name = "small"\nsystem_prompt = "x"\n';
    expect((await p.parse(small, {})).ok).toBe(true);
    expect(p.stats()).toMatchObject({ in_thread: 1, off_thread: 0, workers_started: 0 });
    const both = await Promise.all([
      p.parse(BIG_INVALID, {}),
      p.parse(`${small}# ${'x'.repeat(OFF_THREAD_PARSE_BYTES)}\n`, { format: 'toml' }),
    ]);
    expect(both.map((r) => r.ok)).toEqual([false, true]);
    expect(p.stats()).toMatchObject({ in_thread: 1, off_thread: 2, workers_started: 1 });
    await p.close();
    // Closed (the server stopping): still parses, on the calling thread.
    expect((await p.parse(BIG_INVALID, {})).ok).toBe(false);
    expect(p.stats()).toMatchObject({ in_thread: 2, off_thread: 2 });
  });
});

describe('a large agent through the server', () => {
  let t: TestServer | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
    removeTempDirs();
  });

  it('API deploy, validate and update of a 1.2 MB agent parse on the worker; /health answers meanwhile', async () => {
    t = await startTestServer({ toml: '[server]\nmax_body_size = "2MiB"\n' });
    const before = t.server.service.parseStats();
    const deploying = http<Json>(t.url, 'POST', '/api/v1/agents', { body: BIG, contentType: 'application/toml' });
    const health = await getJson<Json>(t.url, '/health');
    expect(health.status).toBe(200);
    const res = await deploying;
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    expect(Object.keys(res.json.agent.definition.metadata).length).toBeGreaterThan(30_000);

    const invalid = await http<Json>(t.url, 'POST', '/api/v1/agents/validate', {
      body: BIG_INVALID,
      contentType: 'application/toml',
    });
    expect(invalid.status).toBe(200);
    expect(invalid.json.valid).toBe(false);
    const inThread = parseAgent(BIG_INVALID, { file: '<request body>' });
    expect(inThread.ok).toBe(false);
    expect(invalid.json.errors).toEqual(!inThread.ok && inThread.errors);

    const updated = await http<Json>(t.url, 'PUT', '/api/v1/agents/big', {
      body: BIG.replace('You hold a lot', 'You still hold a lot'),
      contentType: 'application/toml',
    });
    expect(updated.status, JSON.stringify(updated.json)).toBe(200);
    expect(updated.json.agent.revision).toBe(2);
    // A deploy whose large body is invalid: 422 with the same error, nothing deployed.
    const refused = await http<Json>(t.url, 'POST', '/api/v1/agents', {
      body: BIG_INVALID,
      contentType: 'application/toml',
    });
    expect(refused.status).toBe(422);
    expect(refused.json.error.details.errors[0]).toMatchObject({
      field: 'limits.timeout',
      line: BIG_INVALID.split('\n').length - 1,
    });

    const after = t.server.service.parseStats();
    expect(after.off_thread - before.off_thread).toBe(4);
    expect(after.last_thread).not.toBe(threadId);
    // A small body stays on the event loop's thread.
    expect(
      (
        await http<Json>(t.url, 'POST', '/api/v1/agents/validate', {
          body: 'name = "s"\nsystem_prompt = "x"\n',
          contentType: 'application/toml',
        })
      ).json.valid,
    ).toBe(true);
    expect(t.server.service.parseStats()).toMatchObject({
      off_thread: after.off_thread,
      in_thread: after.in_thread + 1,
    });
  });

  it('a large file written to agents_dir after the start is parsed on the worker; an invalid one is reported with its line', async () => {
    t = await startTestServer({});
    const before = t.server.service.parseStats().off_thread;
    writeFileSync(join(t.agentsDir, 'large.toml'), bigToml('large', 700_000));
    writeFileSync(join(t.agentsDir, 'broken.toml'), BIG_INVALID);
    await waitUntil(() => t!.server.registry.get('large'), { timeoutMs: 20_000, what: 'the large file agent loaded' });
    const { value: status } = await waitUntil(
      () => t!.server.service.files.fileStatuses().find((s) => s.path.endsWith('broken.toml')),
      { timeoutMs: 20_000, what: 'the invalid file reported' },
    );
    expect(status.state).toBe('invalid');
    expect(status.errors).toEqual([
      expect.objectContaining({
        field: 'limits.timeout',
        line: BIG_INVALID.split('\n').length - 1,
        file: join(t.agentsDir, 'broken.toml'),
      }),
    ]);
    expect(t.server.service.parseStats().off_thread - before).toBe(2);
  });
});
