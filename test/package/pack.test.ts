/**
 * The package as users get it: `npm pack` of this repository, installed with `npm install -g`
 * into a temporary prefix (no repository on the PATH or in node_modules lookups), then the
 * README's quickstart: `caxton init demo && cd demo && caxton serve`, the built-in WebAssembly
 * tools and the embedding model working, `caxton agent run assistant "What is 6 * 7?"`
 * answering, `caxton mcp` started by name by an MCP client, and `import ... from 'caxton-server'`.
 *
 * Packing and installing are in install.ts: vitest's global setup (setup.ts) starts them at the
 * beginning of the run so they overlap the other files; run alone, this file does it itself.
 * Dependencies come from the npm cache or registry; better-sqlite3 gets the repository's own
 * compiled addon as a local prebuild (install.ts says why). A user's install compiles it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  INSTALL_TIMEOUT_MS,
  killInstall,
  packAndInstall,
  repoRoot,
  run as runCommand,
  userEnv,
  waitForInstall,
  type Installed,
  type RunResult,
} from './install.js';
import { waitUntil } from '../helpers/wait.js';

let pkg: Installed;
let ownDir: string | undefined;
const env = (extra: Record<string, string> = {}) => userEnv(pkg.bin, pkg.dir, extra);

type Run = RunResult;

/** Runs a command (by name, through PATH) to completion, as the user's shell would; killed after timeoutMs. */
const run = (
  cmd: string,
  args: string[],
  opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<Run> =>
  runCommand(cmd, args, { cwd: opts.cwd, env: opts.env ?? env(), timeoutMs: opts.timeoutMs ?? 30_000 });

function ok(r: Run, what: string): Run {
  expect(r.code, `${what}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`).toBe(0);
  return r;
}

let serve: ChildProcess | undefined;
let serveErr = '';
let url = '';
let demo = '';

beforeAll(async () => {
  const started = inject('caxtonPackageDir');
  if (started) pkg = await waitForInstall(started);
  else pkg = await packAndInstall((ownDir = mkdtempSync(join(tmpdir(), 'caxton-pack-'))));
  demo = join(pkg.dir, 'demo');
}, INSTALL_TIMEOUT_MS + 90_000);

afterAll(async () => {
  killInstall();
  if (serve && serve.exitCode === null) {
    const exited = new Promise((r) => serve!.once('close', r));
    serve.kill('SIGKILL');
    await exited;
  }
  // ~270 installed packages: removing them took over a minute here, so a detached rm does it
  // (the global setup's teardown does it for the install it started).
  if (ownDir) spawn('rm', ['-rf', ownDir], { detached: true, stdio: 'ignore' }).unref();
});

describe('npm pack', () => {
  it('packs the built server, library types, built-in tools (manifests and modules), templates and the web console, and no sources or tests', () => {
    for (const f of [
      'dist/index.js',
      'dist/index.d.ts',
      'dist/cli/main.js',
      'dist/console/index.html',
      'dist/console/favicon.svg',
      'templates/basic/caxton.toml',
      'templates/basic/agents/assistant.toml',
      'templates/tool-c/src/stats.c',
      'sdk/c/caxton.h',
      'sdk/rust/caxton/src/lib.rs',
      'package.json',
      'README.md',
    ])
      expect(pkg.packedFiles, f).toContain(f);
    const builtins = readdirSync(join(repoRoot, 'tools/builtin'), { withFileTypes: true })
      .filter((d) => d.isDirectory() && existsSync(join(repoRoot, 'tools/builtin', d.name, 'caxton-tool.toml')))
      .map((d) => d.name);
    expect(builtins.length).toBeGreaterThanOrEqual(6);
    for (const b of builtins) {
      expect(pkg.packedFiles).toContain(`tools/builtin/${b}/caxton-tool.toml`);
      expect(pkg.packedFiles).toContain(`tools/builtin/${b}/build/${b}.wasm`);
    }
    const unwanted = pkg.packedFiles.filter(
      (f) =>
        /^(src|test|bench|scripts|deploy|docs)\//.test(f) ||
        /\/assembly\/.*\.ts$/.test(f.replace(/^templates\/.*/, '')) ||
        f.endsWith('.map') ||
        f.includes('node_modules/'),
    );
    expect(unwanted).toEqual([]);
  });
});

/** The admin key `caxton serve` wrote at its first start (demo/data/admin.key): the CLI finds it itself, fetch needs it. */
const adminAuth = () => ({ authorization: `Bearer ${readFileSync(join(demo, 'data', 'admin.key'), 'utf8').trim()}` });

describe('installed globally (npm install -g of the tarball)', () => {
  it('puts caxton on the PATH', async () => {
    expect(existsSync(join(pkg.bin, 'caxton'))).toBe(true);
    const r = ok(await run('caxton', ['--version'], { cwd: pkg.dir }), 'caxton --version');
    expect(r.stdout.trim()).toBe(
      (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version,
    );
  });

  it('runs the quickstart: caxton init demo && cd demo && caxton serve, then caxton agent run assistant answers', async () => {
    ok(await run('caxton', ['init', 'demo'], { cwd: pkg.dir }), 'caxton init demo');
    expect(existsSync(join(demo, 'caxton.toml'))).toBe(true);
    // `caxton serve` with no --config reads ./caxton.toml; port 0 = any free port (printed on stderr).
    serve = spawn('caxton', ['serve', '--port', '0', '--metrics-port', '0'], {
      cwd: demo,
      env: env(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    serve.stderr!.setEncoding('utf8').on('data', (d: string) => (serveErr += d));
    serve.stdout!.resume();
    const deadline = Date.now() + 60_000;
    while (!url) {
      const m = /caxton listening on (http:\/\/\S+) /.exec(serveErr);
      if (m) url = m[1]!;
      else if (serve.exitCode !== null || Date.now() > deadline)
        throw new Error(`caxton serve did not start:\n${serveErr}`);
      else await new Promise((r) => setTimeout(r, 100));
    }
    expect((await fetch(`${url}/ready`)).status).toBe(200);

    const r = ok(
      await run('caxton', ['agent', 'run', 'assistant', 'What is 6 * 7?'], {
        cwd: demo,
        env: env({ CAXTON_SERVER_URL: url }),
      }),
      'caxton agent run',
    );
    expect(r.stdout).toContain('The answer is 42.');
  }, 90_000);

  it('serves the web console from the installed package at /ui', async () => {
    const page = await fetch(`${url}/ui/agents`);
    expect(page.status).toBe(200);
    const html = await page.text();
    const script = /<script type="module" src="([^"]+)"><\/script>/.exec(html)?.[1];
    expect(script, html).toMatch(/^\/ui\/assets\/main-[A-Z0-9]+\.js$/);
    const js = await fetch(`${url}${script!}`);
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
  });

  it('loads the built-in WebAssembly tools from the installed package', async () => {
    type Listed = { servers: { name: string; origin: string; kind: string; state: string }[] };
    // The servers load in the background after the server listens: read their settled states.
    const { value: body } = await waitUntil(
      async () => {
        const b = (await (await fetch(`${url}/api/v1/tools`, { headers: adminAuth() })).json()) as Listed;
        return !b.servers.some((s) => s.state === 'loading') && b;
      },
      { what: 'the built-in tool servers to finish loading' },
    );
    // The catalogue lists every tool source; the package's WebAssembly servers are the wasm ones.
    const builtin = body.servers.filter((s) => s.origin === 'builtin' && s.kind === 'wasm');
    expect(builtin.map((s) => s.name).sort()).toEqual([
      'chart_generator',
      'csv_parser',
      'filesystem',
      'http_client',
      'json_query',
      'sqlite_query',
    ]);
    expect(builtin.filter((s) => s.state !== 'loaded')).toEqual([]);
    const call = await fetch(`${url}/api/v1/tools/csv_parser/parse/call`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...adminAuth() },
      body: JSON.stringify({ args: { text: 'a,b\n1,2\n' } }),
    });
    expect(call.status).toBe(200);
    expect(((await call.json()) as { is_error: boolean }).is_error).toBe(false);
  });

  it('embeds with the local model from the installed package (memory search by meaning)', async () => {
    const post = (path: string, body: unknown) =>
      fetch(`${url}/api/v1/memory/${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...adminAuth() },
        body: JSON.stringify(body),
      });
    expect(
      (
        await post('entities', {
          scope: 'global',
          entities: [{ name: 'Ada', entityType: 'person', observations: ['Wrote the first computer program'] }],
        })
      ).status,
    ).toBeLessThan(300);
    const found = (await (
      await post('search', { query: 'who was the first programmer?', scope: 'global', mode: 'semantic' })
    ).json()) as { results: { entity: { name: string } }[] };
    expect(found.results.map((x) => x.entity.name)).toContain('Ada');
    const stats = (await (await fetch(`${url}/api/v1/memory/stats`, { headers: adminAuth() })).json()) as {
      embedding: { model: string } | null;
    };
    expect(JSON.stringify(stats.embedding)).toMatch(/MiniLM/i);
  }, 60_000);

  it('lets an MCP client start `caxton mcp` by name', async () => {
    const transport = new StdioClientTransport({
      command: 'caxton',
      args: ['mcp', '--data-dir', join(pkg.dir, 'mcp-data')],
      cwd: demo,
      env: env() as Record<string, string>,
      stderr: 'ignore',
    });
    const client = new Client({ name: 'pack-test', version: '1.0.0' });
    await client.connect(transport);
    try {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toContain('ask_assistant');
    } finally {
      await client.close();
    }
  }, 60_000);

  it("is importable as a library: import { startServer, loadConfig, parseAgent, CaxtonError } from 'caxton-server'", async () => {
    const app = join(pkg.dir, 'app');
    mkdirSync(join(app, 'node_modules'), { recursive: true });
    symlinkSync(pkg.installed, join(app, 'node_modules', 'caxton-server'), 'dir');
    writeFileSync(join(app, 'package.json'), '{"type": "module"}\n');
    writeFileSync(
      join(app, 'main.js'),
      `import { startServer, loadConfig, parseAgent, CaxtonError, ERROR_CODES, VERSION } from 'caxton-server';
const parsed = parseAgent('name = "x"\\nsystem_prompt = "hi"\\n', { file: 'x.toml' });
const config = loadConfig({ env: {}, flags: { port: 0, metricsPort: 0, dataDir: 'data', agentsDir: 'agents' } });
config.metrics.enabled = false;
const server = await startServer({ config });
const health = await fetch(server.url + '/health');
await server.close();
console.log(JSON.stringify({ ok: parsed.ok, health: health.status, err: new CaxtonError('not_found', 'x').code, codes: ERROR_CODES.not_found, VERSION }));
`,
    );
    const r = ok(await run('node', ['main.js'], { cwd: app, timeoutMs: 60_000 }), 'node main.js');
    // The server's own JSON log lines share stdout (written asynchronously): pick the script's line.
    const out = JSON.parse(r.stdout.split('\n').find((l) => l.includes('"health"'))!) as Record<string, unknown>;
    expect(out).toMatchObject({ ok: true, health: 200, err: 'not_found', codes: 404 });
    const dts = readFileSync(join(pkg.installed, 'dist/index.d.ts'), 'utf8');
    for (const name of ['startServer', 'loadConfig', 'parseAgent', 'AgentDefinition', 'CaxtonError', 'StartOptions'])
      expect(dts).toContain(name);
    const manifest = JSON.parse(readFileSync(join(pkg.installed, 'package.json'), 'utf8')) as {
      exports: Record<string, { types: string; import: string }>;
    };
    expect(existsSync(join(pkg.installed, manifest.exports['.']!.import))).toBe(true);
    expect(existsSync(join(pkg.installed, manifest.exports['.']!.types))).toBe(true);
  }, 90_000);
});
