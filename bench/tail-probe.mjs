/**
 * What the slowest sequential requests overlap: a probe for the tail, not a suite.
 *
 *   npm run build
 *   node --expose-gc bench/tail-probe.mjs [REPS] CLI [CLI...]
 *
 * For each rep and each build's `dist/cli/main.js` in turn (alternated), a fresh `caxton serve`
 * with the mastra suite's project (scripted model, one agent) and bench/lib/tail-probe-preload.mjs
 * loaded; after TAILPROBE_WARMUP requests (200), TAILPROBE_QUERIES (2,000) sequential text invokes
 * on one kept-alive `node:http` connection, each stamped on the monotonic clock with the server's
 * main-thread CPU and its wait for a core (/proc/PID/task/PID/schedstat) and the client's own wait.
 * The client's young generation is collected every 50 requests outside the timed ones. Then the
 * TAILPROBE_SLOWEST (40) slowest requests are classified by what they overlapped: a turn-writer
 * commit (`tx`), a server GC pause (`sgc`), a client GC pause (`cgc`), a WAL checkpoint on the
 * worker (`ck`), the server's main thread waiting > 0.5 ms for a core (`swait`), the client's
 * (`cwait`), the server's main thread running > 2 × its p50 (`srun`); a request counts in each
 * that applies. TAILPROBE_JSON=DIR keeps every run's raw data there.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { postKeptAlive } from './lib/keepalive-post.mjs';

const args = process.argv.slice(2);
const REPS = /^\d+$/.test(args[0] ?? '') ? Number(args.shift()) : 1;
const CLIS = args.map((a) => resolve(a));
const WARMUP = Number(process.env.TAILPROBE_WARMUP ?? 200);
const N = Number(process.env.TAILPROBE_QUERIES ?? 2000);
const K = Number(process.env.TAILPROBE_SLOWEST ?? 40);
const JSON_DIR = process.env.TAILPROBE_JSON;
const PRELOAD = join(import.meta.dirname, 'lib/tail-probe-preload.mjs');
if (CLIS.length === 0) throw new Error('usage: node --expose-gc bench/tail-probe.mjs [REPS] CLI [CLI...]');
const clientGc = globalThis.gc;
if (!clientGc)
  console.error('[tail-probe] no global.gc (run node with --expose-gc): the client collects inside timed requests');

const PROJECT = {
  'caxton.toml':
    'data_dir = "data"\nagents_dir = "agents"\n[server]\nhost = "127.0.0.1"\nport = 0\n[auth]\nenabled = false\n[llm]\ndefault_provider = "fake"\n[llm.providers.fake]\ntype = "scripted"\nscript = "replies.toml"\n',
  'replies.toml': 'fallback = "The answer is 42."\n',
  'agents/echo.toml': 'name = "echo"\ndescription = "answers"\nsystem_prompt = "Answer."\n',
};

const hr = () => Number(process.hrtime.bigint()) / 1e6;
const offset = hr() - performance.now();
const clientGcs = [];
new PerformanceObserver((l) => {
  for (const e of l.getEntries()) clientGcs.push([e.startTime + offset, e.duration]);
}).observe({ entryTypes: ['gc'] });

/** [run ms, wait ms] of one thread, from its schedstat. */
const schedstat = (path) => {
  const f = readFileSync(path, 'utf8').split(' ');
  return [Number(f[0]) / 1e6, Number(f[1]) / 1e6];
};

async function run(cli) {
  const project = mkdtempSync(join(tmpdir(), 'caxton-tail-probe-'));
  mkdirSync(join(project, 'agents'));
  for (const [k, v] of Object.entries(PROJECT)) writeFileSync(join(project, k), v);
  const probeOut = join(project, 'probe.json');
  const child = spawn(process.execPath, ['--import', PRELOAD, cli, 'serve'], {
    cwd: project,
    env: { ...process.env, TAILPROBE_OUT: probeOut, TAILPROBE_ROOT: dirname(dirname(dirname(cli))) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let printed = '';
  const base = await new Promise((res, rej) => {
    const read = (d) => {
      printed += d;
      const m = /listening on (http:\/\/\S+?)[\s;,]/.exec(printed);
      if (m) res(m[1]);
    };
    child.stdout.on('data', read);
    child.stderr.on('data', read);
    child.on('exit', (code) => rej(new Error(`serve exited ${code}: ${printed.slice(-2000)}`)));
  });
  const url = new URL(`${base}/api/v1/agents/echo/invoke`);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const body = Buffer.from(JSON.stringify({ request: 'hi' }));
  const post = () => postKeptAlive(agent, url, body);
  const server = `/proc/${child.pid}/task/${child.pid}/schedstat`;
  const self = `/proc/self/task/${process.pid}/schedstat`;
  await post();
  // A moment for what a server starts after its first requests (the WAL checkpoint worker).
  await new Promise((r) => setTimeout(r, 1500));
  for (let i = 0; i < WARMUP; i++) await post();
  const rows = [];
  for (let i = 0; i < N; i++) {
    if (clientGc && i % 50 === 0) clientGc({ type: 'minor' });
    const s0 = schedstat(server);
    const c0 = schedstat(self);
    const t0 = hr();
    await post();
    const t1 = hr();
    const s1 = schedstat(server);
    const c1 = schedstat(self);
    rows.push([t0, t1, s1[0] - s0[0], s1[1] - s0[1], c1[1] - c0[1]]);
  }
  agent.destroy();
  child.kill('SIGUSR2');
  for (let i = 0; i < 100 && !existsSync(probeOut); i++) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 200));
  const probe = JSON.parse(readFileSync(probeOut, 'utf8'));
  probe.ckpt = existsSync(`${probeOut}.ckpt`)
    ? readFileSync(`${probeOut}.ckpt`, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l))
    : [];
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
  rmSync(project, { recursive: true, force: true });
  return { rows, cgc: clientGcs.splice(0), ...probe };
}

