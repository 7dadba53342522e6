/**
 * Runs README.md's runnable blocks as a reader would: one after the other in a shell, in a fresh
 * directory, with `caxton` on the PATH. A fenced block is runnable when the line before its fence
 * is `<!-- runnable -->` (run to completion; a non-zero exit fails) or
 * `<!-- runnable: background -->` (a server: started, left running, ready when GET /ready
 * answers 200). Other blocks (install, configuration excerpts) are not run here.
 *
 * The README speaks of port 8080; the run uses free ports instead, so it never meets another
 * server: `caxton serve` gets them through CAXTON_PORT / CAXTON_METRICS_PORT, the CLI through
 * CAXTON_SERVER_URL, and `127.0.0.1:8080` in a block becomes the chosen port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePorts } from '../cli/helpers/cli.js';

export interface Block {
  /** 1-based line of the opening fence in README.md. */
  line: number;
  background: boolean;
  code: string;
}

const FENCE = /^<!-- runnable(: background)? -->\n```(?:sh|bash)\n([\s\S]*?)\n```$/gm;

/** The runnable blocks of a README, in order. */
export function runnableBlocks(readme: string): Block[] {
  const blocks: Block[] = [];
  for (const m of readme.matchAll(FENCE)) {
    const line = readme.slice(0, m.index).split('\n').length + 1;
    blocks.push({ line, background: m[1] !== undefined, code: m[2]! });
  }
  return blocks;
}

export interface BlockRun {
  block: Block;
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface ReadmeRun {
  runs: BlockRun[];
  url: string;
  /** What the background block (the server) wrote so far. */
  serverOutput(): { stdout: string; stderr: string };
  stop(): Promise<void>;
}

/** Writes `dir/caxton`, a launcher of the CLI at `cliMain` (what `npm link` or `npm install -g` puts on the PATH). */
export function writeLauncher(dir: string, cliMain: string): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'caxton'), `#!/bin/sh\nexec "${process.execPath}" "${cliMain}" "$@"\n`, { mode: 0o755 });
  return dir;
}

async function ready(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/ready`, { signal: AbortSignal.timeout(1000) });
    await res.text();
    return res.status === 200;
  } catch {
    return false;
  }
}

/**
 * Runs every runnable block of `readmePath` starting in `cwd` (a `cd` in one block carries over to
 * the next), with `binDir` first on the PATH. Throws at the first block that fails, naming its
 * line and showing its output.
 */
export async function runReadme(
  readmePath: string,
  opts: { cwd: string; binDir: string; home: string; blockTimeoutMs?: number },
): Promise<ReadmeRun> {
  const blocks = runnableBlocks(readFileSync(readmePath, 'utf8'));
  if (blocks.length === 0) throw new Error(`${readmePath} has no runnable blocks`);
  const [port, metricsPort] = (await freePorts(2)) as [number, number];
  const url = `http://127.0.0.1:${port}`;
  mkdirSync(opts.home, { recursive: true });
  mkdirSync(opts.cwd, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    PATH: `${opts.binDir}:${process.env.PATH ?? '/usr/bin:/bin'}`,
    HOME: opts.home,
    CAXTON_HOME: join(opts.home, '.caxton'),
    LANG: 'C.UTF-8',
    CAXTON_PORT: String(port),
    CAXTON_METRICS_PORT: String(metricsPort),
    CAXTON_SERVER_URL: url,
  };
  const cwdFile = join(opts.home, '.readme-cwd');
  let cwd = opts.cwd;
  const runs: BlockRun[] = [];
  const servers: ChildProcess[] = [];
  const out = { stdout: '', stderr: '' };
  const run: ReadmeRun = {
    runs,
    url,
    serverOutput: () => ({ ...out }),
    async stop() {
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((res) => {
              if (s.exitCode !== null || s.signalCode !== null) return res();
              s.once('close', () => res());
              // The block's shell and the server in it: the whole process group.
              process.kill(-s.pid!, 'SIGTERM');
              setTimeout(() => {
                if (s.exitCode === null && s.signalCode === null) process.kill(-s.pid!, 'SIGKILL');
              }, 5000).unref();
            }),
        ),
      );
    },
  };
  try {
    for (const block of blocks) {
      const code = block.code.replaceAll('127.0.0.1:8080', `127.0.0.1:${port}`);
      const where = `README.md block at line ${block.line}:\n${block.code}`;
      if (block.background) {
        const child = spawn('bash', ['-c', `set -euo pipefail\n${code}`], {
          cwd,
          env,
          stdio: ['ignore', 'pipe', 'pipe'],
          detached: true,
        });
        servers.push(child);
        child.on('error', (e) => (out.stderr += String(e)));
        child.stdout.setEncoding('utf8').on('data', (d: string) => (out.stdout += d));
        child.stderr.setEncoding('utf8').on('data', (d: string) => (out.stderr += d));
        const deadline = Date.now() + 60_000;
        while (!(await ready(url))) {
          if (child.exitCode !== null || Date.now() > deadline)
            throw new Error(
              `${where}\ndid not start a server answering ${url}/ready\n--- stderr\n${out.stderr}\n--- stdout\n${out.stdout.slice(-4000)}`,
            );
          await new Promise((r) => setTimeout(r, 100));
        }
        runs.push({ block, code: null, stdout: '', stderr: '' });
        continue;
      }
      const r = await new Promise<BlockRun>((res) => {
        const child = spawn('bash', ['-c', `set -euo pipefail\n${code}\npwd > '${cwdFile}'`], {
          cwd,
          env,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
        child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        const timer = setTimeout(() => child.kill('SIGKILL'), opts.blockTimeoutMs ?? 60_000);
        child.on('error', (e) => {
          clearTimeout(timer);
          res({ block, code: -1, stdout, stderr: `${stderr}${String(e)}` });
        });
        child.on('close', (exit) => {
          clearTimeout(timer);
          res({ block, code: exit, stdout, stderr });
        });
      });
      runs.push(r);
      if (r.code !== 0) throw new Error(`${where}\nexited ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
      cwd = readFileSync(cwdFile, 'utf8').trim();
    }
  } catch (e) {
    await run.stop();
    throw e;
  }
  return run;
}
