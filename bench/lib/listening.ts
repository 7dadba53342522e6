import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

/**
 * The URL a spawned server prints in its "listening on http://…" line (stdout or stderr); rejects,
 * with what it printed, if it exits first. Its output is read to the end, so a full pipe never
 * blocks the server.
 */
export function listeningUrl(child: ChildProcess, what: string): Promise<string> {
  let out = '';
  return new Promise<string>((res, rej) => {
    const read = (d: Buffer) => {
      if (out.length < 100_000) out += d.toString();
      const m = /listening on (http:\/\/\S+?)[\s;,]/.exec(out);
      if (m) res(m[1]!);
    };
    child.stdout?.on('data', read);
    child.stderr?.on('data', read);
    child.on('exit', (code) => rej(new Error(`${what} exited ${code} before listening: ${out.slice(-2000)}`)));
  });
}

export interface Listening {
  child: ChildProcess;
  url: string;
  pid: number;
  /** SIGTERM, then SIGKILL if it has not exited within the kill delay. */
  stop(): Promise<void>;
}

/** `node ...args` in a child process, once it prints its listening line. */
export async function spawnListening(
  args: string[],
  what: string,
  opts: SpawnOptions = {},
  killAfterMs = 15_000,
): Promise<Listening> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  const url = await listeningUrl(child, what);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    child,
    url,
    pid: child.pid!,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
