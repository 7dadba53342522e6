/**
 * `caxton agent run` of an agent whose tools are a WebAssembly tool server's and a mounted stdio
 * MCP server's (`csv_parser.*`, `mini.*`) completes its tool loop against an OpenAI-type and an
 * Anthropic-type provider that refuse what the real APIs refuse: the model is offered names the
 * API accepts, calls them by those names, and Caxton runs the tools under its own names.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLlmStub, type LlmStub, type Reply, type StubHit } from '../execution/helpers/llm-stub.js';
import {
  assertBuilt,
  cleanup,
  expectExit,
  repoRoot,
  runCli,
  startServe,
  tempDir,
  type ServeProcess,
} from './helpers/cli.js';

const API_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const CSV = 'fruit,qty\napple,3\npear,5';
const KEYS = { OPENAI_KEY_FOR_TEST: 'sk-wire-openai', ANTHROPIC_KEY_FOR_TEST: 'sk-ant-wire' };

/** The tools a request offered, as `{wire name, description}`, in either API's shape. */
function offered(hit: StubHit): { name: string; description: string }[] {
  const tools = (hit.body.tools ?? []) as {
    name?: string;
    description?: string;
    function?: { name: string; description?: string };
  }[];
  return tools.map((t) =>
    hit.api === 'openai'
      ? { name: t.function!.name, description: t.function!.description ?? '' }
      : { name: t.name!, description: t.description ?? '' },
  );
}

/** The tool results the request carries, in order, in either API's shape. */
function results(hit: StubHit): string[] {
  const messages = hit.body.messages as { role: string; content: unknown }[];
  if (hit.api === 'openai') return messages.filter((m) => m.role === 'tool').map((m) => String(m.content));
  return messages.flatMap((m) =>
    Array.isArray(m.content)
      ? (m.content as { type: string; content?: unknown }[])
          .filter((b) => b.type === 'tool_result')
          .map((b) => String(b.content))
      : [],
  );
}

/** A model that parses the CSV, counts the words of its first fruit, then answers with both results. */
function model(hit: StubHit): Reply {
  const tools = offered(hit);
  for (const t of tools) expect(t.name).toMatch(API_NAME);
  const pick = (description: RegExp) => tools.find((t) => description.test(t.description))!.name;
  const done = results(hit);
  if (done.length === 0)
    return { tool_calls: [{ id: 'call_csv', name: pick(/^Parse CSV/), arguments: { text: CSV } }] };
  if (done.length === 1) {
    const rows = (JSON.parse(done[0]!) as { rows: { fruit: string }[] }).rows;
    return {
      tool_calls: [
        {
          id: 'call_words',
          name: pick(/^Counts the words/),
          arguments: { text: `${rows[0]!.fruit} and ${rows[1]!.fruit}` },
        },
      ],
    };
  }
  return {
    content: `Parsed ${(JSON.parse(done[0]!) as { row_count: number }).row_count} rows; the first two fruits make ${done[1]}.`,
  };
}

let stub: LlmStub;
let serve: ServeProcess;
let dir: string;

beforeAll(async () => {
  assertBuilt();
  stub = await startLlmStub((hit) => model(hit));
  dir = tempDir('caxton-wire-');
  writeFileSync(
    join(dir, 'caxton.toml'),
    [
      'data_dir = "data"',
      'agents_dir = "agents"',
      '[logging]',
      'level = "warn"',
      '[llm]',
      'default_provider = "openai"',
      '[llm.providers.openai]',
      'type = "openai"',
      `base_url = "${stub.url}/v1"`,
      'api_key_env = "OPENAI_KEY_FOR_TEST"',
      'model = "gpt-4o-mini"',
      '[llm.providers.anthropic]',
      'type = "anthropic"',
      `base_url = "${stub.url}"`,
      'api_key_env = "ANTHROPIC_KEY_FOR_TEST"',
      'model = "claude-sonnet-4-5"',
      '[mcp_servers.mini]',
      `command = "${process.execPath}"`,
      `args = [${JSON.stringify(join(repoRoot, 'test/mcp/fixtures/mini-server.mjs'))}]`,
      `cwd = ${JSON.stringify(repoRoot)}`,
    ].join('\n'),
  );
  const agents = join(dir, 'agents');
  mkdirSync(agents);
  for (const provider of ['openai', 'anthropic']) {
    writeFileSync(
      join(agents, `fruit-${provider}.toml`),
      [
        `name = "fruit-${provider}"`,
        'description = "Counts fruit"',
        'tools = ["csv_parser.*", "mini.*"]',
        "system_prompt = 'You count fruit with your tools.'",
        '[llm]',
        `provider = "${provider}"`,
      ].join('\n'),
    );
  }
  serve = await startServe({ cwd: dir, args: ['--config', join(dir, 'caxton.toml')], env: KEYS });
}, 60_000);

afterAll(async () => {
  await cleanup();
  await stub?.close();
});

describe.each(['openai', 'anthropic'])('caxton agent run against a strict %s-type provider', (provider) => {
  it('runs csv_parser.parse and mini.count.words and answers with their results', async () => {
    stub.reset();
    const r = await runCli(['--server', serve.url, 'agent', 'run', `fruit-${provider}`, 'How many fruits?'], {
      cwd: dir,
      env: KEYS,
      timeoutMs: 30_000,
    });
    expectExit(r, 0);
    expect(r.stdout.trim()).toBe('Parsed 2 rows; the first two fruits make 3 words.');
    // What a person sees keeps Caxton's names.
    expect(r.stderr).toMatch(/\[tool csv_parser\.parse /);
    expect(r.stderr).toMatch(/\[tool mini\.count\.words /);
    expect(stub.hits).toHaveLength(3);
    for (const hit of stub.hits) expect(hit.api).toBe(provider);
    const names = offered(stub.hits[0]!).map((t) => t.name);
    expect(names).toEqual(
      expect.arrayContaining(['csv_parser_parse', 'mini_count_words', 'mini_get-length', 'mini_shout']),
    );
  });
});
