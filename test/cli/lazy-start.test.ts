/**
 * What `caxton serve` leaves out of its start (ADR 0068), run for real on the build, on both of
 * its paths: the CommonJS serve bundle through the code cache (ADR 0073, the default) and the ES
 * module bundle (`CAXTON_CODE_CACHE=off`, and every other command). A loader hook lists the files
 * the process imports (each of the ES module bundle's chunks names its inputs in its source map),
 * the require cache the CommonJS ones; in the one-file CommonJS bundle a module is initialised by
 * a function esbuild names after the module's path, and V8's coverage (NODE_V8_COVERAGE, taken on
 * SIGUSR2) says which of those ran. A start without `[mcp_servers]` answers its first agent request
 * without the MCP SDK or @fastify/swagger; the first POST /mcp and GET /api/v1/openapi.json load
 * them and answer. A configuration that mounts an MCP server loads the SDK at start and lists the
 * server's tools. Nor does a start load QuickJS (with the first tool server to load) or yaml (with
 * the first Markdown agent file).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, cleanup, repoRoot, startServe, stopServe, tempDir, type ServeProcess } from './helpers/cli.js';

const LAZY = /node_modules\/(@modelcontextprotocol\/sdk|@fastify\/swagger|json-schema-resolver)\//;
/** Loaded by the first tool server to load, and by the first Markdown agent file read. */
const FIRST_USE = /node_modules\/(quickjs-emscripten|yaml)\//;

let hooks: string;

beforeAll(() => {
  assertBuilt();
  hooks = tempDir('caxton-lazy-hooks-');
  writeFileSync(
    join(hooks, 'hooks.mjs'),
    `import { appendFileSync } from 'node:fs';\nexport async function load(url, context, next) { appendFileSync(process.env.CAXTON_TEST_MODULES, url + '\\n'); return next(url, context); }\n`,
  );
  writeFileSync(
    join(hooks, 'count.mjs'),
    // Packages required as CommonJS (yaml) pass no loader hook: the require cache is listed at exit.
    // On SIGUSR2 the coverage so far is written and the list marked, for a check while serving.
    `import { createRequire, register } from 'node:module';\nimport { appendFileSync } from 'node:fs';\nimport { pathToFileURL } from 'node:url';\nimport { takeCoverage } from 'node:v8';\nregister('./hooks.mjs', import.meta.url);\nconst require = createRequire(import.meta.url);\nconst flush = () => appendFileSync(process.env.CAXTON_TEST_MODULES, Object.keys(require.cache).map((f) => pathToFileURL(f).href + '\\n').join(''));\nprocess.on('exit', flush);\nprocess.on('SIGUSR2', () => { takeCoverage(); flush(); appendFileSync(process.env.CAXTON_TEST_MODULES, 'taken\\n'); });\n`,
  );
});

afterAll(cleanup);

/** The built-in tool servers' names (tools/builtin/NAME/caxton-tool.toml). */
function builtinNames(): string[] {
  return readdirSync(join(repoRoot, 'tools/builtin'), { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(repoRoot, 'tools/builtin', d.name, 'caxton-tool.toml')))
    .map((d) => d.name);
}

/** A project with one scripted-model agent; `extra` is appended to caxton.toml. */
function project(extra: string[] = []): string {
  const dir = tempDir('caxton-lazy-start-');
  mkdirSync(join(dir, 'agents'));
  writeFileSync(
    join(dir, 'caxton.toml'),
    [
      'data_dir = "data"',
      'agents_dir = "agents"',
      '[auth]',
      'enabled = false',
      '[logging]',
      'level = "warn"',
      '[llm]',
      'default_provider = "fake"',
      '[llm.providers.fake]',
      'type = "scripted"',
      'script = "replies.toml"',
      ...extra,
    ].join('\n'),
  );
  writeFileSync(join(dir, 'replies.toml'), 'fallback = "hello"\n');
  writeFileSync(
    join(dir, 'agents', 'echo.toml'),
    'name = "echo"\ndescription = "answers hello"\nsystem_prompt = "Answer."\n',
  );
  return dir;
}

