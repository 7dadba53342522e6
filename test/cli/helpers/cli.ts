import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { freePorts } from '../../helpers/ports.js';

/** The repository root (test/cli/helpers/ is three levels below it). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** The compiled CLI: the tests run exactly what `npm install -g` would put on the PATH. */
export const CLI = join(repoRoot, 'dist/cli/main.js');

export const PACKAGE_VERSION = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string })
  .version;

/** Fails with a clear message when `npm run build` has not been run (`npm test` runs it first). */
export function assertBuilt(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} does not exist; run \`npm run build\` before these tests`);
}

// ---------------------------------------------------------------------------------------------
// Temp dirs and child processes, both cleaned up by cleanup()

const tempDirs: string[] = [];
const children = new Set<ChildProcess>();

export function tempDir(prefix = 'caxton-cli-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/** Kills every child process still running (SIGKILL) and removes the temp dirs. Call in afterAll/afterEach. */
export async function killChildren(): Promise<void> {
  const running = [...children].filter((c) => c.exitCode === null && c.signalCode === null);
  await Promise.all(
    running.map(
      (c) =>
        new Promise<void>((res) => {
          c.once('exit', () => res());
          c.kill('SIGKILL');
          setTimeout(res, 2000).unref();
        }),
    ),
  );
  children.clear();
}

export async function cleanup(): Promise<void> {
  await killChildren();
  for (const d of tempDirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/**
 * A clean environment: nothing from the developer's shell (no CAXTON_*, no NODE_OPTIONS from the test runner)
 * beyond PATH, plus HOME pointing at a temp dir.
 */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tmpdir(), LANG: 'C.UTF-8', ...extra };
}

// ---------------------------------------------------------------------------------------------
// Running the CLI

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd: string;
  env?: Record<string, string>;
  timeoutMs?: number;
}

/** Spawns `node dist/cli/main.js ...args` and waits for it to exit; kills it (and fails) after timeoutMs. */
export function runCli(args: string[], opts: RunOptions): Promise<CliResult> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: opts.cwd,
      env: cleanEnv(opts.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timeoutMs = opts.timeoutMs ?? 15_000;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      rej(
        new Error(`caxton ${args.join(' ')} did not exit within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`),
      );
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      rej(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      res({ code, signal, stdout, stderr });
    });
  });
}

/** `caxton ...` must exit with `code`; the message shows the output so a failure explains itself. */
export function expectExit(r: CliResult, code: number): void {
  expect(r.code, `exit code (signal ${r.signal})\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`).toBe(code);
}

/** No JavaScript stack trace anywhere in the output: errors are reported as messages. */
export function expectNoStackTrace(r: CliResult): void {
  for (const text of [r.stdout, r.stderr]) {
    expect(text).not.toMatch(/^\s+at \S.*?\(?(?:file:\/\/|\/|node:)\S*:\d+:\d+\)?$/m);
    expect(text).not.toMatch(/node:internal/);
  }
}

export function parseJson<T = unknown>(r: CliResult): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch (e) {
    throw new Error(`stdout is not JSON (${(e as Error).message}):\n${r.stdout}\n--- stderr\n${r.stderr}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Ports

function listenOnce(): Promise<{ port: number; close(): Promise<void> }> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') return rej(new Error('no port'));
      res({ port: addr.port, close: () => new Promise<void>((r) => srv.close(() => r())) });
    });
  });
}

// Ports a server is started on by number: outside the range the kernel hands out (helpers/ports.ts).
export { freePorts };

/** Holds a port open on 127.0.0.1 until close() is called. */
export async function occupyPort(): Promise<{ port: number; close(): Promise<void> }> {
  return listenOnce();
}

// ---------------------------------------------------------------------------------------------
// caxton serve

export interface ServeProcess {
  child: ChildProcess;
  url: string;
  port: number;
  metricsPort: number;
  /** Everything written so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code and signal once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface ServeOptions {
  cwd: string;
  /** Arguments after `serve` (e.g. ['--config', file]); --port and --metrics-port are added. */
  args?: string[];
  env?: Record<string, string>;
  readyTimeoutMs?: number;
  /**
   * Fixed ports instead of free ones picked here (a node restarted on the port its caxton.toml
   * advertises, test/cluster/helpers/nodes.ts); then a port in use fails at once, with no retry.
   */
  port?: number;
  metricsPort?: number;
}

async function isReady(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/ready`, { signal: AbortSignal.timeout(1000) });
    await res.text();
    return res.status === 200;
  } catch {
    return false;
  }
}

