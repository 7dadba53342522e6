/**
 * What `caxton serve` leaves out of its start (ADR 0068), run for real on the bundle: a loader hook
 * lists the files the process imports, and each of the bundle's chunks names its inputs in its
 * source map. A start without `[mcp_servers]` answers its first agent request without the MCP SDK
 * or @fastify/swagger; the first POST /mcp and GET /api/v1/openapi.json load them and answer. A
 * configuration that mounts an MCP server loads the SDK at start and lists the server's tools. Nor
 * does a start import QuickJS (with the first tool server to load) or yaml (with the first Markdown
 * agent file).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
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
    `import { createRequire, register } from 'node:module';\nimport { appendFileSync } from 'node:fs';\nimport { pathToFileURL } from 'node:url';\nregister('./hooks.mjs', import.meta.url);\nconst require = createRequire(import.meta.url);\nprocess.on('exit', () => appendFileSync(process.env.CAXTON_TEST_MODULES, Object.keys(require.cache).map((f) => pathToFileURL(f).href + '\\n').join('')));\n`,
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

async function serve(dir: string): Promise<{ p: ServeProcess; list: string }> {
  const list = join(dir, 'modules.txt');
  writeFileSync(list, '');
  const p = await startServe({
    cwd: dir,
    args: ['--config', join(dir, 'caxton.toml')],
    env: { NODE_OPTIONS: `--import ${join(hooks, 'count.mjs')}`, CAXTON_TEST_MODULES: list },
    readyTimeoutMs: 60_000,
  });
  return { p, list };
}

/** The packages among the inputs of the bundle's chunks (and the external files) imported so far. */
function lazyPackagesLoaded(list: string, lazy = LAZY): string[] {
  const found = new Set<string>();
  for (const url of readFileSync(list, 'utf8').split('\n')) {
    if (!url.startsWith('file:')) continue;
    const file = fileURLToPath(url);
    const inputs = file.startsWith(join(repoRoot, 'dist/cli/'))
      ? (JSON.parse(readFileSync(`${file}.map`, 'utf8')) as { sources: string[] }).sources
      : [file];
    for (const s of inputs) {
      const m = lazy.exec(s);
      if (m) found.add(m[1]!);
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
  it('answers its first agent request without the MCP SDK or @fastify/swagger; the first POST /mcp and GET /api/v1/openapi.json load them', async () => {
    const { p, list } = await serve(project());
    try {
      expect(await invoke(p.url)).toBe(200);
      expect(lazyPackagesLoaded(list)).toEqual([]);

      const tools = (await mcp(p.url, 'tools/list')) as { tools: { name: string }[] };
      expect(tools.tools.map((t) => t.name)).toContain('ask_echo');
      const doc = await fetch(`${p.url}/api/v1/openapi.json`);
      expect(doc.status).toBe(200);
      const body = (await doc.json()) as { openapi: string; paths: Record<string, unknown> };
      expect(body.openapi).toBe('3.1.0');
      expect(Object.keys(body.paths)).toContain('/api/v1/agents/{name}/invoke');
      expect(lazyPackagesLoaded(list)).toEqual([
        '@fastify/swagger',
        '@modelcontextprotocol/sdk',
        'json-schema-resolver',
      ]);
    } finally {
      await stopServe(p, 'SIGTERM', 15_000);
    }
  }, 120_000);

  it('a configuration mounting an MCP server loads the SDK at start and lists its tools', async () => {
    const dir = project([
      '[mcp_servers.mini]',
      `command = ${JSON.stringify(process.execPath)}`,
      `args = [${JSON.stringify(join(repoRoot, 'test/mcp/fixtures/mini-server.mjs'))}]`,
      `cwd = ${JSON.stringify(repoRoot)}`,
    ]);
    const { p, list } = await serve(dir);
    try {
      expect(lazyPackagesLoaded(list)).toContain('@modelcontextprotocol/sdk');
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
    const { p, list } = await serve(project(off));
    try {
      expect(await invoke(p.url)).toBe(200);
      const r = await fetch(`${p.url}/api/v1/tools`);
      expect(r.status).toBe(200);
    } finally {
      await stopServe(p, 'SIGTERM', 15_000);
    }
    // Read after the process has exited, with its CommonJS modules listed.
    expect(lazyPackagesLoaded(list, FIRST_USE)).toEqual([]);

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
    expect(lazyPackagesLoaded(md.list, FIRST_USE)).toEqual(['yaml']);
  }, 120_000);
});
