/**
 * `caxton serve` through V8's code cache (src/cli/code-cache.ts, ADR 0073), run for real: the
 * first start compiles the CommonJS serve bundle without a cache and writes one after its first
 * answer (0600 in a 0700 directory under the data directory); the next start runs from it. A
 * corrupt or foreign-permission cache file is not given to V8 and is written again; a directory
 * that is not private, or CAXTON_CODE_CACHE=off, sends the start to the ES module CLI, which
 * answers as well. `CAXTON_CODE_CACHE_LOG=1` makes each start say what it did.
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cacheFileBytes,
  cacheKey,
  readCache,
  serveDataDir,
  serveOptions,
  topLevelDataDir,
} from '../../src/cli/code-cache.js';
import { assertBuilt, cleanup, repoRoot, startServe, stopServe, tempDir, waitForOutput } from './helpers/cli.js';

beforeAll(assertBuilt);
afterAll(cleanup);

/** A project with one scripted-model agent and its data directory at `data`. */
function project(): string {
  const dir = tempDir('caxton-code-cache-');
  mkdirSync(join(dir, 'agents'));
  writeFileSync(
    join(dir, 'caxton.toml'),
    'data_dir = "data"\nagents_dir = "agents"\n[auth]\nenabled = false\n[logging]\nlevel = "warn"\n[llm]\ndefault_provider = "fake"\n[llm.providers.fake]\ntype = "scripted"\nscript = "replies.toml"\n',
  );
  writeFileSync(join(dir, 'replies.toml'), 'fallback = "hello"\n');
  writeFileSync(
    join(dir, 'agents', 'echo.toml'),
    'name = "echo"\ndescription = "answers hello"\nsystem_prompt = "Answer."\n',
  );
  return dir;
}

