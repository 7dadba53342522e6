/**
 * Claude Code agents that list no tools, as two thirds of the community's files do: Claude Code
 * gives them every tool, Caxton the tools the operator grants (`[agents.claude] unlisted_tools`,
 * ADR 0121). One agent file of each kind — reviewer, refactorer, debugger, test writer, devops,
 * researcher, docs writer, data analyst — with no `tools` key is deployed on a server granting a
 * writable workspace, Bash in bubblewrap, fetching from a local host and a SearXNG-shaped search,
 * and does its job driven by the strict stand-in model: the model only acts on what the tools
 * answered (the reviewer names the line Grep found, the debugger fixes what the failing test
 * printed), and the workspace is checked afterwards.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasSystem } from '../helpers/system.js';
import { openaiProvider, removeTempDirs, setTestKeys, startCaxton, tempDir, type Caxton } from './helpers/caxton.js';
import { startLlmStub, type LlmStub, type Reply, type StubHit } from './helpers/llm-stub.js';
import { assistantTurns, offeredTools, systemPromptOf, toolResultsOf } from './helpers/wire.js';

let llm: LlmStub;
let cx: Caxton;
let ws: string;
let web: Server;
let base: string;
let agentsDir: string;

/** One step of a scripted agent: what the model does next, given the results its tools gave so far. */
type Step = (results: string[]) => Reply;
const call = (name: string, args: Record<string, unknown>): Reply => ({
  tool_calls: [{ id: `call_${name}_${Math.random().toString(36).slice(2, 8)}`, name, arguments: args }],
});
const say = (content: string): Reply => ({ content });