const q = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))];
const overlaps = (r, spans) => spans.filter((s) => r[0] < s[0] + s[1] && s[0] < r[1]);

function classify(label, d) {
  const t0 = d.rows[0][0];
  const t1 = d.rows.at(-1)[1];
  const within = (xs) => xs.filter((s) => s[0] + s[1] >= t0 && s[0] <= t1);
  const tx = within(d.tx);
  const gc = within(d.gc);
  // The client's pauses inside timed requests (the forced ones fall between them).
  const cgc = within(d.cgc).filter((g) => d.rows.some((r) => overlaps(r, [g]).length > 0));
  const ck = within(d.ckpt);
  const lat = d.rows.map((r) => r[1] - r[0]);
  const run = d.rows.map((r) => r[2]);
  const p50 = q(lat, 0.5);
  const p99 = q(lat, 0.99);
  const runP50 = q(run, 0.5);
  const counts = { tx: 0, sgc: 0, cgc: 0, ck: 0, swait: 0, cwait: 0, srun: 0, none: 0 };
  const slowest = d.rows
    .map((r, i) => [lat[i], r])
    .sort((a, b) => a[0] - b[0])
    .slice(-K);
  for (const [, r] of slowest) {
    const tags = [
      ['tx', overlaps(r, tx).length > 0],
      ['sgc', overlaps(r, gc).length > 0],
      ['cgc', overlaps(r, cgc).length > 0],
      ['ck', overlaps(r, ck).length > 0],
      ['swait', r[3] > 0.5],
      ['cwait', r[4] > 0.5],
      ['srun', r[2] > 2 * runP50],
    ].filter(([, on]) => on);
    for (const [k] of tags) counts[k]++;
    if (tags.length === 0) counts.none++;
  }
  const hit = d.rows.filter((r) => overlaps(r, tx).length > 0);
  const rowsPerCommit = tx.filter((t) => t[3] >= 0).reduce((a, t) => a + t[3], 0) / Math.max(1, tx.length);
  console.log(
    `${label}: p50 ${p50.toFixed(3)} p99 ${p99.toFixed(3)} ms (${(p99 / p50).toFixed(1)} ×); main thread CPU p50 ${runP50.toFixed(3)} p99 ${q(run, 0.99).toFixed(3)} ms; ` +
      `${tx.length} commits (${rowsPerCommit.toFixed(0)} rows each, wall p50 ${q(
        tx.map((t) => t[1]),
        0.5,
      )?.toFixed(3)} ms) inside ${hit.length} requests, their main thread CPU p50 ${q(
        hit.map((r) => r[2]),
        0.5,
      )?.toFixed(3)} ms; ` +
      `${gc.length} server GC pauses (${gc.map((g) => g[1].toFixed(1)).join(' ')} ms), ${cgc.length} client GC pauses inside a request, ${ck.length} checkpoints`,
  );
  console.log(`  slowest ${K}: ${JSON.stringify(counts)}`);
}

if (JSON_DIR) mkdirSync(JSON_DIR, { recursive: true });
for (let rep = 0; rep < REPS; rep++) {
  const order = rep % 2 === 0 ? CLIS : [...CLIS].reverse();
  for (const cli of order) {
    const d = await run(cli);
    const label = `rep ${rep + 1} ${cli}`;
    if (JSON_DIR)
      writeFileSync(join(JSON_DIR, `tail-${rep + 1}-${CLIS.indexOf(cli)}.json`), JSON.stringify({ label, ...d }));
    classify(label, d);
  }
}