function spawnServeOnce(opts: ServeOptions, port: number, metricsPort: number): ServeProcess {
  const child = spawn(
    process.execPath,
    [CLI, 'serve', ...(opts.args ?? []), '--port', String(port), '--metrics-port', String(metricsPort)],
    {
      cwd: opts.cwd,
      env: cleanEnv(opts.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
    child.on('close', (code, signal) => {
      children.delete(child);
      res({ code, signal });
    });
  });
  return {
    child,
    url: `http://127.0.0.1:${port}`,
    port,
    metricsPort,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
  };
}

/**
 * Starts `caxton serve` on two free ports and waits until it says it listens on its port and GET /ready
 * answers 200. Retries on fresh ports if another process grabbed a port in between (a race with parallel
 * test files), fails if the server exits. The listening line comes first: until this server has bound the
 * port, a /ready answer on it may be another test file's server's.
 */
export async function startServe(opts: ServeOptions): Promise<ServeProcess> {
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 20_000);
  for (let attempt = 1; ; attempt++) {
    const fixed = opts.port !== undefined && opts.metricsPort !== undefined;
    const [port, metricsPort] = fixed ? [opts.port!, opts.metricsPort!] : ((await freePorts(2)) as [number, number]);
    const p = spawnServeOnce(opts, port, metricsPort);
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    void p.exited.then((e) => (exit = e));
    const listening = new RegExp(`caxton listening on \\S+:${port} `);
    while (exit === undefined && Date.now() < deadline) {
      if (listening.test(p.stderr()) && (await isReady(p.url))) return p;
      await new Promise((r) => setTimeout(r, 50));
    }
    if (exit === undefined) {
      p.child.kill('SIGKILL');
      throw new Error(
        `caxton serve did not become ready within the timeout\n--- stdout\n${p.stdout()}\n--- stderr\n${p.stderr()}`,
      );
    }
    if (!fixed && attempt < 3 && /address already in use/.test(p.stderr())) continue;
    throw new Error(
      `caxton serve exited early (code ${exit.code}, signal ${exit.signal})\n--- stdout\n${p.stdout()}\n--- stderr\n${p.stderr()}`,
    );
  }
}

/**
 * Waits until the server's stdout or stderr matches `re` (output arrives through a pipe, and the ready log line
 * may come a moment after GET /ready first answers 200). Returns the output; fails after timeoutMs.
 */
export async function waitForOutput(
  p: ServeProcess,
  stream: 'stdout' | 'stderr',
  re: RegExp,
  timeoutMs = 5000,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (!re.test(p[stream]())) {
    if (Date.now() > deadline)
      throw new Error(
        `caxton serve ${stream} did not match ${re} within ${timeoutMs} ms\n--- ${stream}\n${p[stream]()}`,
      );
    await new Promise((r) => setTimeout(r, 25));
  }
  return p[stream]();
}

/** Sends `signal` and waits for the exit, failing after timeoutMs (the process is then killed). */
export async function stopServe(
  p: ServeProcess,
  signal: NodeJS.Signals,
  timeoutMs = 5000,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
  const t0 = Date.now();
  p.child.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, rej) => {
    timer = setTimeout(() => {
      p.child.kill('SIGKILL');
      rej(
        new Error(
          `caxton serve did not exit within ${timeoutMs} ms of ${signal}\n--- stdout\n${p.stdout()}\n--- stderr\n${p.stderr()}`,
        ),
      );
    }, timeoutMs);
  });
  try {
    const e = await Promise.race([p.exited, timeout]);
    return { ...e, ms: Date.now() - t0 };
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------
// Agent files

export function tomlAgent(
  name: string,
  opts: { capabilities?: string[]; description?: string; extra?: string } = {},
): string {
  const caps = (opts.capabilities ?? ['testing']).map((c) => JSON.stringify(c)).join(', ');
  return `name = "${name}"\ndescription = "${opts.description ?? `test agent ${name}`}"\ncapabilities = [${caps}]\nsystem_prompt = "You are ${name}."\n${opts.extra ?? ''}`;
}

export function markdownAgent(name: string, capabilities: string[] = ['testing']): string {
  return `---\nname: ${name}\ndescription: "markdown agent ${name}"\ncapabilities: [${capabilities.join(', ')}]\n---\n\nYou are ${name}, written in Markdown.\n`;
}

// ---------------------------------------------------------------------------------------------
// A server whose agents answer through the scripted provider

/** What startScriptedServe started: its folder, the child, and the CLI run against it from that folder. */
export interface ScriptedServe {
  dir: string;
  serve: ServeProcess;
  cli(...args: string[]): Promise<CliResult>;
}

/**
 * `caxton serve` in a new temporary folder (`prefix`): `data/`, `agents/` holding `agents` (file
 * name → text), the `demo` scripted provider answering "42" (replies.toml, or `replies` as its
 * text) as the default, and `config` appended to its caxton.toml. cleanup() stops it.
 */
export async function startScriptedServe(opts: {
  prefix: string;
  agents: Record<string, string>;
  config?: string;
  replies?: string;
}): Promise<ScriptedServe> {
  assertBuilt();
  const dir = tempDir(opts.prefix);
  const file = join(dir, 'caxton.toml');
  writeFileSync(
    file,
    `data_dir = "data"
agents_dir = "agents"

[logging]
level = "warn"

[llm]
default_provider = "demo"

[llm.providers.demo]
type = "scripted"
script = "replies.toml"
${opts.config ?? ''}`,
  );
  writeFileSync(join(dir, 'replies.toml'), opts.replies ?? 'fallback = "42"\n');
  mkdirSync(join(dir, 'agents'));
  for (const [name, text] of Object.entries(opts.agents)) writeFileSync(join(dir, 'agents', name), text);
  const serve = await startServe({ cwd: dir, args: ['--config', file] });
  return { dir, serve, cli: (...args) => runCli(['--server', serve.url, ...args], { cwd: dir, timeoutMs: 30_000 }) };
}