/** The scripts, keyed by a word of each agent's system prompt. */
const SCRIPTS: Record<string, Step[]> = {
  reviewer: [
    () => call('workspace_grep', { pattern: '<= *\\w+\\.length', output_mode: 'content', '-n': true }),
    (r) => {
      const hit = /([^\s:]+\.js):(\d+):/.exec(r[0] ?? '');
      return say(hit ? `Bug: off-by-one loop bound at ${hit[1]}:${hit[2]}` : 'no bug found');
    },
  ],
  refactorer: [
    () => call('workspace_read', { file_path: 'src/greet.js' }),
    (r) =>
      /function g\(n\)/.test(r[0] ?? '')
        ? call('workspace_multi_edit', {
            file_path: 'src/greet.js',
            edits: [
              { old_string: 'function g(n)', new_string: 'function greet(name)' },
              { old_string: "'Hello, ' + n", new_string: "'Hello, ' + name" },
              { old_string: 'module.exports = g;', new_string: 'module.exports = greet;' },
            ],
          })
        : say('nothing to rename'),
    (r) => say(`Renamed: ${r[1] ?? ''}`),
  ],
  debugger: [
    () => call('workspace_bash', { command: 'node test/max.test.js', description: 'run the failing test' }),
    (r) => {
      // The test's own output names the function that failed: read that file.
      const file = /in (src\/\w+\.js)/.exec(r[0] ?? '')?.[1] ?? 'missing';
      return call('workspace_read', { file_path: file });
    },
    (r) => {
      const wrong = /return a < b \? a : b;/.test(r[1] ?? '');
      return wrong
        ? call('workspace_edit', {
            file_path: 'src/max.js',
            old_string: 'return a < b ? a : b;',
            new_string: 'return a > b ? a : b;',
          })
        : say('could not find the bug');
    },
    () => call('workspace_bash', { command: 'node test/max.test.js', description: 'run the test again' }),
    (r) => say(`Fixed; the test now says: ${r[3] ?? ''}`),
  ],
  'test writer': [
    () => call('workspace_read', { file_path: 'src/sum.js' }),
    () =>
      call('workspace_write', {
        file_path: 'test/sum.test.js',
        content:
          "const sum = require('../src/sum.js');\nconst got = sum([1, 2, 3]);\nif (got !== 6) { console.log('FAIL sum', got); process.exit(1); }\nconsole.log('ok sum');\n",
      }),
    () => call('workspace_bash', { command: 'node test/sum.test.js', description: 'run the new test' }),
    (r) => say(`Wrote test/sum.test.js; it reports: ${r[2] ?? ''}`),
  ],
  devops: [
    () => call('workspace_read', { file_path: 'package.json' }),
    (r) => {
      const test = /"test": "([^"]+)"/.exec(r[0] ?? '')?.[1] ?? 'npm test';
      return call('workspace_write', {
        file_path: '.github/workflows/ci.yml',
        content: `name: ci\non: [push]\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n      - run: ${test}\n`,
      });
    },
    () => call('workspace_bash', { command: 'ls .github/workflows', description: 'check the workflow' }),
    (r) => say(`CI workflow: ${r[2] ?? ''}`),
  ],
  researcher: [
    () => call('web_search', { query: 'caxton agents' }),
    (r) => {
      const url = /https?:\/\/[^\s)"]+/.exec(r[0] ?? '')?.[0];
      return url ? call('web_fetch', { url, prompt: 'what does it say' }) : say('nothing found');
    },
    (r) => say(`Found: ${(r[1] ?? '').slice(0, 200)}`),
  ],
  'docs writer': [
    () => call('workspace_glob', { pattern: 'src/*.js' }),
    (r) => {
      const files = (r[0] ?? '').split('\n').filter((l) => l.endsWith('.js'));
      return call('workspace_write', {
        file_path: 'docs/API.md',
        content: `# API\n\n${files.map((f) => `- \`${f.slice(f.lastIndexOf('/') + 1)}\``).join('\n')}\n`,
      });
    },
    (r) => say(r[1] ?? ''),
  ],
  'data analyst': [
    () => call('workspace_read', { file_path: 'data/sales.csv' }),
    () =>
      call('workspace_bash', {
        command: "tail -n +2 data/sales.csv | cut -d, -f2 | awk '{s += $1} END {print s}'",
        description: 'total sales',
      }),
    (r) => say(`Total sales: ${(r[1] ?? '').trim()}`),
  ],
};

function model(hit: StubHit): Reply {
  const prompt = systemPromptOf(hit) ?? '';
  const kind = Object.keys(SCRIPTS).find((k) => prompt.includes(`You are a ${k}`));
  if (kind === undefined) return say('no script');
  const steps = SCRIPTS[kind]!;
  const turn = assistantTurns(hit);
  const results = toolResultsOf(hit).map((r) => r.content);
  return steps[Math.min(turn, steps.length - 1)]!(results);
}

/** A Claude Code agent file with no `tools` key. */
function agentFile(name: string, kind: string, job: string): string {
  return `---\nname: ${name}\ndescription: Use for ${kind} work on the project\nmodel: inherit\n---\n\nYou are a ${kind}. ${job}\n`;
}

const KINDS: { name: string; kind: string; job: string }[] = [
  { name: 'code-reviewer', kind: 'reviewer', job: 'Find bugs in the code and report them with file and line.' },
  { name: 'refactorer', kind: 'refactorer', job: 'Rename unclear identifiers without changing behaviour.' },
  { name: 'debugger', kind: 'debugger', job: 'Make the failing test pass by fixing the code.' },
  { name: 'test-writer', kind: 'test writer', job: 'Write tests for untested code and run them.' },
  { name: 'devops-engineer', kind: 'devops', job: 'Set up continuous integration for the project.' },
  { name: 'researcher', kind: 'researcher', job: 'Search the web and summarise what you find.' },
  { name: 'docs-writer', kind: 'docs writer', job: 'Write the API documentation of the source files.' },
  { name: 'data-analyst', kind: 'data analyst', job: 'Answer questions about the data files.' },
];

function plantProject(dir: string): void {
  for (const d of ['src', 'test', 'data', 'docs']) mkdirSync(join(dir, d), { recursive: true });
  writeFileSync(
    join(dir, 'package.json'),
    '{\n  "name": "demo",\n  "scripts": {\n    "test": "node test/max.test.js"\n  }\n}\n',
  );
  // The reviewer's planted bug: the loop reads one element past the end.
  writeFileSync(
    join(dir, 'src/sum.js'),
    'module.exports = function sum(xs) {\n  let s = 0;\n  for (let i = 0; i <= xs.length; i++) s += xs[i] ?? 0;\n  return s;\n};\n',
  );
  writeFileSync(join(dir, 'src/greet.js'), "function g(n) {\n  return 'Hello, ' + n;\n}\nmodule.exports = g;\n");
  // The debugger's bug: max returns the smaller number.
  writeFileSync(join(dir, 'src/max.js'), 'module.exports = function max(a, b) {\n  return a < b ? a : b;\n};\n');
  writeFileSync(
    join(dir, 'test/max.test.js'),
    "const max = require('../src/max.js');\nif (max(2, 5) !== 5) { console.log('FAIL: max(2, 5) gave ' + max(2, 5) + ' in src/max.js'); process.exit(1); }\nconsole.log('PASS max');\n",
  );
  writeFileSync(join(dir, 'data/sales.csv'), 'month,amount\njan,120\nfeb,80\nmar,200\n');
}

beforeAll(async () => {
  setTestKeys();
  llm = await startLlmStub((hit) => model(hit));
  ws = tempDir('caxton-unlisted-ws-');
  plantProject(ws);
  web = createServer((req, res) => {
    if (req.url?.startsWith('/search')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          results: [{ title: 'Caxton', url: `${base}/caxton.html`, content: 'Agents as configuration.' }],
        }),
      );
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<html><body><h1>Caxton</h1><p>Caxton runs agents written as configuration files.</p></body></html>');
  });
  agentsDir = tempDir('caxton-unlisted-agents-');
  writeFileSync(
    join(agentsDir, 'file-reviewer.md'),
    agentFile('file-reviewer', 'reviewer', 'Find bugs in the code and report them with file and line.'),
  );
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(web.address() as AddressInfo).port}`;
  cx = await startCaxton({
    config: {
      agents_dir: agentsDir,
      llm: { default_provider: 'oai', providers: { oai: openaiProvider(llm.url) } },
      workspace: {
        path: ws,
        write: true,
        bash: { enabled: true, commands: ['ls', 'cat', 'node', 'tail', 'cut', 'awk'] },
      },
      tools: { http_client: { allowed_hosts: ['127.0.0.1'] } },
      web: { search: { kind: 'searxng', url: `${base}/search` } },
    },
  });
}, 60_000);

