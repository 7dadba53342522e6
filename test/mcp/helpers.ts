/**
 * Helpers for the MCP tests: the reference MCP servers from npm (devDependencies) run as real
 * child processes with this Node (`process.execPath`), never downloaded at test time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { McpServerConfig } from '../../src/mcp/index.js';
import type { ToolContext } from '../../src/tools/index.js';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = join(repoRoot, 'dist/cli/main.js');

/** The `bin` script of an npm package in node_modules. */
export function binOf(pkg: string): string {
  const dir = join(repoRoot, 'node_modules', pkg);
  const json = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { bin: string | Record<string, string> };
  const bin = typeof json.bin === 'string' ? json.bin : Object.values(json.bin)[0]!;
  const path = join(dir, bin);
  if (!existsSync(path)) throw new Error(`${pkg} is not installed (${path}); run npm install`);
  return path;
}

export const EVERYTHING = binOf('@modelcontextprotocol/server-everything');
export const MEMORY = binOf('@modelcontextprotocol/server-memory');
export const FILESYSTEM = binOf('@modelcontextprotocol/server-filesystem');
/** A tiny SDK server whose `wait` tool logs starts, ends and cancellations to $EVENTS_FILE. */
export const SLOW = join(repoRoot, 'test/mcp/fixtures/slow-server.mjs');
/** The MCP Inspector's launcher (`mcp-inspector`); `--cli` runs its CLI mode. */
export const INSPECTOR = join(repoRoot, 'node_modules/@modelcontextprotocol/inspector/cli/build/cli.js');

/** A parsed `[mcp_servers.NAME]` entry for a stdio server run with this Node. */
export function stdioServer(
  script: string,
  args: string[] = [],
  extra: Partial<McpServerConfig> = {},
): McpServerConfig {
  return {
    command: process.execPath,
    args: [script, ...args],
    env: {},
    headers: {},
    timeout: 10_000,
    enabled: true,
    gateway: false,
    ...extra,
  };
}

export function httpServer(url: string, extra: Partial<McpServerConfig> = {}): McpServerConfig {
  return { url, args: [], env: {}, headers: {}, timeout: 10_000, enabled: true, gateway: false, ...extra };
}

export function ctx(ms = 10_000, signal: AbortSignal = new AbortController().signal): ToolContext {
  return { agent: 'tester', execution_id: 'exec_test', deadline: Date.now() + ms, signal };
}

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') return rej(new Error('no port'));
      srv.close(() => res(addr.port));
    });
  });
}

const children = new Set<ChildProcess>();

/** server-everything in its Streamable HTTP mode on `port` (endpoint /mcp); resolves once it listens. */
export function startEverythingHttp(port: number): Promise<ChildProcess> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [EVERYTHING, 'streamableHttp'], {
      env: { PATH: process.env.PATH ?? '', PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    let out = '';
    const timer = setTimeout(() => rej(new Error(`server-everything (streamableHttp) did not start: ${out}`)), 15_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      if (/listening on port/i.test(out)) {
        clearTimeout(timer);
        res(child);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      children.delete(child);
      rej(new Error(`server-everything exited (${code}): ${out}`));
    });
  });
}

export function kill(child: ChildProcess): Promise<void> {
  return new Promise((res) => {
    if (child.exitCode !== null || child.signalCode !== null) return res();
    child.once('exit', () => res());
    child.kill('SIGKILL');
  });
}

export async function killChildren(): Promise<void> {
  await Promise.all([...children].map(kill));
  children.clear();
}

/** Runs a command to completion, collecting its output. */
export function run(
  cmd: string,
  args: string[],
  opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd ?? repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      rej(new Error(`${cmd} ${args.join(' ')} did not finish\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, opts.timeoutMs ?? 30_000);
    child.on('error', rej);
    child.on('close', (code) => {
      clearTimeout(timer);
      children.delete(child);
      res({ code, stdout, stderr });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// A Caxton configuration: scripted LLM, server-everything mounted as `everything`, and a broken server

export const REPLIES = `
[[rules]]
name = "echo"
match = "^echo"
  [[rules.turns]]
  tool_calls = [{ name = "everything.echo", arguments = { message = "{{request}}" } }]
  [[rules.turns]]
  content = "The tool said: {{last_tool_result}}"

[[rules]]
content = "You said: {{request}}"
`;

export function caxtonToml(extra = ''): string {
  return `
[llm]
default_provider = "demo"

[llm.providers.demo]
type = "scripted"
script = "replies.toml"

[mcp_servers.everything]
command = ${JSON.stringify(process.execPath)}
args = [${JSON.stringify(EVERYTHING)}, "stdio"]
timeout = "10s"

[mcp_servers.broken]
command = "/nonexistent/mcp-server"
timeout = "2s"
${extra}`;
}

export function writeFixture(dir: string): void {
  writeFileSync(join(dir, 'replies.toml'), REPLIES);
}
