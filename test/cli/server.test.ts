import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertBuilt,
  cleanup,
  expectExit,
  expectNoStackTrace,
  markdownAgent,
  PACKAGE_VERSION,
  parseJson,
  runCli,
  startServe,
  stopServe,
  tempDir,
  tomlAgent,
  type CliResult,
  type ServeProcess,
  waitForOutput,
} from './helpers/cli.js';

interface AgentJson {
  name: string;
  version: string;
  description: string;
  capabilities: string[];
  origin: { kind: string; path?: string };
  revision: number;
  format: string;
  definition?: { system_prompt: string };
}

const config = (baseUrl: string) => `data_dir = "data"
agents_dir = "agents"

[logging]
level = "info"

[llm.providers.openai]
type = "openai"
base_url = "${baseUrl}"
api_key_env = "OPENAI_API_KEY"
model = "gpt-4o-mini"
headers = { Authorization = "Bearer sk-remote-secret" }
`;

function writeProject(dir: string, baseUrl = 'http://127.0.0.1:9/v1'): string {
  writeFileSync(join(dir, 'caxton.toml'), config(baseUrl));
  mkdirSync(join(dir, 'agents'));
  writeFileSync(
    join(dir, 'agents', 'from-file.toml'),
    tomlAgent('from-file', { capabilities: ['filing'], description: 'loaded from agents_dir' }),
  );
  writeFileSync(
    join(dir, 'alpha.toml'),
    tomlAgent('alpha', { capabilities: ['alpha-cap', 'shared-cap'], description: 'first agent' }),
  );
  writeFileSync(
    join(dir, 'alpha-v2.toml'),
    tomlAgent('alpha', {
      capabilities: ['alpha-cap', 'shared-cap'],
      description: 'first agent, second revision',
      extra: 'version = "2.0.0"\n',
    }),
  );
  writeFileSync(join(dir, 'beta.md'), markdownAgent('beta', ['shared-cap']));
  writeFileSync(join(dir, 'gamma.toml'), tomlAgent('gamma', { capabilities: ['gamma-cap'] }));
  // Invalid: capabilities must be an array.
  writeFileSync(
    join(dir, 'broken.toml'),
    'name = "broken"\ndescription = "x"\ncapabilities = "nope"\nsystem_prompt = "hi"\n',
  );
  // Same name as the agent defined by the file in agents/.
  writeFileSync(join(dir, 'shadow.toml'), tomlAgent('from-file'));
  return join(dir, 'caxton.toml');
}

