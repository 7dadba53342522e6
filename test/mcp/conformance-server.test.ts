/**
 * The MCP conformance suite's server scenarios (@modelcontextprotocol/conformance, a
 * devDependency) against a real Caxton server's POST /mcp, run as a child process. The scenarios
 * Caxton fails must be EXACTLY those docs/mcp.md lists in its "conformance-not-offered" table, so a
 * new failure and an unexpected pass both fail this test (the docs and the test cannot disagree).
 *
 * The suite sends no credentials: authentication is off (loopback, as test/helpers/server.ts does).
 * On Node 20 it runs under scripts/node20-globsync.mjs (0.1.16 imports fs.globSync, Node 22+).
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { binOf, killChildren, repoRoot, run } from './helpers.js';

const CONFORMANCE = binOf('@modelcontextprotocol/conformance');
const SHIM = join(repoRoot, 'scripts/node20-globsync.mjs');
/** The whole run takes about 2 s; this bounds a hung scenario. */
const BUDGET_MS = 120_000;

const conformance = (args: string[], timeoutMs = BUDGET_MS) =>
  run(process.execPath, ['--import', SHIM, CONFORMANCE, ...args], { timeoutMs });

/** The scenario names of docs/mcp.md's "conformance-not-offered" table. */
function notOffered(markdown: string): string[] {
  const start = markdown.indexOf('<!-- conformance-not-offered');
  const end = markdown.indexOf('<!-- end conformance-not-offered -->');
  if (start < 0 || end < start)
    throw new Error(
      'docs/mcp.md has no <!-- conformance-not-offered ... --> ... <!-- end conformance-not-offered --> block',
    );
  const names: string[] = [];
  for (const line of markdown.slice(start, end).split('\n')) {
    const m = /^\|\s*`([a-z0-9-]+)`\s*\|\s*\S/.exec(line);
    if (m) names.push(m[1]!);
  }
  return names;
}

interface Check {
  id: string;
  status: 'SUCCESS' | 'FAILURE' | 'WARNING' | 'INFO' | string;
  errorMessage?: string;
}

const agent = `
name = "assistant"
description = "Answers questions (conformance run)"
capabilities = ["testing"]
tools = ["calculator"]
system_prompt = "You are a helpful assistant."
user_prompt_template = "Answer in a {{parameters.tone}} tone: {{request}}"
[parameters]
tone = "plain"
`;

/**
 * The suite's fixtures (test_simple_text, test://static-text, ...) come from a mounted server that
 * Caxton fronts as a gateway: the scenarios that call them exercise the gateway's pass-through.
 */
const EVERYTHING = join(repoRoot, 'test/mcp/conformance/everything-server.mjs');

const toml = `
[llm]
default_provider = "demo"

[llm.providers.demo]
type = "scripted"
script = "replies.toml"

[mcp_servers.everything]
command = ${JSON.stringify(process.execPath)}
args = [${JSON.stringify(EVERYTHING)}]
gateway = true
`;

let t: TestServer;

beforeAll(async () => {
  const dir = makeTempDir('caxton-mcp-conformance-');
  writeFileSync(join(dir, 'replies.toml'), '[[rules]]\ncontent = "You said: {{request}}"\n');
  // An agent without a description too: prompts/list must still describe every prompt (the suite checks).
  t = await startTestServer({
    dir,
    toml,
    agentFiles: { 'assistant.toml': agent, 'terse.toml': 'name = "terse"\nsystem_prompt = "Be brief."\n' },
  });
  // A finished conversation, so resources/list carries one (the suite checks every listed resource).
  const sent = await fetch(`${t.url}/api/v1/messages?wait=20`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ performative: 'request', receiver: 'assistant', content: 'hello' }),
  });
  if (sent.status !== 200) throw new Error(`the conversation was not answered: ${sent.status} ${await sent.text()}`);
});

afterAll(async () => {
  await t?.close();
  await killChildren();
  removeTempDirs();
});

describe('MCP conformance suite, server scenarios, against POST /mcp', () => {
  it('fails exactly the scenarios docs/mcp.md lists as not offered', { timeout: BUDGET_MS + 30_000 }, async () => {
    const expected = notOffered(readFileSync(join(repoRoot, 'docs/mcp.md'), 'utf8')).sort();
    expect(expected.length).toBeGreaterThan(0);

    const listed = await conformance(['list', '--server'], 30_000);
    expect(listed.code, listed.stderr).toBe(0);
    const all = [...listed.stdout.matchAll(/^\s*-\s+([a-z0-9-]+)\s/gm)].map((m) => m[1]!).sort();
    expect(all.length).toBeGreaterThan(20);
    // A row for a scenario the suite no longer has is stale.
    expect(expected.filter((s) => !all.includes(s))).toEqual([]);

    const out = makeTempDir('caxton-mcp-conformance-results-');
    const t0 = performance.now();
    const res = await conformance(['server', '--url', `${t.url}/mcp`, '--suite', 'all', '-o', out]);
    const seconds = (performance.now() - t0) / 1000;

    // One directory per scenario: server-<scenario>-<ISO time>/checks.json.
    const checks = new Map<string, Check[]>();
    for (const d of readdirSync(out)) {
      const m = /^server-(.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$/.exec(d);
      const file = join(out, d, 'checks.json');
      if (m && existsSync(file)) checks.set(m[1]!, JSON.parse(readFileSync(file, 'utf8')) as Check[]);
    }
    const ran = [...checks.keys()].sort();
    expect(
      ran,
      `scenarios without results (exit ${res.code}):\n${res.stdout.slice(-3000)}\n${res.stderr.slice(-2000)}`,
    ).toEqual(all);

    const failing = ran.filter((s) => checks.get(s)!.some((c) => c.status === 'FAILURE')).sort();
    const passing = ran.filter((s) => !failing.includes(s));
    const warnings = ran.flatMap((s) =>
      checks
        .get(s)!
        .filter((c) => c.status === 'WARNING')
        .map((c) => `${s}: ${c.id}`),
    );
    const why = failing.map((s) => {
      const c = checks.get(s)!.find((x) => x.status === 'FAILURE')!;
      return `  ${s}: ${c.errorMessage ?? c.id}`;
    });
    console.log(
      `MCP conformance (server, ${all.length} scenarios) in ${seconds.toFixed(1)} s: ${passing.length} pass, ${failing.length} fail\n` +
        `  pass: ${passing.join(', ')}\n  warnings: ${warnings.join('; ') || 'none'}`,
    );
    // New failures (a regression, or a scenario to add to the docs' table with its reason), and
    // scenarios that pass although the docs say Caxton fails them (remove their rows).
    expect(
      {
        failingButNotListed: failing.filter((s) => !expected.includes(s)),
        listedButPassing: expected.filter((s) => !failing.includes(s)),
      },
      `the failing scenarios differ from docs/mcp.md's conformance-not-offered table; failures:\n${why.join('\n')}`,
    ).toEqual({ failingButNotListed: [], listedButPassing: [] });
    expect(seconds).toBeLessThan(BUDGET_MS / 1000);
  });
});
