/**
 * ToolServerManager on its own (real SQLite file, real modules): built-in packages whose module is
 * not built are skipped with a warning; a stored package that cannot load any more is listed as
 * failed without stopping the others; names held by other tools are refused.
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/observability/index.js';
import { openDatabase } from '../../../src/storage/index.js';
import { ToolRegistry } from '../../../src/tools/index.js';
import { ToolServerManager } from '../../../src/tools/servers/index.js';
import { MemoryToolAuditSink } from '../../../src/audit/index.js';
import { toolGrantSchema } from '../../../src/config/index.js';
import { makeTempDir, removeTempDirs } from '../../helpers/tmp.js';
import { ensureToolsBuilt, EXAMPLE_DIR } from './helpers.js';

afterAll(removeTempDirs);

function logCapture() {
  const lines: { level: number | string; msg: string; [k: string]: unknown }[] = [];
  const logger = createLogger('debug', {
    write: (l: string) => void lines.push(JSON.parse(l) as (typeof lines)[number]),
  });
  return { logger, lines };
}

describe('ToolServerManager', () => {
  it('loads built-in packages, skipping one whose module is not built with a warning', async () => {
    ensureToolsBuilt();
    const builtin = makeTempDir('caxton-builtin-');
    mkdirSync(join(builtin, 'text', 'build'), { recursive: true });
    copyFileSync(join(EXAMPLE_DIR, 'caxton-tool.toml'), join(builtin, 'text', 'caxton-tool.toml'));
    copyFileSync(join(EXAMPLE_DIR, 'build/text.wasm'), join(builtin, 'text', 'build/text.wasm'));
    mkdirSync(join(builtin, 'unbuilt'));
    writeFileSync(
      join(builtin, 'unbuilt', 'caxton-tool.toml'),
      'name = "unbuilt"\nversion = "1.0.0"\ndescription = "not built yet"\nmodule = "build/unbuilt.wasm"\n[[tools]]\nname = "t"\ndescription = "t"\n',
    );
    mkdirSync(join(builtin, 'shared')); // no manifest: not a package

    const { logger, lines } = logCapture();
    const tools = new ToolRegistry();
    const m = new ToolServerManager({ db: openDatabase(makeTempDir()), tools, logger, builtinDir: builtin });
    expect(await m.start()).toEqual({ loaded: 1, failed: 1 });
    expect(m.list().map((s) => [s.name, s.origin, s.state])).toEqual([
      ['text', 'builtin', 'loaded'],
      ['unbuilt', 'builtin', 'failed'],
    ]);
    expect(m.list()[1]!.error).toBe('module build/unbuilt.wasm is not built; run `npm run build:tools`');
    expect(
      lines.some(
        (l) =>
          (l.level === 40 || l.level === 'warn') &&
          /built-in tool server "unbuilt" skipped: module build\/unbuilt\.wasm is not built/.test(l.msg),
      ),
    ).toBe(true);
    expect(tools.list().map((t) => t.name)).toEqual(['text.echo', 'text.read_file', 'text.stats']);
    m.close();
    expect(tools.list()).toEqual([]);
  });

  it('lists a stored package that no longer loads as failed, and loads the others', async () => {
    const db = openDatabase(makeTempDir());
    const manifest = readFileSync(join(EXAMPLE_DIR, 'caxton-tool.toml'), 'utf8');
    const wasm = readFileSync(join(EXAMPLE_DIR, 'build/text.wasm'));
    const needsKey = `${manifest.replace('name = "text"', 'name = "keyed"')}\n[config]\napi_key = { description = "the key", required = true }\n`;
    const grants = { keyed: toolGrantSchema.parse({ config: { api_key: 'k1' } }) };
    const first = new ToolServerManager({ db, tools: new ToolRegistry(), grants, builtinDir: false });
    await first.start();
    await first.deploy(manifest, wasm);
    await first.deploy(needsKey, wasm);
    first.close();

    // Restart without the grant: "keyed" cannot load (its required config value is missing).
    const { logger, lines } = logCapture();
    const tools = new ToolRegistry();
    const audit = new MemoryToolAuditSink();
    const second = new ToolServerManager({ db, tools, builtinDir: false, logger, audit });
    expect(await second.start()).toEqual({ loaded: 1, failed: 1 });
    const keyed = second.list().find((s) => s.name === 'keyed')!;
    expect(keyed).toMatchObject({ state: 'failed', origin: 'api', tools: [] });
    expect(keyed.error).toMatch(
      /configuration value "api_key" is required by the package and was not given \(the key\)/,
    );
    expect(
      lines.some(
        (l) =>
          l.msg === 'deployed tool server "keyed" could not be loaded; it is listed as failed, without tools' &&
          l.tool_server === 'keyed',
      ),
    ).toBe(true);
    await expect(second.call('keyed.echo', {})).rejects.toThrow(/tool server "keyed" is not loaded: .*api_key/);
    const r = await second.call('text.echo', { hi: 1 }, { agent: 'someone' });
    expect(r).toMatchObject({ content: '{"hi":1}', is_error: false, outcome: 'ok' });
    expect(audit.records.at(-1)).toMatchObject({ agent: 'someone', tool: 'text.echo', execution_id: r.execution_id });
    // A failed package can still be removed.
    await second.remove('keyed');
    expect(second.list().map((s) => s.name)).toEqual(['text']);
    second.close();
  });

  it('refuses a package whose tool names are taken by another tool, keeping the old version running', async () => {
    const tools = new ToolRegistry();
    tools.register({
      name: 'text.echo',
      description: 'someone else',
      input_schema: {},
      invoke: () => Promise.resolve({ content: 'x' }),
    });
    const m = new ToolServerManager({ db: openDatabase(makeTempDir()), tools, builtinDir: false });
    await m.start();
    await expect(
      m.deploy(readFileSync(join(EXAMPLE_DIR, 'caxton-tool.toml')), readFileSync(join(EXAMPLE_DIR, 'build/text.wasm'))),
    ).rejects.toThrow(/a tool named "text.echo" is already registered/);
    expect(m.list()).toEqual([]);
    expect(tools.get('text.echo')!.description).toBe('someone else');
    expect(tools.get('text.stats')).toBeUndefined();
  });

  it('refresh and refreshAll follow a store another manager writes: load, replace, unload; a built-in keeps its name', async () => {
    ensureToolsBuilt();
    const db = openDatabase(makeTempDir());
    const manifest = readFileSync(join(EXAMPLE_DIR, 'caxton-tool.toml'), 'utf8');
    const wasm = readFileSync(join(EXAMPLE_DIR, 'build/text.wasm'));
    const writer = new ToolServerManager({ db, tools: new ToolRegistry(), builtinDir: false });
    await writer.start();
    const changes: unknown[] = [];
    writer.onChange((c) => changes.push(c));
    const builtin = makeTempDir('caxton-builtin-');
    mkdirSync(join(builtin, 'other', 'build'), { recursive: true });
    writeFileSync(join(builtin, 'other', 'caxton-tool.toml'), manifest.replace('name = "text"', 'name = "other"'));
    copyFileSync(join(EXAMPLE_DIR, 'build/text.wasm'), join(builtin, 'other', 'build/text.wasm'));
    const { logger, lines } = logCapture();
    const tools = new ToolRegistry();
    const reader = new ToolServerManager({ db, tools, builtinDir: builtin, logger });
    await reader.start();

    const first = await writer.deploy(manifest, wasm);
    expect(changes).toEqual([{ type: 'deployed', name: 'text', digest: first.server.digest, revision: 1 }]);
    expect(await reader.refresh('text', { revision: 1 })).toBe('loaded');
    expect(await reader.refresh('text', { revision: 1 })).toBe('unchanged');
    expect(await reader.refresh('text')).toBe('unchanged');
    expect((await reader.call('text.echo', { n: 1 })).content).toBe('{"n":1}');

    await writer.deploy(manifest.replace(/^version = "[^"]*"/m, 'version = "2.0.0"'), wasm);
    await writer.deploy(manifest.replace('name = "text"', 'name = "second"'), wasm);
    expect(await reader.refreshAll()).toEqual({ loaded: 2, failed: 0, removed: 0, unchanged: 0 });
    expect(reader.view('text')!.version).toBe('2.0.0');
    expect(await reader.refreshAll()).toEqual({ loaded: 0, failed: 0, removed: 0, unchanged: 0 });

    await writer.remove('second');
    expect(changes.at(-1)).toEqual({ type: 'removed', name: 'second' });
    expect(await reader.refresh('second')).toBe('removed');
    expect(tools.get('second.echo')).toBeUndefined();
    expect(await reader.refresh('second')).toBe('unchanged');

    // A package another manager stored under the name of this one's built-in: the built-in stays.
    await writer.deploy(manifest.replace('name = "text"', 'name = "other"'), wasm);
    expect(await reader.refresh('other')).toBe('unchanged');
    expect(reader.view('other')!.origin).toBe('builtin');
    expect(lines.some((l) => l.tool_server === 'other' && /shadowed here by the built-in/.test(l.msg))).toBe(true);
    expect(reader.list().map((x) => [x.name, x.origin])).toEqual([
      ['other', 'builtin'],
      ['text', 'api'],
    ]);
    writer.close();
    reader.close();
  });
});