describe('caxton serve + the agent, status, health and config commands', () => {
  let dir: string;
  let serve: ServeProcess;
  let provider: Server;
  const cli = (...args: string[]): Promise<CliResult> => runCli(['--server', serve.url, ...args], { cwd: dir });

  beforeAll(async () => {
    assertBuilt();
    dir = tempDir('caxton-serve-');
    // The provider answers connections and its key is in the server's environment: the server is
    // healthy, not degraded (no test here runs a model).
    provider = createServer((_req, res) => res.writeHead(503).end());
    await new Promise<void>((r) => provider.listen(0, '127.0.0.1', r));
    const file = writeProject(dir, `http://127.0.0.1:${(provider.address() as AddressInfo).port}/v1`);
    serve = await startServe({ cwd: dir, args: ['--config', file], env: { OPENAI_API_KEY: 'sk-test-key' } });
  });
  afterAll(async () => {
    await cleanup();
    provider.close();
  });

  it('serve announces its URL on stderr and loads the agents_dir file', async () => {
    const stderr = await waitForOutput(serve, 'stderr', /caxton listening on .*\n/);
    expect(stderr).toContain(
      `caxton listening on ${serve.url} (metrics http://127.0.0.1:${serve.metricsPort}/metrics); 1 agents loaded; web console ${serve.url}/ui.`,
    );
    expect(await waitForOutput(serve, 'stdout', /"msg":"caxton ready"/)).toMatch(
      /"agents":1,.*"files":1,"invalid_files":0/,
    );
  });

  it('agent deploy creates an agent (exit 0, "deployed NAME"), deploying again updates it to revision 2', async () => {
    const first = await cli('agent', 'deploy', 'alpha.toml');
    expectExit(first, 0);
    expect(first.stdout).toMatch(/^deployed alpha \(revision 1, version 1\) from alpha\.toml$/m);

    const second = await cli('agent', 'deploy', 'alpha-v2.toml');
    expectExit(second, 0);
    expect(second.stdout).toMatch(/^updated\s+alpha \(revision 2, version 2\) from alpha-v2\.toml$/m);

    const show = await cli('--json', 'agent', 'show', 'alpha');
    expectExit(show, 0);
    expect(parseJson<AgentJson>(show)).toMatchObject({
      name: 'alpha',
      version: '2.0.0',
      revision: 2,
      description: 'first agent, second revision',
    });
  });

  it('agent deploy --no-update refuses to update an existing agent (exit 1)', async () => {
    const r = await cli('agent', 'deploy', '--no-update', 'alpha.toml');
    expectExit(r, 1);
    expect(r.stderr).toMatch(/failed\s+alpha\.toml: an agent named "alpha" is already deployed/);
  });

  it('deploying several files with one invalid exits 1, reports the invalid one with file:line:column and deploys the rest', async () => {
    const r = await cli('agent', 'deploy', 'beta.md', 'broken.toml', 'gamma.toml');
    expectExit(r, 1);
    expect(r.stdout).toMatch(/^deployed beta \(revision 1, version 1\) from beta\.md$/m);
    expect(r.stdout).toMatch(/^deployed gamma \(revision 1, version 1\) from gamma\.toml$/m);
    expect(r.stdout).toMatch(/2 deployed, 1 failed/);
    expect(r.stderr).toMatch(/failed\s+broken\.toml: /);
    expect(r.stderr).toMatch(/broken\.toml:3:1: error: .*\[capabilities\]/);
    expect(r.stdout + r.stderr).not.toMatch(/deployed broken/);
    expectNoStackTrace(r);

    const list = parseJson<{ agents: AgentJson[] }>(await cli('--json', 'agent', 'list'));
    expect(list.agents.map((a) => a.name).sort()).toEqual(['alpha', 'beta', 'from-file', 'gamma']);
  });

  it('agent deploy --json reports per-file results', async () => {
    const r = await cli('--json', 'agent', 'deploy', 'gamma.toml', 'broken.toml');
    expectExit(r, 1);
    const body = parseJson<{
      deployed: number;
      failed: number;
      results: { file: string; ok: boolean; action?: string; revision?: number; error?: { code: string } }[];
    }>(r);
    expect(body).toMatchObject({ deployed: 1, failed: 1 });
    // gamma.toml was deployed as it is by an earlier test: identical content is a no-op.
    expect(body.results[0]).toMatchObject({
      file: 'gamma.toml',
      ok: true,
      action: 'unchanged',
      revision: 1,
      version: 1,
    });
    expect(body.results[1]).toMatchObject({ file: 'broken.toml', ok: false, error: { code: 'invalid_agent' } });
  });

  it('agent deploy of a name owned by an agents_dir file fails and names the file', async () => {
    const r = await cli('agent', 'deploy', 'shadow.toml');
    expectExit(r, 1);
    expect(r.stderr).toMatch(/failed\s+shadow\.toml: .*from-file\.toml/);
  });

  it('agent deploy of a missing file exits 1 with a clear message', async () => {
    const r = await cli('agent', 'deploy', 'nowhere.toml');
    expectExit(r, 1);
    expect(r.stderr).toMatch(/cannot read nowhere\.toml: no such file/);
    expectNoStackTrace(r);
  });

  it('agent list prints a table with every agent, its capabilities and its source', async () => {
    const r = await cli('agent', 'list');
    expectExit(r, 0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+VERSION\s+CAPABILITIES\s+SOURCE\s+DESCRIPTION$/);
    const row = (name: string) => lines.find((l) => l.startsWith(`${name} `));
    expect(row('alpha')).toMatch(/^alpha\s+2\.0\.0\s+alpha-cap,shared-cap\s+api\s+first agent, second revision$/);
    expect(row('beta')).toMatch(/\bshared-cap\s+api\b/);
    expect(row('from-file')).toMatch(/\bfiling\s+file\s+loaded from agents_dir$/);
    expect(row('gamma')).toBeDefined();
    expect(lines.length).toBe(5);
  });

  it('agent list --capability X --json lists exactly the agents providing X', async () => {
    const [shared, gamma, none] = await Promise.all([
      cli('agent', 'list', '--capability', 'shared-cap', '--json'),
      cli('--json', 'agent', 'list', '-c', 'gamma-cap'),
      cli('agent', 'list', '--capability', 'nobody-has-this'),
    ]);
    expectExit(shared, 0);
    const s = parseJson<{ agents: AgentJson[]; total: number }>(shared);
    expect(s.agents.map((a) => a.name).sort()).toEqual(['alpha', 'beta']);
    expect(s.total).toBe(2);
    expect(parseJson<{ agents: AgentJson[] }>(gamma).agents.map((a) => a.name)).toEqual(['gamma']);
    expectExit(none, 0);
    expect(none.stdout).toMatch(/no agent provides "nobody-has-this"/);
  });

  it('agent show NAME prints the agent in full (text and --json)', async () => {
    const [text, json] = await Promise.all([cli('agent', 'show', 'beta'), cli('--json', 'agent', 'show', 'beta')]);
    expectExit(text, 0);
    expect(text.stdout).toMatch(/^name:\s+beta$/m);
    expect(text.stdout).toMatch(/^capabilities:\s+shared-cap$/m);
    expect(text.stdout).toMatch(/^source:\s+api \(markdown, revision 1, /m);
    expect(text.stdout).toMatch(/^system prompt:\n\s+You are beta, written in Markdown\./m);
    expectExit(json, 0);
    const a = parseJson<AgentJson>(json);
    expect(a).toMatchObject({
      name: 'beta',
      format: 'markdown',
      capabilities: ['shared-cap'],
      origin: { kind: 'api' },
      revision: 1,
    });
    expect(a.definition?.system_prompt).toContain('You are beta');
  });

  it('agent show marks the tools this server does not offer', async () => {
    writeFileSync(
      join(dir, 'claudish.md'),
      '---\nname: claudish\ndescription: d\ntools: mcp__github, Agent\n---\nHi.\n',
    );
    expectExit(await cli('agent', 'deploy', 'claudish.md'), 0);
    const [text, json] = await Promise.all([
      cli('agent', 'show', 'claudish'),
      cli('--json', 'agent', 'show', 'claudish'),
    ]);
    expectExit(text, 0);
    expect(text.stdout).toMatch(/^tools:\s+github\.\* \(unresolved\), send_message$/m);
    expect(text.stdout).toMatch(
      /^\s+unresolved github\.\*: the tool "github\.\*" is not offered .*\[mcp_servers\.github\]/m,
    );
    expect(parseJson<{ unresolved_tools: { tool: string }[] }>(json).unresolved_tools.map((u) => u.tool)).toEqual([
      'github.*',
    ]);
    expectExit(await cli('agent', 'remove', 'claudish'), 0);
  });

  it('agent deploy warns of a Claude Code tool with no counterpart, and agent show names it', async () => {
    writeFileSync(
      join(dir, 'teamish.md'),
      '---\nname: teamish\ndescription: d\ntools: TaskCreate, TaskList, ExitPlanMode\n---\nHi.\n',
    );
    const deployed = await cli('agent', 'deploy', 'teamish.md');
    expectExit(deployed, 0);
    expect(deployed.stderr).toContain('"ExitPlanMode" is a Claude Code tool with no Caxton counterpart');
    const text = await cli('agent', 'show', 'teamish');
    expectExit(text, 0);
    expect(text.stdout).toMatch(/^tools:\s+team\.task_create, team\.task_list$/m);
    expect(text.stdout).toMatch(/^\s+not offered \(Claude Code tools with no Caxton counterpart\): ExitPlanMode$/m);
    expectExit(await cli('agent', 'remove', 'teamish'), 0);
  });

  it('agent show of an unknown agent exits 1 ("no agent named"), as text and as a JSON error', async () => {
    const [text, json] = await Promise.all([cli('agent', 'show', 'nobody'), cli('--json', 'agent', 'show', 'nobody')]);
    expectExit(text, 1);
    expect(text.stderr).toMatch(/error: no agent named "nobody"/);
    expectNoStackTrace(text);
    expectExit(json, 1);
    expect(parseJson<{ error: { code: string } }>(json).error.code).toBe('agent_not_found');
  });

  it('agent remove NAME exits 0, then agent show NAME exits 1 with "no agent named"', async () => {
    await cli('agent', 'deploy', 'alpha.toml').then((r) => expectExit(r, 0));
    const rm = await cli('agent', 'remove', 'alpha');
    expectExit(rm, 0);
    expect(rm.stdout).toMatch(/^removed alpha$/m);
    const show = await cli('agent', 'show', 'alpha');
    expectExit(show, 1);
    expect(show.stderr).toContain('no agent named "alpha"');
    const again = await cli('agent', 'rm', 'alpha');
    expectExit(again, 1);
    expect(again.stderr).toContain('no agent named "alpha"');
  });

  it('agent remove of a file-defined agent exits 1 and says to delete the file', async () => {
    const r = await cli('agent', 'remove', 'from-file');
    expectExit(r, 1);
    expect(r.stderr).toMatch(/from-file\.toml/);
    expect((await cli('agent', 'show', 'from-file')).code).toBe(0);
  });

  it('status prints a summary; status --json parses', async () => {
    const [text, json] = await Promise.all([cli('status'), cli('--json', 'status')]);
    expectExit(text, 0);
    expect(text.stdout).toMatch(
      new RegExp(
        `^server\\s+${serve.url.replace(/[.]/g, '\\.')} \\(caxton ${PACKAGE_VERSION.replace(/[.]/g, '\\.')}, up \\d+s, ready\\)$`,
        'm',
      ),
    );
    expect(text.stdout).toMatch(/^agents\s+\d+ \(1 from files, \d+ via API\)/m);
    expect(text.stdout).toMatch(/^config\s+.*caxton\.toml$/m);
    expectExit(json, 0);
    const s = parseJson<{
      version: string;
      ready: boolean;
      agents: { total: number; from_files: number; from_api: number };
      config: { file: string };
    }>(json);
    expect(s.version).toBe(PACKAGE_VERSION);
    expect(s.ready).toBe(true);
    expect(s.agents.from_files).toBe(1);
    expect(s.agents.total).toBe(s.agents.from_files + s.agents.from_api);
    expect(s.config.file).toBe(join(dir, 'caxton.toml'));
  });

  it('status --cluster on a node without [cluster] lists itself; --json parses', async () => {
    const [text, json] = await Promise.all([cli('status', '--cluster'), cli('--json', 'status', '--cluster')]);
    expectExit(text, 0);
    expect(text.stdout).toMatch(/^not clustered \(no \[cluster\] in caxton\.toml\): \S+ only$/m);
    expect(text.stdout).toMatch(
      /^NODE\s+STATE\s+HEARTBEAT\s+QUEUED\s+RUNNING\s+CONVERSATIONS\s+DIRECTORY LAG\s+VERSION\s+URL$/m,
    );
    expectExit(json, 0);
    const c = parseJson<{
      clustered: boolean;
      node: string;
      nodes: { node: string; state: string; self: boolean; version: string; load: Record<string, number> }[];
    }>(json);
    expect(c.clustered).toBe(false);
    expect(c.nodes).toHaveLength(1);
    expect(c.nodes[0]).toMatchObject({ node: c.node, state: 'up', self: true, version: PACKAGE_VERSION });
    expect(Object.keys(c.nodes[0]!.load).sort()).toEqual(['dead_letters', 'open_conversations', 'queued', 'running']);
  });

  it('health exits 0 and says healthy', async () => {
    const r = await cli('health');
    expectExit(r, 0);
    expect(r.stdout).toContain(`${serve.url}: healthy`);
  });

  it('config show --remote --json shows the running configuration with secrets redacted', async () => {
    const r = await cli('--json', 'config', 'show', '--remote');
    expectExit(r, 0);
    expect(r.stdout).not.toContain('sk-remote-secret');
    const c = parseJson<{
      server: { port: number };
      metrics: { port: number };
      llm: { providers: Record<string, { api_key_env?: string; headers?: Record<string, string> }> };
    }>(r);
    expect(c.server.port).toBe(serve.port);
    expect(c.metrics.port).toBe(serve.metricsPort);
    expect(c.llm.providers.openai).toMatchObject({ api_key_env: 'OPENAI_API_KEY', headers: { Authorization: '***' } });
  });

  it('$CAXTON_SERVER_URL points the CLI at the server when --server is absent', async () => {
    const r = await runCli(['--json', 'agent', 'list', '-c', 'filing'], {
      cwd: dir,
      env: { CAXTON_SERVER_URL: serve.url },
    });
    expectExit(r, 0);
    expect(parseJson<{ agents: AgentJson[] }>(r).agents.map((a) => a.name)).toEqual(['from-file']);
  });

  it('--server wins over $CAXTON_SERVER_URL', async () => {
    const r = await runCli(['--server', serve.url, 'health'], {
      cwd: dir,
      env: { CAXTON_SERVER_URL: 'http://127.0.0.1:1' },
    });
    expectExit(r, 0);
  });
});

describe('caxton serve: graceful shutdown and restart on the same data dir', () => {
  let dir: string;
  let config: string;
  afterAll(cleanup);

  beforeAll(() => {
    assertBuilt();
    dir = tempDir('caxton-lifecycle-');
    config = writeProject(dir);
  });

  it('SIGTERM: serve exits 0 within a few seconds, after logging "caxton stopped"; a restart still lists the API-deployed agent', async () => {
    const first = await startServe({ cwd: dir, args: ['--config', config] });
    expectExit(await runCli(['--server', first.url, 'agent', 'deploy', 'gamma.toml'], { cwd: dir }), 0);

    const stopped = await stopServe(first, 'SIGTERM');
    expect(stopped, first.stderr()).toMatchObject({ code: 0, signal: null });
    expect(stopped.ms).toBeLessThan(5000);
    expect(first.stdout()).toMatch(/"signal":"SIGTERM".*shutting down/);
    expect(first.stdout()).toMatch(/"msg":"caxton stopped"/);
    expect(first.stderr()).not.toMatch(/error/i);

    // The API port is released.
    await expect(fetch(`${first.url}/health`)).rejects.toThrow();

    const second = await startServe({ cwd: dir, args: ['--config', config] });
    const list = await runCli(['--server', second.url, 'agent', 'list'], { cwd: dir });
    expectExit(list, 0);
    expect(list.stdout).toMatch(/^gamma\s+1\.0\.0\s+gamma-cap\s+api\b/m);
    expect(list.stdout).toMatch(/^from-file\s/m);

    // SIGINT (Ctrl-C) shuts down just as gracefully.
    const sigint = await stopServe(second, 'SIGINT');
    expect(sigint, second.stderr()).toMatchObject({ code: 0, signal: null });
    expect(second.stdout()).toMatch(/"signal":"SIGINT".*shutting down/);
    expect(second.stdout()).toMatch(/"msg":"caxton stopped"/);
  });
});

describe('caxton agent run, and a request in flight during shutdown', () => {
  let dir: string;
  let serve: ServeProcess;
  afterAll(cleanup);

  beforeAll(async () => {
    assertBuilt();
    const root = tempDir('caxton-run-');
    dir = join(root, 'proj');
    expectExit(await runCli(['init', dir], { cwd: root }), 0);
    // A slow rule ahead of the template's rules: its reply takes 2.5 s, long enough to shut down during it.
    const replies = join(dir, 'replies.toml');
    const slow =
      '[[rules]]\nname = "slow"\nmatch = "^slow"\nlatency_ms = 2500\ncontent = "Slow answer to: {{request}}"\n\n[[rules]]';
    writeFileSync(replies, readFileSync(replies, 'utf8').replace('[[rules]]', slow));
    serve = await startServe({ cwd: root, args: ['--config', join(dir, 'caxton.toml')] });
  });

  it('agent run prints the answer of the scripted model, with the tool call on stderr', async () => {
    const r = await runCli(['--server', serve.url, 'agent', 'run', 'assistant', 'What is 6 * 7?'], { cwd: dir });
    expectExit(r, 0);
    expect(r.stdout.trim()).toBe('The answer is 42.');
    expect(r.stderr).toMatch(/\[tool calculator .* -> 42\]/);
    expect(r.stderr).toMatch(/\(demo\/scripted, \d+ tokens, \d+ ms, stop\)/);
  });

  it('agent run --stream prints the answer as it streams, the tool call on stderr', async () => {
    const r = await runCli(['--server', serve.url, 'agent', 'run', 'assistant', 'What is 6 * 7?', '--stream'], {
      cwd: dir,
    });
    expectExit(r, 0);
    expect(r.stdout.trim()).toBe('The answer is 42.');
    expect(r.stderr).toMatch(/\[tool calculator /);
    const json = await runCli(
      ['--server', serve.url, 'agent', 'run', 'assistant', 'What is 6 * 7?', '--stream', '--json'],
      { cwd: dir },
    );
    expectExit(json, 0);
    expect(JSON.parse(json.stdout)).toMatchObject({ content: 'The answer is 42.', finish_reason: 'stop' });
    const unknown = await runCli(['--server', serve.url, 'agent', 'run', 'nobody', 'hi', '--stream'], { cwd: dir });
    expectExit(unknown, 1);
    expect(unknown.stderr).toContain('no agent named "nobody"');
    expectNoStackTrace(unknown);
  });

  it('agent run of an unknown agent exits 1 with "no agent named"', async () => {
    const r = await runCli(['--server', serve.url, 'agent', 'run', 'nobody', 'hi'], { cwd: dir });
    expectExit(r, 1);
    expect(r.stderr).toContain('no agent named "nobody"');
    expectNoStackTrace(r);
  });

  it('SIGTERM lets a request in flight finish, then exits 0', async () => {
    const t0 = Date.now();
    const key = readFileSync(join(dir, 'data', 'admin.key'), 'utf8').trim();
    const inFlight = fetch(`${serve.url}/api/v1/agents/assistant/invoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ request: 'slow one' }),
    }).then(async (res) => ({
      status: res.status,
      body: (await res.json()) as { content: string },
      ms: Date.now() - t0,
    }));
    await new Promise((r) => setTimeout(r, 500));
    const stopped = await stopServe(serve, 'SIGTERM', 10_000);
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(res.body.content).toBe('Slow answer to: slow one');
    expect(res.ms).toBeGreaterThanOrEqual(2400);
    expect(stopped, serve.stderr()).toMatchObject({ code: 0, signal: null });
    // The server waited for the reply before exiting.
    expect(stopped.ms).toBeGreaterThanOrEqual(1500);
    expect(serve.stdout()).toMatch(/"msg":"caxton stopped"/);
  });
});
