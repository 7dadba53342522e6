/**
 * `caxton status`, `caxton logs` and `caxton events`: the real CLI (dist/cli/main.js) as a child
 * process against a real server.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openaiProvider, removeTempDirs, setTestKeys } from '../execution/helpers/caxton.js';
import { startLlmStub, type LlmStub } from '../execution/helpers/llm-stub.js';
import { assertBuilt, cleanEnv, cleanup, CLI, expectExit, parseJson, runCli, tempDir } from '../cli/helpers/cli.js';
import { startObserved, type Observed } from './helpers/observed.js';

let stub: LlmStub;
let cx: Observed;
let cwd: string;
const cli = (...args: string[]) => runCli(['--server', cx.url, ...args], { cwd });

beforeAll(async () => {
  assertBuilt();
  setTestKeys();
  cwd = tempDir();
  stub = await startLlmStub(() => ({ content: 'ok', usage: { input: 5, output: 3 } }));
  cx = await startObserved({
    config: { llm: { default_provider: 'stub', providers: { stub: openaiProvider(stub.url) } } },
    agents: [{ name: 'cli-agent', capabilities: ['cli-cap'] }],
  });
  for (let i = 0; i < 3; i++)
    expect(
      (
        await cx.send('POST', '/api/v1/agents/cli-agent/invoke', JSON.stringify({ request: `q${i}` }), {
          'content-type': 'application/json',
        })
      ).status,
    ).toBe(200);
});

afterAll(async () => {
  await cleanup();
  await cx?.close();
  await stub?.close();
  removeTempDirs();
});

describe('caxton status', () => {
  it('prints the live overview as a table, and as JSON', async () => {
    const [text, json] = await Promise.all([cli('status'), cli('--json', 'status', '--window', '30s')]);
    expectExit(text, 0);
    expect(text.stdout).toMatch(/^server\s+http:\/\/127\.0\.0\.1:\d+ \(caxton \S+, up \d+s, ready\)$/m);
    expect(text.stdout).toMatch(/^agents\s+1 \(0 from files, 1 via API\)/m);
    expect(text.stdout).toMatch(/^executions\s+\d+\.\d\d\/s {2}\(3 total, 0 failed; error rate 0\.0%\)$/m);
    expect(text.stdout).toMatch(/^messages\s+\d+\.\d\d\/s/m);
    expect(text.stdout).toMatch(/^queue\s+0 \(0 queued, 0 running, 0 retrying; at most \d+\), 0 open conversations$/m);
    expect(text.stdout).toMatch(/^dead letters\s+0$/m);
    expect(text.stdout).toMatch(/^tool servers\s+\d+ \(\d+ loaded, \d+ failed\)/m);
    expectExit(json, 0);
    const s = parseJson<{
      ready: boolean;
      agents: { total: number };
      totals: { executions: number };
      rates: { executions_per_second: number; window_seconds: number };
    }>(json);
    expect(s.ready).toBe(true);
    expect(s.agents.total).toBe(1);
    expect(s.totals.executions).toBe(3);
    expect(s.rates.executions_per_second).toBeGreaterThan(0);
  });

  it('--watch refreshes (one JSON line per refresh with --json); bad --interval is a usage error', async () => {
    const r = await cli('--json', 'status', '--watch', '--interval', '300ms', '--count', '3');
    expectExit(r, 0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    const times = lines.map((l) => (JSON.parse(l) as { time: string }).time);
    expect(new Set(times).size).toBe(3);
    const text = await cli('status', '--watch', '--interval', '200ms', '--count', '2');
    expectExit(text, 0);
    expect(text.stdout.match(/^server\s/gm)).toHaveLength(2);
    const bad = await cli('status', '--watch', '--interval', 'often');
    expectExit(bad, 2);
    expect(bad.stderr).toContain('--interval expects a duration');
  });
});

describe('caxton logs', () => {
  it('prints recent lines, filtered by level and agent; --json parses', async () => {
    cx.server.logger.warn({ agent: 'cli-agent' }, 'watch out');
    const r = await cli('logs', '--level', 'warn', '--agent', 'cli-agent');
    expectExit(r, 0);
    expect(r.stdout).toMatch(/^\S+Z WARN {2}watch out {2}agent=cli-agent$/m);
    const j = await cli('--json', 'logs', '--limit', '5');
    expectExit(j, 0);
    const body = parseJson<{ logs: { msg: string }[]; count: number }>(j);
    expect(body.count).toBeLessThanOrEqual(5);
    expect(body.logs.length).toBe(body.count);
  });

  it('a bad --level is a usage error (exit 2)', async () => {
    const r = await cli('logs', '--level', 'loud');
    expectExit(r, 2);
    expect(r.stderr).toContain('--level expects one of trace, debug, info, warn, error, fatal');
  });

  it('--follow prints new lines until interrupted', async () => {
    const child = spawn(
      process.execPath,
      [CLI, '--server', cx.url, 'logs', '--follow', '--level', 'error', '--limit', '1'],
      { cwd, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    // Keep logging until the follower has printed one (it may connect after the first ones).
    const deadline = Date.now() + 10_000;
    while (!out.includes('followed error') && Date.now() < deadline) {
      cx.server.logger.error({ agent: 'cli-agent' }, 'followed error');
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(out).toMatch(/ERROR followed error {2}agent=cli-agent/);
    child.kill('SIGINT');
    expect(await exited).toBe(0);
  });
});

describe('caxton events', () => {
  it('prints lifecycle and performance events; a bad --type is a usage error', async () => {
    const r = await cli('events', '--agent', 'cli-agent');
    expectExit(r, 0);
    expect(r.stdout).toMatch(/agent\.deployed\s+cli-agent\s+- → deployed \(revision 1\) \(deployed through the API\)/);
    expect(r.stdout).toMatch(/execution\.finished\s+cli-agent\s+ok in [\d.]+ ms, tokens 5 in \/ 3 out, 0 tool calls/);
    const j = await cli('--json', 'events', '--type', 'performance', '--limit', '2');
    expectExit(j, 0);
    expect(parseJson<{ events: { type: string }[] }>(j).events.map((e) => e.type)).toEqual([
      'execution.finished',
      'execution.finished',
    ]);
    const bad = await cli('events', '--type', 'agent.exploded');
    expectExit(bad, 2);
    expect(bad.stderr).toContain('unknown event type "agent.exploded"');
  });
});
