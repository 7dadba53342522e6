/**
 * JavaScript tool servers (QuickJS-in-WebAssembly) through ToolServerManager, like WebAssembly
 * ones: deploy the example package (manifest + tool.js), call it as a host tool, operator grants
 * `[tools.NAME]` intersected with the manifest, audit, reload from the store after a restart; a
 * script that does not parse is refused at deploy with its line, and nothing is stored.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { toolGrantSchema } from '../../../src/config/index.js';
import { openDatabase } from '../../../src/storage/index.js';
import { ToolRegistry } from '../../../src/tools/index.js';
import { JsSandbox, parseToolManifest, ToolServerManager, WasmToolServer } from '../../../src/tools/servers/index.js';
import { auditRegistryCalls, MemoryToolAuditSink } from '../../../src/audit/index.js';
import { makeTempDir, removeTempDirs } from '../../helpers/tmp.js';
import { ctx, JS_EXAMPLE_DIR, jsExample, jsManifestText } from './helpers.js';

afterAll(removeTempDirs);

async function thrown(f: () => unknown): Promise<Error & { code?: string }> {
  try {
    await f();
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('did not throw');
}

describe('JavaScript tool manifests', () => {
  it('a .js module implies runtime "quickjs"; runtime = "quickjs" defaults the module to NAME.js; wasm with .js is refused', () => {
    const base = 'version = "1.0.0"\ndescription = "d"\n[[tools]]\nname = "t"\ndescription = "t"\n';
    const byExt = parseToolManifest(`name = "a"\nmodule = "src/tool.js"\n${base}`);
    expect(byExt.ok && [byExt.manifest.runtime, byExt.manifest.module]).toEqual(['quickjs', 'src/tool.js']);
    const byField = parseToolManifest(`name = "b"\nruntime = "quickjs"\n${base}`);
    expect(byField.ok && [byField.manifest.runtime, byField.manifest.module]).toEqual(['quickjs', 'b.js']);
    const wasm = parseToolManifest(`name = "c"\n${base}`);
    expect(wasm.ok && [wasm.manifest.runtime, wasm.manifest.module]).toEqual(['wasm', 'c.wasm']);
    const mismatch = parseToolManifest(`name = "d"\nruntime = "wasm"\nmodule = "tool.js"\n${base}`);
    expect(mismatch.ok).toBe(false);
    expect(!mismatch.ok && mismatch.errors[0]).toMatchObject({
      field: 'runtime',
      line: 2,
      message: expect.stringMatching(/JavaScript but runtime is "wasm"/),
    });
    const bad = parseToolManifest(`name = "e"\nruntime = "python"\n${base}`);
    expect(!bad.ok && bad.errors[0]).toMatchObject({ field: 'runtime', message: 'expected "wasm" or "quickjs"' });
  });
});

describe('JavaScript tool servers in ToolServerManager', () => {
  it('deploys the example, calls it through the host tool registry, audits, applies [tools.NAME] grants, reloads after a restart', async () => {
    const db = openDatabase(makeTempDir());
    const files = makeTempDir('caxton-js-files-');
    writeFileSync(join(files, 'note.txt'), 'hello from /data\n');
    mkdirSync(join(files, 'sub'));
    const grants = { 'js-text': toolGrantSchema.parse({ paths: { '/data': files }, limits: { timeout: '1s' } }) };
    const audit = new MemoryToolAuditSink();
    const tools = new ToolRegistry();
    const m = new ToolServerManager({ db, tools, grants, audit, builtinDir: false });
    // As the server does at start (src/server/components/tool-audit-component.ts).
    auditRegistryCalls(tools, audit);
    await m.start();
    const { manifest, source } = jsExample();
    const res = await m.deploy(manifest, source);
    expect(res.created).toBe(true);
    expect(res.server).toMatchObject({
      name: 'js-text',
      origin: 'api',
      state: 'loaded',
      tools: ['js-text.stats', 'js-text.slugify', 'js-text.read_file', 'js-text.calls'],
    });
    expect(res.server.limits).toMatchObject({ memory: 8 * 1024 * 1024, timeout_ms: 1000 });
    expect(m.server('js-text')!.sandbox).toBeInstanceOf(JsSandbox);

    const stats = await m.call('js-text.stats', { text: 'one two\nthree' });
    expect(stats).toMatchObject({ is_error: false, outcome: 'ok' });
    expect(JSON.parse(stats.content)).toEqual({ chars: 13, words: 3, lines: 2 });
    expect(stats.memory_bytes).toBeGreaterThan(0);
    expect((await m.call('js-text.slugify', { title: 'Crème Brûlée: A Recipe!' })).content).toBe(
      'creme-brulee-a-recipe',
    );
    expect((await m.call('js-text.slugify', { title: 'x' })).content).toBe('x');
    expect(JSON.parse((await m.call('js-text.calls', {})).content)).toEqual({ slugify: 2 });
    expect((await m.call('js-text.read_file', { path: '/data/note.txt' })).content).toBe('hello from /data\n');
    const invalid = await m.call('js-text.stats', { text: 5 });
    expect(invalid).toMatchObject({ is_error: true, outcome: 'invalid_input' });

    // As an agent host tool: allowlists apply as for any other tool.
    expect(
      await tools.invoke(['js-text.*'], 'js-text.slugify', { title: 'Agent Call' }, ctx({ agent: 'writer' })),
    ).toEqual({ content: 'agent-call' });
    expect(await tools.invoke(['js-text.stats'], 'js-text.slugify', { title: 'x' }, ctx())).toEqual({
      content: expect.stringMatching(/is not allowed for agent "tester"/),
      is_error: true,
      refused: true,
    });

    expect(audit.records.map((r) => [r.tool, r.outcome])).toEqual([
      ['js-text.stats', 'ok'],
      ['js-text.slugify', 'ok'],
      ['js-text.slugify', 'ok'],
      ['js-text.calls', 'ok'],
      ['js-text.read_file', 'ok'],
      ['js-text.stats', 'invalid_input'],
      ['js-text.slugify', 'ok'],
      ['js-text.slugify', 'not_allowed'],
    ]);
    expect(audit.records.at(-2)).toMatchObject({
      agent: 'writer',
      server: 'js-text',
      args_digest: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    expect(audit.records.at(-1)).toMatchObject({ agent: 'tester', server: 'js-text', outcome: 'not_allowed' });
    expect(m.view('js-text')!.permissions!.paths).toEqual({
      requested: { '/data': 'read' },
      granted: { '/data': files },
    });
    m.close();

    // A new manager on the same database loads the stored JS package.
    const again = new ToolServerManager({ db, tools: new ToolRegistry(), builtinDir: false });
    await again.start();
    expect(again.list().map((s) => [s.name, s.state])).toEqual([['js-text', 'loaded']]);
    expect((await again.call('js-text.slugify', { title: 'Restarted OK' })).content).toBe('restarted-ok');
    // Without the operator's path grant, files are not offered at all.
    const denied = await again.call('js-text.read_file', { path: '/data/note.txt' });
    expect(denied).toMatchObject({ is_error: true, outcome: 'error' });
    expect(denied.content).toMatch(/file access is not granted/);
    again.close();
  });

  it('a script that does not parse is refused at deploy naming file, line and error; nothing is stored or registered', async () => {
    const db = openDatabase(makeTempDir());
    const tools = new ToolRegistry();
    const m = new ToolServerManager({ db, tools, builtinDir: false });
    await m.start();
    const e = await thrown(() =>
      m.deploy(jsManifestText('broken', ['f']), Buffer.from('export function f() {\n  return {;\n}\n')),
    );
    expect(e.code).toBe('validation_failed');
    expect(e.message).toMatch(/^caxton-tool\.toml: the module failed to load: SyntaxError: .* \(at tool\.js:2:\d+\)/);
    const missing = await thrown(() =>
      m.deploy(jsManifestText('partial', ['f', 'g']), Buffer.from('export function f() { return 1 }\n')),
    );
    expect(missing.message).toMatch(/tool "g" names export "g", which the module does not export \(exports: f\)/);
    const throws = await thrown(() =>
      m.deploy(
        jsManifestText('thrower', ['f']),
        Buffer.from('throw new Error("no config");\nexport function f() {}\n'),
      ),
    );
    expect(throws.message).toMatch(/the module failed to load: Error: no config/);
    const notUtf8 = await thrown(() => m.deploy(jsManifestText('binary', ['f']), Buffer.from([0xff, 0xfe, 0x00])));
    expect(notUtf8.message).toMatch(/not valid UTF-8/);
    expect(m.list()).toEqual([]);
    expect(tools.list()).toEqual([]);
    m.close();
    const reopened = new ToolServerManager({ db, tools: new ToolRegistry(), builtinDir: false });
    expect(await reopened.start()).toEqual({ loaded: 0, failed: 0 });
  });

  it('WasmToolServer.load reads a JS package directory', async () => {
    const s = WasmToolServer.load(JS_EXAMPLE_DIR);
    expect(s.manifest.runtime).toBe('quickjs');
    const registry = new ToolRegistry();
    s.register(registry);
    expect(JSON.parse((await registry.invoke(['js-text.*'], 'js-text.stats', { text: 'a b' }, ctx())).content)).toEqual(
      { chars: 3, words: 2, lines: 1 },
    );
    s.close();
  });
});
