/**
 * Instructions per context-mode invoke ([audit] and [events] on) of this build and of another
 * checkout's (BENCH_COMPARE_DIR, built), counted by valgrind's callgrind on the server's main
 * thread between a warm-up and the end of N invokes through `app.inject` (bench/lib/
 * invoke-inject.mjs). CPU time on a machine shared with other work swings by a third from rep to
 * rep; an instruction count does not wait for a core and does not grow with cache misses, so a
 * change of a few per cent shows. What it leaves out: the socket path (inject), and how much an
 * instruction costs (a cache miss counts one).
 *
 *   node --import tsx bench/invoke-instructions.ts      (BENCH_INVOKES, default 2000; both run at once)
 */
import { spawn, execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const N = Number(process.env.BENCH_INVOKES ?? 2000);
const builds: [string, string][] = [['branch', resolve(here, '..')]];
if (process.env.BENCH_COMPARE_DIR) builds.push(['base', resolve(process.env.BENCH_COMPARE_DIR)]);

async function count(name: string, dir: string): Promise<number> {
  const sync = join(tmpdir(), `caxton-bench-instr-${process.pid}-${name}`);
  const out = `${sync}.cg`;
  const child = spawn(
    'valgrind',
    [
      '--tool=callgrind',
      `--callgrind-out-file=${out}`,
      '--separate-threads=yes',
      '--cache-sim=no',
      '--smc-check=all-non-file',
      process.execPath,
      join(here, 'lib', 'invoke-inject.mjs'),
      dir,
      String(N),
      sync,
    ],
    { stdio: ['ignore', 'inherit', 'pipe'] },
  );
  let text = '';
  const seen = (tag: string) =>
    new Promise<void>((ok, fail) => {
      const check = () => (text.includes(`\n${tag}\n`) || text.startsWith(`${tag}\n`) ? ok() : undefined);
      child.stderr!.on('data', (b: Buffer) => {
        text += b.toString();
        check();
      });
      child.once('exit', (c) => fail(new Error(`${name}: exited ${c}: ${text.slice(-2000)}`)));
      check();
    });
  await seen('WARM');
  execFileSync('callgrind_control', ['-z', String(child.pid)], { stdio: 'ignore' });
  writeFileSync(`${sync}.go`, '');
  await seen('DONE');
  execFileSync('callgrind_control', ['-d', String(child.pid)], { stdio: 'ignore' });
  writeFileSync(`${sync}.stop`, '');
  await new Promise((ok) => child.once('exit', ok));
  // The dump of the main thread (thread 1) at "DONE": the counters zeroed at "WARM".
  const dumps = readdirSync(dirname(out)).filter((f) => f.startsWith(basename(out)));
  const main = dumps.find((f) => /\.1-01$/.test(f)) ?? dumps.find((f) => /-01$/.test(f));
  if (!main) throw new Error(`${name}: no callgrind dump of the main thread among ${dumps.join(', ')}`);
  const summary = /^(?:summary|totals): (\d+)/m.exec(readFileSync(join(dirname(out), main), 'utf8'));
  for (const f of dumps) rmSync(join(dirname(out), f), { force: true });
  rmSync(`${sync}.go`, { force: true });
  rmSync(`${sync}.stop`, { force: true });
  return Number(summary?.[1]) / N;
}

const results = await Promise.all(builds.map(([name, dir]) => count(name, dir)));
builds.forEach(([name], i) =>
  console.log(
    `${name.padEnd(7)} ${Math.round(results[i]!).toLocaleString('en')} instructions per invoke (main thread)`,
  ),
);
if (results.length === 2) console.log(`branch / base: ${(results[0]! / results[1]!).toFixed(4)}`);