type Path = 'cjs' | 'esm';

interface Started {
  p: ServeProcess;
  list: string;
  coverage: string;
}

async function serve(dir: string, path: Path = 'cjs'): Promise<Started> {
  const list = join(dir, 'modules.txt');
  const coverage = join(dir, 'coverage');
  writeFileSync(list, '');
  const p = await startServe({
    cwd: dir,
    args: ['--config', join(dir, 'caxton.toml')],
    env: {
      NODE_OPTIONS: `--import ${join(hooks, 'count.mjs')}`,
      CAXTON_TEST_MODULES: list,
      NODE_V8_COVERAGE: coverage,
      CAXTON_CODE_CACHE_LOG: '1',
      ...(path === 'esm' && { CAXTON_CODE_CACHE: 'off' }),
    },
    readyTimeoutMs: 60_000,
  });
  // The start took the path asked for.
  // A fresh data dir: the bundle runs from the cache the build ships, or compiles without one.
  expect(p.stderr()).toMatch(
    path === 'cjs' ? /caxton code cache: (compiled without|used )/ : /caxton code cache: not used/,
  );
  return { p, list, coverage };
}

/** While the server runs: has it write its coverage and list its CommonJS modules. */
async function snapshot(s: Started): Promise<void> {
  const marks = () =>
    readFileSync(s.list, 'utf8')
      .split('\n')
      .filter((l) => l === 'taken').length;
  const before = marks();
  s.p.child.kill('SIGUSR2');
  const deadline = Date.now() + 10_000;
  while (marks() === before) {
    if (Date.now() > deadline) throw new Error('no coverage written on SIGUSR2');
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * The packages among the inputs of the ES module bundle's chunks (and the external files)
 * imported so far, and among the modules of the CommonJS bundle initialised so far (call
 * `snapshot` first while the server runs).
 */
function lazyPackagesLoaded(s: Started, lazy = LAZY): string[] {
  const found = new Set<string>();
  const note = (input: string) => {
    const m = lazy.exec(input);
    if (m) found.add(m[1]!);
  };
  for (const url of readFileSync(s.list, 'utf8').split('\n')) {
    if (!url.startsWith('file:')) continue;
    const file = fileURLToPath(url);
    const inputs =
      file.startsWith(join(repoRoot, 'dist/cli/')) && file.endsWith('.js')
        ? (JSON.parse(readFileSync(`${file}.map`, 'utf8')) as { sources: string[] }).sources
        : [file];
    inputs.forEach(note);
  }
  const bundle = join(repoRoot, 'dist/cli/serve.cjs');
  if (existsSync(s.coverage))
    for (const f of readdirSync(s.coverage)) {
      const { result } = JSON.parse(readFileSync(join(s.coverage, f), 'utf8')) as {
        result: { url: string; functions: { functionName: string; ranges: { count: number }[] }[] }[];
      };
      for (const script of result) {
        if (script.url !== bundle && script.url !== pathToFileURL(bundle).href) continue;
        // esbuild's wrapper of each module: a method named after the module's path.
        for (const fn of script.functions)
          if (fn.ranges[0]!.count > 0 && /\.[cm]?[jt]s$/.test(fn.functionName)) note(fn.functionName);
      }
    }
  return [...found].sort();
}

async function invoke(url: string): Promise<number> {
  const r = await fetch(`${url}/api/v1/agents/echo/invoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ request: 'hi' }),
  });
  await r.text();
  return r.status;
}

async function mcp(url: string, method: string, params: Record<string, unknown> = {}): Promise<unknown> {
  const r = await fetch(`${url}/mcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  expect(r.status).toBe(200);
  const text = await r.text();
  const data = /^data: (.*)$/m.exec(text)?.[1] ?? text;
  return (JSON.parse(data) as { result: unknown }).result;
}

describe('caxton serve: what a start leaves out', () => {
  it.each(['cjs', 'esm'] as const)(
    '%s: answers its first agent request without the MCP SDK or @fastify/swagger; the first POST /mcp and GET /api/v1/openapi.json load them',
    async (path) => {
      const s = await serve(project(), path);
      const { p } = s;
      try {
        expect(await invoke(p.url)).toBe(200);
        await snapshot(s);
        expect(lazyPackagesLoaded(s)).toEqual([]);

        const tools = (await mcp(p.url, 'tools/list')) as { tools: { name: string }[] };
        expect(tools.tools.map((t) => t.name)).toContain('ask_echo');
        const doc = await fetch(`${p.url}/api/v1/openapi.json`);
        expect(doc.status).toBe(200);
        const body = (await doc.json()) as { openapi: string; paths: Record<string, unknown> };
        expect(body.openapi).toBe('3.1.0');
        expect(Object.keys(body.paths)).toContain('/api/v1/agents/{name}/invoke');
        await snapshot(s);
        expect(lazyPackagesLoaded(s)).toEqual([
          '@fastify/swagger',
          '@modelcontextprotocol/sdk',
          'json-schema-resolver',
        ]);
      } finally {
        await stopServe(p, 'SIGTERM', 15_000);
      }
    },
    120_000,
  );

  it('a configuration mounting an MCP server loads the SDK at start and lists its tools', async () => {
    const dir = project([
      '[mcp_servers.mini]',
      `command = ${JSON.stringify(process.execPath)}`,
      `args = [${JSON.stringify(join(repoRoot, 'test/mcp/fixtures/mini-server.mjs'))}]`,
      `cwd = ${JSON.stringify(repoRoot)}`,
    ]);
    const s = await serve(dir);
    const { p } = s;
    try {
      await snapshot(s);
      expect(lazyPackagesLoaded(s)).toContain('@modelcontextprotocol/sdk');
      const r = await fetch(`${p.url}/api/v1/mcp/servers`);
      const { servers } = (await r.json()) as { servers: { name: string; state: string; tools: number }[] };
      expect(servers).toMatchObject([{ name: 'mini', state: 'ready' }]);
      expect(servers[0]!.tools).toBeGreaterThan(0);
      const tools = (await mcp(p.url, 'tools/list')) as { tools: { name: string }[] };
      expect(tools.tools.map((t) => t.name)).toContain('ask_echo');
    } finally {
      await stopServe(p, 'SIGTERM', 15_000);
    }
  }, 120_000);

  it('a start with no tool server to load and TOML agents only imports neither QuickJS nor yaml; a Markdown agent loads yaml', async () => {
    // Every built-in disabled: no tool server ever loads, so none can have imported QuickJS.
    const off = builtinNames().flatMap((n) => [`[tools.${n}]`, 'enabled = false']);
    const s = await serve(project(off));
    const { p } = s;
    try {
      expect(await invoke(p.url)).toBe(200);
      const r = await fetch(`${p.url}/api/v1/tools`);
      expect(r.status).toBe(200);
    } finally {
      await stopServe(p, 'SIGTERM', 15_000);
    }
    // Read after the process has exited, with its CommonJS modules listed.
    expect(lazyPackagesLoaded(s, FIRST_USE)).toEqual([]);

    const dir = project(off);
    writeFileSync(
      join(dir, 'agents', 'notes.md'),
      '---\nname: notes\ndescription: "takes notes"\n---\n\nAnswer in one line.\n',
    );
    const md = await serve(dir);
    try {
      const agent = await fetch(`${md.p.url}/api/v1/agents/notes`);
      expect(agent.status).toBe(200);
    } finally {
      await stopServe(md.p, 'SIGTERM', 15_000);
    }
    expect(lazyPackagesLoaded(md, FIRST_USE)).toEqual(['yaml']);
  }, 120_000);
});