afterAll(async () => {
  await cx?.close();
  await llm?.close();
  await new Promise<void>((r) => web?.close(() => r()));
  removeTempDirs();
});

async function deploy(text: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${cx.url}/api/v1/agents`, {
    method: 'POST',
    headers: { 'content-type': 'text/markdown' },
    body: text,
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function run(
  name: string,
): Promise<{ content: string; calls: { name: string; is_error: boolean; result: string }[]; offered: string[] }> {
  llm.reset();
  const r = await cx.invoke(name, { request: 'Do your job on this project.' });
  expect(r.status, r.text).toBe(200);
  return {
    content: r.json.content as string,
    calls: r.json.tool_calls as { name: string; is_error: boolean; result: string }[],
    offered: llm.hits[0] ? offeredTools(llm.hits[0]) : [],
  };
}

/** What this server grants an agent that lists no tools, as offered to the model. */
const GRANTED = [
  'workspace_read',
  'workspace_glob',
  'workspace_grep',
  'workspace_ls',
  'workspace_write',
  'workspace_edit',
  'workspace_multi_edit',
  'workspace_bash',
  'web_fetch',
  'web_search',
  'todo_write',
  'team_create',
  'team_delete',
  'team_task_create',
  'team_task_list',
  'team_task_get',
  'team_task_update',
  'send_message',
];

const MEMORY_TOOLS = [
  'create_entities',
  'create_relations',
  'add_observations',
  'delete_entities',
  'delete_observations',
  'delete_relations',
  'read_graph',
  'search_nodes',
  'open_nodes',
];

describe.skipIf(!hasSystem('bwrap'))('Claude Code agents with no tools key, on a granted workspace', () => {
  it('each of the eight kinds is offered the granted toolkit and does its job', async () => {
    for (const k of KINDS) {
      const d = await deploy(agentFile(k.name, k.kind, k.job));
      expect(d.status, JSON.stringify(d.body)).toBe(201);
    }
    const ran: Record<string, Awaited<ReturnType<typeof run>>> = {};
    for (const k of KINDS) {
      ran[k.kind] = await run(k.name);
      // Every granted tool is offered (memory's too: it is on by default), never an MCP or tool server's.
      expect(ran[k.kind]!.offered).toEqual(expect.arrayContaining(GRANTED));
      // Beyond them only the memory tools (on by default): no tool server's or MCP server's.
      expect(ran[k.kind]!.offered.filter((t) => !GRANTED.includes(t)).sort()).toEqual([...MEMORY_TOOLS].sort());
      // No call failed, but the debugger's first run of the failing test (exit code 1, as it should).
      const failed = ran[k.kind]!.calls.filter((c, i) => c.is_error && !(k.kind === 'debugger' && i === 0));
      expect(failed, k.kind).toEqual([]);
    }
    // The reviewer names the planted bug's line, found by Grep.
    expect(ran.reviewer!.content).toMatch(/Bug: off-by-one loop bound at .*src\/sum\.js:3$/);
    // The refactorer's edit is on disk.
    expect(readFileSync(join(ws, 'src/greet.js'), 'utf8')).toBe(
      "function greet(name) {\n  return 'Hello, ' + name;\n}\nmodule.exports = greet;\n",
    );
    expect(ran.refactorer!.content).toBe(`Renamed: Applied 3 edits to ${join(ws, 'src/greet.js')}`);
    // The debugger's test failed first, passes after its fix.
    const dbg = ran.debugger!.calls;
    expect(dbg[0]!.result).toContain('FAIL: max(2, 5) gave 2');
    expect(dbg.at(-1)!.result).toContain('PASS max');
    expect(readFileSync(join(ws, 'src/max.js'), 'utf8')).toContain('return a > b ? a : b;');
    // The test writer's test is on disk and passes (it finds sum's bug not: sum([1,2,3]) is still 6).
    expect(existsSync(join(ws, 'test/sum.test.js'))).toBe(true);
    expect(ran['test writer']!.content).toContain('ok sum');
    // The devops agent's workflow runs the project's own test script.
    expect(readFileSync(join(ws, '.github/workflows/ci.yml'), 'utf8')).toContain('- run: node test/max.test.js');
    expect(ran.devops!.content).toContain('ci.yml');
    // The researcher searched, fetched the page it found and quotes it.
    expect(ran.researcher!.calls.map((c) => c.name)).toEqual(['web.search', 'web.fetch']);
    expect(ran.researcher!.content).toContain('Caxton runs agents written as configuration files');
    // The docs writer's page lists the source files Glob found.
    const api = readFileSync(join(ws, 'docs/API.md'), 'utf8');
    for (const f of ['sum.js', 'greet.js', 'max.js']) expect(api).toContain(`\`${f}\``);
    expect(ran['docs writer']!.content).toBe(`File created successfully at: ${join(ws, 'docs/API.md')}`);
    // The data analyst's total comes from the CSV through the pipeline.
    expect(ran['data analyst']!.content).toBe('Total sales: 400');
  }, 120_000);

  it('agent show and the load log say what such an agent gets; `tools: []` still grants none', async () => {
    const shown = (await (await fetch(`${cx.url}/api/v1/agents/code-reviewer`)).json()) as {
      tools: string[];
      unlisted_tools?: { setting: string; tools: string[] };
    };
    expect(shown.tools).toEqual([]);
    expect(shown.unlisted_tools?.setting).toBe('granted');
    expect(shown.unlisted_tools?.tools).toEqual(
      expect.arrayContaining(['workspace.write', 'workspace.bash', 'web.fetch']),
    );
    // An agents_dir file: one line at its load names what it gets and the setting.
    const said = cx.logs.filter((l) => String(l.msg).startsWith('agent "file-reviewer" lists no tools'));
    expect(said).toHaveLength(1);
    expect(String(said[0]!.msg)).toContain('[agents.claude] unlisted_tools = "granted"');
    expect(String(said[0]!.msg)).toContain('workspace.bash');

    const none = await deploy('---\nname: no-tools\ndescription: Lists none\ntools: []\n---\n\nYou are a reviewer.\n');
    expect(none.status).toBe(201);
    const r = await run('no-tools');
    expect(r.offered).toEqual([]);
    const noneShown = (await (await fetch(`${cx.url}/api/v1/agents/no-tools`)).json()) as Record<string, unknown>;
    expect(noneShown.unlisted_tools).toBeUndefined();

    // disallowedTools still removes what it names from the granted set.
    const ro = await deploy(
      '---\nname: read-only-reviewer\ndescription: Reviews without writing\ndisallowedTools: Write, Edit, MultiEdit, Bash\n---\n\nYou are a reviewer.\n',
    );
    expect(ro.status).toBe(201);
    const rr = await run('read-only-reviewer');
    expect(rr.offered).toContain('workspace_read');
    for (const t of ['workspace_write', 'workspace_edit', 'workspace_multi_edit', 'workspace_bash'])
      expect(rr.offered).not.toContain(t);
  }, 60_000);
});

describe('[agents.claude] unlisted_tools = "none"', () => {
  it('an agent with no tools key gets none, and agent show says which setting decided it', async () => {
    const other = await startCaxton({
      config: {
        agents: { claude: { unlisted_tools: 'none' } },
        llm: { default_provider: 'oai', providers: { oai: openaiProvider(llm.url) } },
        workspace: { path: ws, write: true },
      },
    });
    try {
      const res = await fetch(`${other.url}/api/v1/agents`, {
        method: 'POST',
        headers: { 'content-type': 'text/markdown' },
        body: agentFile('plain-reviewer', 'reviewer', 'Find bugs.'),
      });
      expect(res.status).toBe(201);
      llm.reset();
      const r = await other.invoke('plain-reviewer', { request: 'Review.' });
      expect(r.status).toBe(200);
      expect(offeredTools(llm.hits[0]!)).toEqual([]);
      const shown = (await (await fetch(`${other.url}/api/v1/agents/plain-reviewer`)).json()) as Record<
        string,
        unknown
      >;
      expect(shown.unlisted_tools).toEqual({ setting: 'none', tools: [] });
    } finally {
      await other.close();
    }
  }, 60_000);
});