/** Starts serve in `dir`, asks the agent, returns what the start reported about the cache. */
async function start(dir: string, env: Record<string, string> = {}, awaitWrite = false): Promise<string> {
  const p = await startServe({
    cwd: dir,
    env: { CAXTON_CODE_CACHE_LOG: '1', ...env },
    readyTimeoutMs: 60_000,
  });
  try {
    const r = await fetch(`${p.url}/api/v1/agents/echo/invoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ request: 'hi' }),
    });
    expect(r.status).toBe(200);
    expect(((await r.json()) as { content: string }).content).toBe('hello');
    if (awaitWrite) await waitForOutput(p, 'stderr', /caxton code cache: wrote /, 20_000);
  } finally {
    await stopServe(p, 'SIGTERM', 15_000);
  }
  expect(p.stderr()).not.toMatch(/ExperimentalWarning/);
  return p
    .stderr()
    .split('\n')
    .filter((l) => l.startsWith('caxton code cache: '))
    .join('\n');
}

const mode = (f: string) => statSync(f).mode & 0o777;
const startWith = start;
/** The cache the build ships beside the bundle (scripts/build-code-cache.mjs). */
const SHIPPED = join(repoRoot, 'dist/cli/serve.bin');
const PROJECT_ONLY = { CAXTON_CODE_CACHE: 'project' };

describe('caxton serve: V8 code cache', () => {
  it('the first start writes a private cache after its first answer; the second runs from it', async () => {
    const dir = project();
    const cacheDir = join(dir, 'data', 'code-cache');
    const file = join(cacheDir, 'serve.bin');
    const first = await start(dir, PROJECT_ONLY, true);
    expect(first).toMatch(/compiled without: none yet/);
    expect(first).toContain(`wrote ${file}`);
    expect(mode(cacheDir)).toBe(0o700);
    expect(mode(file)).toBe(0o600);
    expect(statSync(file).size).toBeGreaterThan(100_000);

    const second = await start(dir);
    expect(second).toContain(`used ${file}`);
    expect(second).not.toMatch(/wrote|compiled without/);
  }, 180_000);

  it("a project's first start runs from the cache the build shipped, then writes its own", async () => {
    expect(existsSync(SHIPPED), `${SHIPPED} is missing: run "npm run build"`).toBe(true);
    const dir = project();
    const file = join(dir, 'data', 'code-cache', 'serve.bin');
    const first = await start(dir, {}, true);
    expect(first).toContain(`used ${SHIPPED}`);
    expect(first).toContain(`wrote ${file}`);
    expect(await start(dir)).toContain(`used ${file}`);
    // A project cache that is corrupt falls back to the shipped one, and says why.
    writeFileSync(file, 'not a cache');
    expect(await start(dir, {}, true)).toMatch(/used .*dist\/cli\/serve\.bin \(.*serve\.bin: corrupt/);
  }, 180_000);

  it('keys a cache to the flags that change the compile, not to the modules preloaded before it', () => {
    const bundle = Buffer.from('bundle');
    const plain = cacheKey(bundle, {}, []);
    expect(cacheKey(bundle, {}, ['--import', 'hook.mjs', '--require=apm.cjs'])).toEqual(plain);
    expect(cacheKey(bundle, { NODE_OPTIONS: '-r apm.cjs' }, [])).toEqual(plain);
    expect(cacheKey(bundle, {}, ['--max-old-space-size=100'])).not.toEqual(plain);
    expect(cacheKey(bundle, { NODE_OPTIONS: '--jitless' }, [])).not.toEqual(plain);
  });

  it('trusts a shipped cache owned by this user or root and writable by nobody else', () => {
    const dir = tempDir('caxton-shipped-cache-');
    const file = join(dir, 'serve.bin');
    const key = cacheKey(readFileSync(join(repoRoot, 'dist/cli/serve.cjs')), {}, []);
    writeFileSync(file, cacheFileBytes(key, Buffer.alloc(64, 1)));
    chmodSync(file, 0o644);
    expect(readCache(file, key, 'shipped')).toBeInstanceOf(Buffer);
    expect(readCache(file, key, 'private')).toBe('not a private file');
    chmodSync(file, 0o664);
    expect(readCache(file, key, 'shipped')).toBe('writable by others');
    chmodSync(file, 0o646);
    expect(readCache(file, key, 'shipped')).toBe('writable by others');
  });

  it('a corrupt cache file, or one readable by others, is not given to V8 and is written again', async () => {
    const dir = project();
    const file = join(dir, 'data', 'code-cache', 'serve.bin');
    // The project's own cache alone: a shipped one would stand in for the bad ones below.
    const start = (d: string, env: Record<string, string> = {}, awaitWrite = false) =>
      startWith(d, { ...PROJECT_ONLY, ...env }, awaitWrite);
    await start(dir, {}, true);
    const good = readFileSync(file);

    const bad = Buffer.from(good);
    bad[bad.length - 100] = bad[bad.length - 100]! ^ 0xff;
    writeFileSync(file, bad);
    const corrupt = await start(dir, {}, true);
    expect(corrupt).toMatch(/compiled without: corrupt \(hash\)/);
    expect(mode(file)).toBe(0o600);
    expect(await start(dir)).toContain(`used ${file}`);

    chmodSync(file, 0o644);
    const open = await start(dir, {}, true);
    expect(open).toMatch(/compiled without: not a private file/);
    expect(mode(file)).toBe(0o600);

    writeFileSync(file, 'not a cache');
    expect(await start(dir, {}, true)).toMatch(/compiled without: corrupt/);
    expect(await start(dir)).toContain(`used ${file}`);

    // Well formed, under the right key, but not V8's data: V8 rejects it, and it is written again.
    const key = cacheKey(readFileSync(join(repoRoot, 'dist/cli/serve.cjs')), {}, []);
    writeFileSync(file, cacheFileBytes(key, Buffer.alloc(4096, 7)), { mode: 0o600 });
    expect(await start(dir, {}, true)).toMatch(/compiled without: rejected by V8/);
    expect(await start(dir)).toContain(`used ${file}`);
  }, 300_000);

  it('records the files it checked, and checks again a cache changed since, whatever its times say', async () => {
    const dir = project();
    const file = join(dir, 'data', 'code-cache', 'serve.bin');
    const record = join(dir, 'data', 'code-cache', 'serve.id');
    await start(dir, PROJECT_ONLY, true);
    expect(mode(record)).toBe(0o600);
    expect(readFileSync(record, 'utf8').split('\n')[1]).toBe(join(repoRoot, 'dist/cli/serve.cjs'));
    expect(await start(dir, PROJECT_ONLY)).toContain(`used ${file}`);

    // Same size, same modification time: the change time differs, so the bytes are hashed.
    const before = statSync(file);
    const bad = readFileSync(file);
    bad[bad.length - 100] = bad[bad.length - 100]! ^ 0xff;
    writeFileSync(file, bad);
    utimesSync(file, before.atime, before.mtime);
    expect(await start(dir, PROJECT_ONLY, true)).toMatch(/compiled without: corrupt \(hash\)/);
    expect(await start(dir, PROJECT_ONLY)).toContain(`used ${file}`);
  }, 300_000);

  it('the build records the cache it ships beside it, readable by all', () => {
    const shipped = join(repoRoot, 'dist/cli/serve.id');
    expect(mode(shipped)).toBe(0o644);
    const [magic, bundle, , sha] = readFileSync(shipped, 'utf8').split('\n');
    expect(magic).toBe('CAXTONID1');
    expect(bundle).toBe(join(repoRoot, 'dist/cli/serve.cjs'));
    expect(sha).toBe(createHash('sha256').update(readFileSync(bundle!)).digest('hex'));
  });

  it('a cache directory others can enter, or CAXTON_CODE_CACHE=off, leaves the start to the ES module CLI', async () => {
    const dir = project();
    const cacheDir = join(dir, 'data', 'code-cache');
    mkdirSync(cacheDir, { recursive: true });
    chmodSync(cacheDir, 0o755);
    expect(await start(dir)).toMatch(/not used: .* is not a private directory/);
    expect(existsSync(join(cacheDir, 'serve.bin'))).toBe(false);

    const off = project();
    expect(await start(off, { CAXTON_CODE_CACHE: 'off' })).toMatch(/not used: CAXTON_CODE_CACHE/);
    expect(existsSync(join(off, 'data', 'code-cache'))).toBe(false);
  }, 180_000);
});

describe('where the entry looks for the cache before the configuration is loaded', () => {
  it('reads serve command lines only, and none with an argument it does not know', () => {
    expect(serveOptions(['serve'])).toEqual(new Map());
    expect(serveOptions(['--json', '--server', 'x', 'serve', '--config=a.toml', '-p', '0'])).toEqual(
      new Map([
        ['--config', 'a.toml'],
        ['-p', '0'],
      ]),
    );
    expect(serveOptions(['agent', 'list'])).toBeUndefined();
    expect(serveOptions(['serve', '--help'])).toBeUndefined();
    expect(serveOptions(['serve', '-p8080'])).toBeUndefined();
    expect(serveOptions(['serve', '--data-dir'])).toBeUndefined();
  });

  it("reads a file's top-level data_dir in the plain forms only", () => {
    expect(topLevelDataDir('data_dir = "d"\n[server]\n')).toBe('d');
    expect(topLevelDataDir("data_dir='/x' # where\n")).toBe('/x');
    expect(topLevelDataDir('[server]\ndata_dir = "not top level"\n')).toBeUndefined();
    expect(topLevelDataDir('agents_dir = "a"\n')).toBeUndefined();
    expect(topLevelDataDir('data_dir = "a\\\\b"\n')).toBeNull();
    expect(topLevelDataDir('data_dir = """d"""\n')).toBeNull();
  });

  it('takes the flag, then CAXTON_DATA_DIR, then the file, as the configuration loader does', () => {
    const dir = tempDir('caxton-code-cache-dir-');
    writeFileSync(join(dir, 'caxton.toml'), 'data_dir = "stored"\n');
    const opts = (a: string[]) => serveOptions(['serve', ...a])!;
    expect(serveDataDir(opts(['--data-dir', 'f']), { CAXTON_DATA_DIR: 'e' }, dir)).toBe(join(dir, 'f'));
    expect(serveDataDir(opts([]), { CAXTON_DATA_DIR: 'e' }, dir)).toBe(join(dir, 'e'));
    expect(serveDataDir(opts([]), {}, dir)).toBe(join(dir, 'stored'));
    expect(serveDataDir(opts(['--config', join(dir, 'none.toml')]), {}, dir)).toBeUndefined();
    writeFileSync(join(dir, 'other.toml'), '[server]\nport = 1\n');
    expect(serveDataDir(opts([]), { CAXTON_CONFIG: 'other.toml' }, dir)).toBe(join(dir, 'data'));
    expect(serveDataDir(opts([]), {}, join(dir, '..', 'nowhere-' + Date.now()))).toMatch(/nowhere-\d+\/data$/);
  });
});
