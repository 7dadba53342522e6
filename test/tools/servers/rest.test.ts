/**
 * Tool servers through the REST API of a real server (127.0.0.1, port 0): deploy, list, show,
 * call, remove; persistence across a restart; operator grants intersected with the manifest; the
 * audit log; bad input refused with clear errors and nothing stored.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadServerConfig } from '../../../src/config/index.js';
import { removeTempDirs, makeTempDir } from '../../helpers/tmp.js';
import { startTestServer, type TestServer } from '../../helpers/server.js';
import {
  api,
  deployBody,
  ensureToolsBuilt,
  EXAMPLE_DIR,
  fetcherPackage,
  workerHttpServer,
  type WorkerHttpServer,
} from './helpers.js';

const CSV = 'city,temp\nOslo,4\nRome,18\n';

let srv: TestServer;
let web: WorkerHttpServer;
let dir: string;

function toml(): string {
  return `[tools.fetcher]\nallowed_hosts = ["127.0.0.1"]\n\n[tools.text.paths]\n"/data" = "files"\n\n[tools.text.limits]\ntimeout = "1s"\nfuel = 5_000_000\n`;
}

beforeAll(async () => {
  ensureToolsBuilt();
  dir = makeTempDir('caxton-tools-rest-');
  mkdirSync(join(dir, 'files'));
  writeFileSync(join(dir, 'files', 'hello.txt'), 'hello from the granted directory\n');
  web = await workerHttpServer({ '/data.csv': { type: 'text/csv', body: CSV } });
  srv = await startTestServer({ dir, toml: toml() });
});

afterAll(async () => {
  await srv?.close();
  await web?.close();
  removeTempDirs();
});

const names = async (base: string) =>
  ((await api(base, 'GET', '/api/v1/tools')).json.servers as { name: string }[]).map((s) => s.name);

describe('tool servers over REST', () => {
  it('loads the built-in servers whose modules are built', async () => {
    const r = await api(srv.url, 'GET', '/api/v1/tools');
    expect(r.status).toBe(200);
    const byName = Object.fromEntries((r.json.servers as { name: string }[]).map((s) => [s.name, s]));
    expect(byName.csv_parser).toMatchObject({ origin: 'builtin', state: 'loaded', tools: ['csv_parser.parse'] });
    expect(byName.chart_generator).toMatchObject({
      origin: 'builtin',
      state: 'loaded',
      tools: ['chart_generator.render'],
    });
    expect(srv.server.executor.hostTools.get('csv_parser.parse')).toBeDefined();
  });

  it('deploys a package, lists it, shows it with its effective limits and grants', async () => {
    const r = await api(srv.url, 'POST', '/api/v1/tools', deployBody(EXAMPLE_DIR));
    expect(r.status, r.text).toBe(201);
    expect(r.json).toMatchObject({
      name: 'text',
      version: '0.1.0',
      origin: 'api',
      state: 'loaded',
      tools: ['text.echo', 'text.stats', 'text.read_file'],
    });
    expect(await names(srv.url)).toContain('text');
    const show = await api(srv.url, 'GET', '/api/v1/tools/text');
    expect(show.status).toBe(200);
    // The operator's limits are upper bounds: timeout 1s < the manifest's 2s, fuel 5M < 10M.
    expect(show.json.limits).toMatchObject({ timeout_ms: 1000, fuel: 5_000_000, memory: 4 * 1024 * 1024 });
    expect(show.json.permissions.paths).toEqual({
      requested: { '/data': 'read' },
      granted: { '/data': join(dir, 'files') },
    });
    expect(show.json.tool_specs.map((t: { name: string }) => t.name)).toEqual([
      'text.echo',
      'text.stats',
      'text.read_file',
    ]);
    expect(show.json.digest).toMatch(/^[0-9a-f]{64}$/);
    for (const n of ['text.echo', 'text.stats', 'text.read_file'])
      expect(srv.server.executor.hostTools.get(n)).toBeDefined();
  });

  it('calls a tool and returns its output, parsed when JSON', async () => {
    const r = await api(srv.url, 'POST', '/api/v1/tools/text/stats/call', { args: { text: 'one two\nthree' } });
    expect(r.status, r.text).toBe(200);
    expect(r.json).toMatchObject({
      tool: 'text.stats',
      is_error: false,
      outcome: 'ok',
      json: { chars: 13, words: 3, lines: 2 },
    });
    expect(r.json.fuel_used).toBeGreaterThan(0);
  });

  it('reads a file under the root the operator mapped (relative to caxton.toml)', async () => {
    const r = await api(srv.url, 'POST', '/api/v1/tools/text/read_file/call', { args: { path: '/data/hello.txt' } });
    expect(r.json).toMatchObject({ is_error: false, content: 'hello from the granted directory\n' });
    const out = await api(srv.url, 'POST', '/api/v1/tools/text/read_file/call', {
      args: { path: '/data/../../etc/passwd' },
    });
    expect(out.json).toMatchObject({ is_error: true, outcome: 'denied' });
  });

  it('a tool failure is a 200 with is_error and the outcome; unknown servers and tools are 404', async () => {
    const bad = await api(srv.url, 'POST', '/api/v1/tools/text/stats/call', { args: { text: 42 } });
    expect(bad.status).toBe(200);
    expect(bad.json).toMatchObject({ is_error: true, outcome: 'invalid_input' });
    expect(bad.json.content, JSON.stringify(bad.json.content)).toContain(
      'the arguments do not match the input schema: /text must be string',
    );

    const noTool = await api(srv.url, 'POST', '/api/v1/tools/text/statz/call', { args: {} });
    expect(noTool.status).toBe(404);
    expect(noTool.json.error).toMatchObject({ code: 'tool_not_found' });
    expect(noTool.json.error.message).toMatch(/tool server "text" has no tool "statz"; did you mean "text.stats"\?/);
    const noServer = await api(srv.url, 'POST', '/api/v1/tools/txet/stats/call', { args: {} });
    expect(noServer.status).toBe(404);
    expect(noServer.json.error.message).toMatch(/no tool server named "txet"; did you mean "text"\?/);
    expect((await api(srv.url, 'GET', '/api/v1/tools/nothing')).json.error.code).toBe('tool_not_found');
    const notObject = await api(srv.url, 'POST', '/api/v1/tools/text/stats/call', { args: [1, 2] });
    expect(notObject.status).toBe(400);
    expect(notObject.json.error.code).toBe('invalid_request');
  });

  it('the operator grants hosts: a host the manifest asks for but the operator does not grant is refused', async () => {
    const pkg = await fetcherPackage('fetcher', ['127.0.0.1', 'localhost']);
    const d = await api(srv.url, 'POST', '/api/v1/tools', pkg);
    expect(d.status, d.text).toBe(201);
    expect(d.json.permissions.allowed_hosts).toEqual({ requested: ['127.0.0.1', 'localhost'], granted: ['127.0.0.1'] });
    const port = new URL(web.url).port;

    const ok = await api(srv.url, 'POST', '/api/v1/tools/fetcher/fetch/call', { args: { url: `${web.url}/data.csv` } });
    expect(ok.json).toMatchObject({ is_error: false, outcome: 'ok', content: CSV });

    const refused = await api(srv.url, 'POST', '/api/v1/tools/fetcher/fetch/call', {
      args: { url: `http://localhost:${port}/data.csv` },
    });
    expect(refused.json).toMatchObject({ is_error: true, outcome: 'denied' });
    expect(refused.json.content).toMatch(
      /tool "fetcher\.fetch" failed \(denied\): HTTP request to host "localhost" refused: the host is not in the allowlist/,
    );
  });

  it('refuses a bad manifest naming the field, and stores nothing', async () => {
    const before = await names(srv.url);
    const body = deployBody(EXAMPLE_DIR);
    const r = await api(srv.url, 'POST', '/api/v1/tools', {
      ...body,
      manifest: body.manifest
        .replace('name = "text"', 'name = "text2"')
        .replace('version = "0.1.0"', 'version = "one"'),
    });
    expect(r.status).toBe(422);
    expect(r.json.error.code).toBe('validation_failed');
    expect(r.json.error.message).toMatch(
      /caxton-tool\.toml:2:1: error: expected a semantic version such as "1\.0\.0" \[version\]/,
    );
    expect(r.json.error.details.errors[0]).toMatchObject({ field: 'version', line: 2 });

    const missing = await api(srv.url, 'POST', '/api/v1/tools', {
      ...body,
      manifest: 'name = "nodesc"\nversion = "1.0.0"\n[[tools]]\nname = "echo"\ndescription = "x"\n',
    });
    expect(missing.status).toBe(422);
    expect(missing.json.error.message).toMatch(/required field "description" is missing \[description\]/);

    const syntax = await api(srv.url, 'POST', '/api/v1/tools', { ...body, manifest: 'name = "broken\n' });
    expect(syntax.status).toBe(422);
    expect(syntax.json.error.message).toMatch(/TOML syntax error/);

    expect(await names(srv.url)).toEqual(before);
  });

  it('refuses invalid WebAssembly, bad base64, a missing export and a built-in name; nothing is stored or changed', async () => {
    const before = await names(srv.url);
    const body = deployBody(EXAMPLE_DIR);
    const m2 = body.manifest.replace('name = "text"', 'name = "other"');

    const notWasm = await api(srv.url, 'POST', '/api/v1/tools', {
      manifest: m2,
      wasm: Buffer.from('definitely not wasm').toString('base64'),
    });
    expect(notWasm.status).toBe(422);
    expect(notWasm.json.error).toMatchObject({ code: 'validation_failed' });
    expect(notWasm.json.error.message).toMatch(/not valid WebAssembly/);

    const b64 = await api(srv.url, 'POST', '/api/v1/tools', { manifest: m2, wasm: '***' });
    expect(b64.status).toBe(400);
    expect(b64.json.error.message).toMatch(/wasm: expected the module encoded as base64/);

    const noExport = await api(srv.url, 'POST', '/api/v1/tools', {
      manifest: `${m2}\n[[tools]]\nname = "missing"\ndescription = "not exported"\n`,
      wasm: body.wasm,
    });
    expect(noExport.status).toBe(422);
    expect(noExport.json.error.message).toMatch(/names export "missing", which the module does not export/);

    const builtin = await api(srv.url, 'POST', '/api/v1/tools', {
      manifest: body.manifest.replace('name = "text"', 'name = "csv_parser"'),
      wasm: body.wasm,
    });
    expect(builtin.status).toBe(409);
    expect(builtin.json.error.message).toMatch(/"csv_parser" is a built-in tool server and cannot be replaced/);

    const noBody = await api(srv.url, 'POST', '/api/v1/tools', { manifest: m2 });
    expect(noBody.status).toBe(400);
    expect(noBody.json.error.message).toMatch(/wasm/);

    expect(await names(srv.url)).toEqual(before);
    expect(srv.server.executor.hostTools.get('other.echo')).toBeUndefined();
    expect(srv.server.executor.hostTools.get('csv_parser.parse')).toBeDefined();
  });

  it('deploying the same name again replaces it (200)', async () => {
    const r = await api(srv.url, 'POST', '/api/v1/tools', deployBody(EXAMPLE_DIR));
    expect(r.status).toBe(200);
    expect((await api(srv.url, 'POST', '/api/v1/tools/text/echo/call', { args: { a: 1 } })).json).toMatchObject({
      is_error: false,
      json: { a: 1 },
    });
  });

  it('answers audit queries: by agent, tool, server.*, outcome, since, limit', async () => {
    srv.server.toolAudit.flush();
    const all = await api(srv.url, 'GET', '/api/v1/tools/audit?agent=api');
    expect(all.status).toBe(200);
    expect(all.json.records.length).toBeGreaterThanOrEqual(6);
    const rec = all.json.records.find(
      (x: { tool: string; outcome: string }) => x.tool === 'text.stats' && x.outcome === 'ok',
    );
    expect(rec).toMatchObject({ agent: 'api', server: 'text', outcome: 'ok' });
    expect(rec.args_digest).toMatch(/^[0-9a-f]{64}$/);
    expect(rec.fuel_used).toBeGreaterThan(0);
    expect(rec.memory_bytes).toBeGreaterThan(0);
    expect(rec.duration_us).toBeGreaterThan(0);

    const text = await api(srv.url, 'GET', '/api/v1/tools/audit?tool=text.*');
    expect(new Set(text.json.records.map((x: { server: string }) => x.server))).toEqual(new Set(['text']));
    const failed = await api(srv.url, 'GET', '/api/v1/tools/audit?outcome=failed');
    expect(failed.json.records.map((x: { outcome: string }) => x.outcome).sort()).toEqual([
      'denied',
      'denied',
      'invalid_input',
    ]);
    const recent = await api(srv.url, 'GET', '/api/v1/tools/audit?since=1h&limit=2');
    expect(recent.json.records).toHaveLength(2);
    expect(recent.json.next_before_id).toBe(recent.json.records[1].id);
    const future = await api(
      srv.url,
      'GET',
      `/api/v1/tools/audit?since=${new Date(Date.now() + 60_000).toISOString()}`,
    );
    expect(future.json.records).toEqual([]);
    const badSince = await api(srv.url, 'GET', '/api/v1/tools/audit?since=yesterday-ish');
    expect(badSince.status).toBe(400);
    expect(badSince.json.error.message).toMatch(/since/);
    const badOutcome = await api(srv.url, 'GET', '/api/v1/tools/audit?outcome=weird');
    expect(badOutcome.status).toBe(400);
  });

  it('removes a deployed server; built-in servers cannot be removed', async () => {
    const r = await api(srv.url, 'DELETE', '/api/v1/tools/fetcher');
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ removed: 'fetcher' });
    expect(srv.server.executor.hostTools.get('fetcher.fetch')).toBeUndefined();
    expect((await api(srv.url, 'GET', '/api/v1/tools/fetcher')).status).toBe(404);
    expect((await api(srv.url, 'DELETE', '/api/v1/tools/fetcher')).status).toBe(404);
    const b = await api(srv.url, 'DELETE', '/api/v1/tools/csv_parser');
    expect(b.status).toBe(409);
    expect(b.json.error.message).toMatch(
      /built-in tool server; disable it in caxton.toml with \[tools.csv_parser\] enabled = false/,
    );
  });

  it('deployed servers survive a restart; removed and refused ones stay gone', async () => {
    await srv.close();
    srv = await startTestServer({ dir, toml: toml() });
    const list = await names(srv.url);
    expect(list).toContain('text');
    expect(list).not.toContain('fetcher');
    expect(list).not.toContain('other');
    const r = await api(srv.url, 'POST', '/api/v1/tools/text/stats/call', { args: { text: 'after restart' } });
    expect(r.json).toMatchObject({ is_error: false, json: { words: 2 } });
    // the audit log is kept too
    expect((await api(srv.url, 'GET', '/api/v1/tools/audit?tool=fetcher.fetch')).json.records.length).toBe(2);
  });

  it('a disabled built-in is not loaded', async () => {
    await srv.close();
    srv = await startTestServer({ dir, toml: `${toml()}\n[tools.chart_generator]\nenabled = false\n` });
    const list = await names(srv.url);
    expect(list).not.toContain('chart_generator');
    expect(srv.server.executor.hostTools.get('chart_generator.render')).toBeUndefined();
  });
});

describe('[tools.NAME] in caxton.toml', () => {
  const load = (text: string) => {
    const d = makeTempDir('caxton-tools-cfg-');
    writeFileSync(join(d, 'caxton.toml'), text);
    return () => loadServerConfig({ file: join(d, 'caxton.toml'), env: {}, cwd: d });
  };

  it('parses grants: hosts, paths, databases, config values, limits', () => {
    const cfg = load(
      '[tools.http_client]\nallowed_hosts = ["api.example.com", "*.example.org"]\n[tools.http_client.config]\nretries = 3\n[tools.http_client.limits]\ntimeout = "3s"\nmemory = "8MiB"\n[tools.fs.paths]\n"/data" = "/srv/data"\n',
    )();
    expect(cfg.tools.http_client).toMatchObject({
      enabled: true,
      allowed_hosts: ['api.example.com', '*.example.org'],
      config: { retries: '3' },
      limits: { timeout: 3000, memory: 8 * 1024 * 1024 },
    });
    expect(cfg.tools.fs!.paths).toEqual({ '/data': '/srv/data' });
  });

  it('names the field of a bad grant', () => {
    const cases: [string, RegExp][] = [
      [
        '[tools.http_client]\nallowed_hosts = "example.com"\n',
        /\[tools\.http_client\.allowed_hosts\] expected a list of host names/,
      ],
      [
        '[tools.http_client]\nallowed_hosts = ["http://example.com/"]\n',
        /\[tools\.http_client\.allowed_hosts\.0\] expected a host name/,
      ],
      [
        '[tools.http_client]\nallowed_host = ["example.com"]\n',
        /\[tools\.http_client\.allowed_host\] unknown configuration key "allowed_host"/,
      ],
      ['[tools.Bad-Name]\nallowed_hosts = []\n', /\[tools\.Bad-Name\] invalid tool server name "Bad-Name"/],
      ['[tools.fs.paths]\n"data" = "/srv"\n', /\[tools\.fs\.paths\.data\] expected a guest path such as "\/data"/],
      ['[tools.x.limits]\ntimeout = "soon"\n', /\[tools\.x\.limits\.timeout\] expected a duration/],
    ];
    for (const [text, re] of cases) {
      let err: unknown;
      try {
        load(text)();
      } catch (e) {
        err = e;
      }
      expect(err, text).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).message, text).toMatch(re);
    }
  });
});
