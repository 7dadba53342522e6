/**
 * The server thread's CPU per context-mode invoke, with [audit] and [events] on, of this build
 * and of another checkout's (BENCH_COMPARE_DIR, built), beside the invoke floor and a fastify
 * echo, each server alone in its own process so that neither shares a heap, a JIT or an event
 * loop with another or with the load generator. Rounds alternate the two builds (A B, then B A),
 * autocannon runs on a worker thread here, and the CPU is the server's main thread's own account
 * (/proc/PID/task/PID/schedstat): unlike req/s it holds up on a machine shared with other work.
 *
 *   node --import tsx bench/invoke-cpu.ts          (BENCH_ROUNDS, BENCH_DURATION, BENCH_CONNECTIONS)
 *
 * BENCH_PAIR_ONLY=1 leaves echo and floor out; BENCH_CONCURRENT=1 loads the two builds at once;
 * BENCH_CPU_PROF=DIR writes each server's `--cpu-prof` (100 µs interval) under DIR/NAME.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { load } from './lib/load.js';
import { threadCpuMs } from './lib/proc-cpu.js';

const env = (name: string, def: number) => {
  const v = process.env[name];
  return v === undefined || v === '' ? def : Number(v);
};
const ROUNDS = env('BENCH_ROUNDS', 4);
const SECONDS = env('BENCH_DURATION', 4);
const CONNECTIONS = env('BENCH_CONNECTIONS', 10);
const here = dirname(fileURLToPath(import.meta.url));
const self = resolve(here, '..');
const other = process.env.BENCH_COMPARE_DIR;
/** The two builds alone, echo and floor left out (more rounds of the A/B in the same time). */
const PAIR_ONLY = process.env.BENCH_PAIR_ONLY === '1';
/** The two builds loaded at the same time, each by its own client: both see the same machine. */
const CONCURRENT = process.env.BENCH_CONCURRENT === '1';

interface Server {
  name: string;
  child: ChildProcess;
  url: string;
}

async function start(name: string, kind: string, dir: string): Promise<Server> {
  const args = ['--import', 'tsx', join(here, 'lib', 'invoke-cpu-server.mjs'), kind, dir];
  const prof = process.env.BENCH_CPU_PROF;
  if (prof) args.unshift('--cpu-prof', '--cpu-prof-interval', '100', '--cpu-prof-dir', join(prof, name));
  const child = spawn(process.execPath, args, { cwd: self, stdio: ['pipe', 'pipe', 'inherit'] });
  const line = await new Promise<string>((ok, fail) => {
    child.once('exit', (c) => fail(new Error(`${name} exited ${c}`)));
    createInterface({ input: child.stdout! }).once('line', ok);
  });
  return { name, child, url: line.trim() };
}

const body = JSON.stringify({ request: 'hello' });
async function rep(s: Server) {
  const pid = s.child.pid!;
  const c0 = threadCpuMs(pid);
  const r = await load({
    url: s.url,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    duration: SECONDS,
    connections: CONNECTIONS,
  });
  if (r.non2xx + r.errors > 0) throw new Error(`${s.name}: ${r.non2xx} non-2xx, ${r.errors} errors`);
  const cpu = threadCpuMs(pid) - c0;
  return { rps: r.req_per_s, us: (cpu * 1000) / r.requests };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const servers: Server[] = PAIR_ONLY ? [] : [await start('echo', 'echo', self), await start('floor', 'floor', self)];
const refs = servers.length;
servers.push(await start('branch', 'caxton', self));
if (other) servers.push(await start('base', 'caxton', resolve(other)));
const res: Record<string, { rps: number[]; us: number[]; xecho: number[] }> = {};
for (const s of servers) res[s.name] = { rps: [], us: [], xecho: [] };
try {
  for (const s of servers) await rep(s); // warm-up
  for (let r = 0; r < ROUNDS; r++) {
    const pair = servers.slice(refs);
    if (r % 2 === 1) pair.reverse();
    let echo = Number.NaN;
    const together = CONCURRENT && pair.length === 2 ? await Promise.all(pair.map((s) => rep(s))) : undefined;
    for (const s of [...servers.slice(0, refs), ...pair]) {
      const m = together ? (together[pair.indexOf(s)] ?? (await rep(s))) : await rep(s);
      if (s.name === 'echo') echo = m.rps;
      res[s.name]!.rps.push(m.rps);
      res[s.name]!.us.push(m.us);
      res[s.name]!.xecho.push(m.rps / echo);
      process.stderr.write(`round ${r + 1} ${s.name}: ${m.rps.toFixed(0)} req/s, ${m.us.toFixed(1)} µs CPU/req\n`);
    }
  }
} finally {
  for (const s of servers) s.child.stdin!.end();
  await Promise.all(servers.map((s) => new Promise((ok) => s.child.once('exit', ok))));
}
const f = (xs: number[], d = 1) =>
  `${median(xs).toFixed(d)} (${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)})`;
for (const s of servers) {
  const x = res[s.name]!;
  console.log(`${s.name.padEnd(7)} req/s ${f(x.rps, 0)}  × echo ${f(x.xecho, 3)}  CPU µs/req ${f(x.us)}`);
}
for (const n of ['branch', 'base']) {
  const x = res[n];
  if (!x) continue;
  if (!res.floor) continue;
  const perRound = x.us.map((u, i) => u / res.floor!.us[i]!);
  const xf = x.xecho.map((v, i) => v / res.floor!.xecho[i]!);
  console.log(`${n.padEnd(7)} CPU × floor ${f(perRound, 2)}  req/s × floor ${f(xf, 2)}`);
}
if (res.base) {
  const r = res.branch!.us.map((u, i) => u / res.base!.us[i]!);
  console.log(
    `branch / base CPU per request, per round: ${r.map((v) => v.toFixed(3)).join(' ')}; median ${median(r).toFixed(3)}`,
  );
}
