/**
 * The project each measured cold start serves, the preload that reports its CPU time, and the
 * measurement itself (bench/startup.ts).
 */
import { spawn } from 'node:child_process';
import { listeningUrl } from './listening.js';

/** A fresh project: one scripted-model agent, no authentication, no metrics listener. */
export const PROJECT: Record<string, string> = {
  'caxton.toml':
    'data_dir = "data"\nagents_dir = "agents"\n[server]\nhost = "127.0.0.1"\nport = 0\n[auth]\nenabled = false\n[metrics]\nenabled = false\n[llm]\ndefault_provider = "fake"\n[llm.providers.fake]\ntype = "scripted"\nscript = "replies.toml"\n',
  'replies.toml': 'fallback = "hello"\n',
  'agents/echo.toml': 'name = "echo"\ndescription = "answers hello"\nsystem_prompt = "Answer."\n',
};

/**
 * Preloaded into each measured start: when the first POST is answered, prints the process's CPU
 * time so far (user + system, all threads), the steadier measure on a loaded machine.
 */
export const FIRST_CPU = `import http from 'node:http';
const end = http.ServerResponse.prototype.end;
let done = false;
http.ServerResponse.prototype.end = function (...a) {
  const first = !done && this.req?.method === 'POST';
  if (first) done = true;
  const u = first ? process.cpuUsage() : undefined;
  const r = end.apply(this, a);
  if (u) process.stderr.write('first-answer-cpu-ms ' + (u.user + u.system) / 1000 + '\\n');
  return r;
};
`;

export interface FirstAnswer {
  /** Milliseconds from spawn to the first 200. */
  wall: number;
  /** The server's CPU time up to that answer, ms (printed by the FIRST_CPU preload). */
  cpu: number;
  /** What the server wrote to stderr. */
  err: string;
}

export interface FirstAnswerOptions {
  env?: NodeJS.ProcessEnv;
  /** Keep the server this many ms after its first answer (work it does just after, such as writing a cache). */
  linger?: number;
  /** Keep it, after the linger, until its stderr matches this (at most 20 s more). */
  until?: RegExp;
}

/** Spawns `node args`, waits for its first 200 on POST /api/v1/agents/echo/invoke, stops it. */
export async function firstAnswer(
  args: string[],
  cwd: string,
  preload: string,
  opts: FirstAnswerOptions = {},
): Promise<FirstAnswer> {
  const t0 = performance.now();
  const child = spawn(process.execPath, ['--import', preload, ...args], {
    cwd,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  try {
    const url = await listeningUrl(child, args.join(' '));
    const r = await fetch(`${url}/api/v1/agents/echo/invoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ request: 'hi' }),
    });
    await r.text();
    const wall = performance.now() - t0;
    if (r.status !== 200) throw new Error(`${args.join(' ')}: the first request answered ${r.status}`);
    const deadline = performance.now() + 5000;
    let m: RegExpExecArray | null;
    while (!(m = /first-answer-cpu-ms (\S+)/.exec(err)) && performance.now() < deadline)
      await new Promise((res) => setTimeout(res, 10));
    if (!m) throw new Error(`${args.join(' ')}: no CPU time printed for the first answer`);
    if (opts.linger) await new Promise((res) => setTimeout(res, opts.linger));
    const until = performance.now() + 20_000;
    while (opts.until && !opts.until.test(err) && performance.now() < until)
      await new Promise((res) => setTimeout(res, 50));
    return { wall, cpu: Number(m[1]), err };
  } finally {
    const exited = new Promise((res) => child.once('exit', res));
    child.kill('SIGTERM');
    await exited;
  }
}
