/**
 * `caxton mcp`: Caxton as an MCP server on stdio, run as a real child process
 * (`node dist/cli/main.js mcp --config ...`) and driven by the official SDK client.
 * Needs `npm run build` first (`npm test` runs it).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import {
  LoggingMessageNotificationSchema,
  ToolListChangedNotificationSchema,
  type LoggingMessageNotification,
} from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';
import { caxtonToml, CLI, INSPECTOR, killChildren, run, writeFixture } from './helpers.js';

const agent = `
name = "helper"
description = "MCP stdio test agent"
capabilities = ["testing"]
tools = ["everything.*"]
system_prompt = "You are helper."
`;

let client: Client;
let transport: StdioClientTransport;
let stderr = '';
let configPath = '';
let agentsDir = '';
const logs: LoggingMessageNotification['params'][] = [];
let toolListChanges = 0;

beforeAll(async () => {
  const help = spawnSync(process.execPath, [CLI, 'mcp', '--help'], { encoding: 'utf8' });
  if (help.status !== 0) {
    throw new Error(
      `\`caxton mcp\` is not available in ${CLI} (exit ${help.status}): run npm run build, and register the command in src/cli/main.ts with registerMcpCommand(program)\n${help.stderr}`,
    );
  }
  const dir = makeTempDir('caxton-mcp-stdio-');
  writeFixture(dir);
  configPath = join(dir, 'caxton.toml');
  writeFileSync(configPath, caxtonToml());
  agentsDir = join(dir, 'agents');
  mkdirSync(agentsDir);
  writeFileSync(join(agentsDir, 'helper.toml'), agent);
  transport = new StdioClientTransport({
    command: process.execPath,
    args: [CLI, 'mcp', '--config', configPath, '--log-level', 'info'],
    env: { HOME: dir },
    stderr: 'pipe',
    cwd: dir,
  });
  transport.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  client = new Client({ name: 'vitest-stdio', version: '1.0.0' });
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.push(n.params));
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => void toolListChanges++);
  await client.connect(transport);
});

afterAll(async () => {
  await client?.close();
  await killChildren();
  removeTempDirs();
});

describe('caxton mcp (stdio)', () => {
  it('lists tools and agents', async () => {
    const names = (await client.listTools()).tools.map((t) => t.name);
    expect(names).toEqual(
      expect.arrayContaining(['calculator', 'current_time', 'send_message', 'everything.echo', 'ask_helper']),
    );
    expect(client.getServerVersion()?.name).toBe('caxton');
  });

  it('calls a built-in and asks an agent (which calls a mounted MCP tool)', async () => {
    expect(await client.callTool({ name: 'calculator', arguments: { expression: '2 ^ 10' } })).toMatchObject({
      content: [{ text: '1024' }],
    });
    expect(await client.callTool({ name: 'ask_helper', arguments: { request: 'echo over stdio' } })).toMatchObject({
      content: [{ text: 'The tool said: Echo: echo over stdio' }],
    });
  });

  it('advertises listChanged (it is delivered here) and logging; prompts and resources answer', async () => {
    expect(client.getServerCapabilities()).toMatchObject({
      tools: { listChanged: true },
      prompts: { listChanged: true },
      resources: { listChanged: true },
      logging: {},
    });
    expect((await client.listPrompts()).prompts.map((p) => p.name)).toEqual(['helper']);
    expect((await client.getPrompt({ name: 'helper', arguments: { request: 'hi' } })).messages[0]).toEqual({
      role: 'user',
      content: { type: 'text', text: 'You are helper.' },
    });
    expect((await client.listResources()).resources.map((r) => r.uri)).toEqual(['caxton://agents/helper']);
    // No principal over stdio: every template, and a read of any memory scope (here: nothing stored).
    expect((await client.listResourceTemplates()).resourceTemplates.map((r) => r.uriTemplate)).toEqual([
      'caxton://agents/{name}',
      'caxton://conversations/{id}',
      'caxton://memory/{scope}/{name}',
    ]);
    await expect(client.readResource({ uri: 'caxton://memory/agent:helper/Nobody' })).rejects.toMatchObject({
      code: -32002,
    });
  });

  it('an agent deployed while connected: tools/list_changed and a log message at or above the level set', async () => {
    // At "warning", an agent deployment (info) is not sent; back at "info" it is.
    await client.setLoggingLevel('warning');
    writeFileSync(join(agentsDir, 'quiet.toml'), agent.replaceAll('helper', 'quiet'));
    await waitUntil(async () => (await client.listTools()).tools.some((t) => t.name === 'ask_quiet'), {
      timeoutMs: 10_000,
      what: 'ask_quiet to be listed',
    });
    await waitUntil(() => toolListChanges > 0, { timeoutMs: 10_000, what: 'tools/list_changed' });
    expect(logs.filter((l) => (l.data as { agent?: string }).agent === 'quiet')).toEqual([]);

    await client.setLoggingLevel('info');
    writeFileSync(join(agentsDir, 'loud.toml'), agent.replaceAll('helper', 'loud'));
    const { value } = await waitUntil(
      () => {
        const hit = logs.filter((l) => (l.data as { agent?: string }).agent === 'loud');
        return hit.length > 0 && hit;
      },
      { timeoutMs: 10_000, what: 'a log message for the agent loud' },
    );
    expect(value[0]).toEqual({ level: 'info', logger: 'caxton', data: { event: 'agent deployed', agent: 'loud' } });
    expect(logs.filter((l) => (l.data as { agent?: string }).agent === 'quiet')).toEqual([]);
  });

  it('the MCP Inspector CLI runs it as a stdio server', async () => {
    // A project of its own: the client above holds this file's data directory (one server per data dir).
    const own = makeTempDir('caxton-mcp-inspector-');
    writeFixture(own);
    const ownConfig = join(own, 'caxton.toml');
    writeFileSync(ownConfig, caxtonToml());
    const r = await run(
      process.execPath,
      [
        INSPECTOR,
        '--cli',
        '--tool-arg',
        'expression=1+2',
        '--method',
        'tools/call',
        '--tool-name',
        'calculator',
        '--',
        process.execPath,
        CLI,
        'mcp',
        '--config',
        ownConfig,
        '--log-level',
        'warn',
      ],
      { timeoutMs: 60_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ content: [{ type: 'text', text: '3' }] });
  });

  it('logs to stderr only (stdout carries the protocol), and exits when the client closes stdin', async () => {
    expect(stderr).toContain('caxton MCP server on stdio');
    const pid = transport.pid!;
    await client.close();
    await waitUntil(
      () => {
        try {
          process.kill(pid, 0);
          return false;
        } catch {
          return true;
        }
      },
      { timeoutMs: 10_000, what: 'caxton mcp to exit' },
    );
    expect(stderr).toContain('caxton stopped');
  });
});
