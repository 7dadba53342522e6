import type { ChildProcess } from 'node:child_process';

/**
 * The URL a spawned server prints in its "listening on http://…" line (stdout or stderr); rejects,
 * with what it printed, if it exits first.
 */
export function listeningUrl(child: ChildProcess, what: string): Promise<string> {
  let out = '';
  return new Promise<string>((res, rej) => {
    const read = (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+?)[\s;,]/.exec(out);
      if (m) res(m[1]!);
    };
    child.stdout?.on('data', read);
    child.stderr?.on('data', read);
    child.on('exit', (code) => rej(new Error(`${what} exited ${code} before listening: ${out.slice(-2000)}`)));
  });
}
