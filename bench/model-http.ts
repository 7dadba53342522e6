/**
 * What a call to a model over HTTP costs the caller. Two parts, each against an OpenAI-compatible
 * stand-in that answers at once, alone in its own process (bench/lib/model-stub.mjs):
 *
 * 1. Client CPU per POST in this process, sequential: Caxton's own call (`postJson` of src/llm)
 *    beside the global `fetch` (the other transports are compared in ADR 0135). Reps alternate.
 * 2. Server CPU per invoke of `caxton serve`'s build (bench/lib/model-http-server.mjs): the same
 *    agent on the scripted model and on the OpenAI-compatible model, each server in its own
 *    process, loaded in alternated rounds by autocannon; the CPU is the server's main thread's
 *    own account (/proc/PID/task/PID/schedstat).
 *
 *   npm run bench -- model-http      (BENCH_ROUNDS, BENCH_DURATION, BENCH_CONNECTIONS, BENCH_QUERIES)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { postJson } from '../src/llm/provider-http.js';
import type { ProviderConfig } from '../src/llm/index.js';
import { load } from './lib/load.js';
import { note } from './lib/progress.js';
import { threadCpuMs } from './lib/proc-cpu.js';
import type { Row, Suite, SuiteReport } from './lib/report.js';
import { envNumber, median } from './lib/stats.js';

const env = envNumber;
const ROUNDS = env('BENCH_ROUNDS', 5);
const SECONDS = env('BENCH_DURATION', 4);
const CONNECTIONS = env('BENCH_CONNECTIONS', 10);
const POSTS = env('BENCH_QUERIES', 2000);
const here = dirname(fileURLToPath(import.meta.url));
const self = resolve(here, '..');

interface Child {
  child: ChildProcess;
  line: string;
}

async function child(script: string, args: string[]): Promise<Child> {
  const c = spawn(process.execPath, [join(here, 'lib', script), ...args], {
    cwd: self,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((ok, fail) => {
    c.once('exit', (code) => fail(new Error(`${script} ${args.join(' ')} exited ${code}`)));
    createInterface({ input: c.stdout! }).once('line', ok);
  });
  return { child: c, line: line.trim() };
}

async function stop(children: Child[]): Promise<void> {
  for (const c of children) c.child.stdin!.end();
  await Promise.all(children.map((c) => new Promise((ok) => c.child.once('exit', ok))));
}

const spread = (xs: number[], d = 1) =>
  `${median(xs).toFixed(d)} (${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)})`;

/** A chat request about the size an agent's first turn sends. */
const REQUEST = {
  model: 'stub',
  messages: [
    { role: 'system', content: 'Answer briefly. '.repeat(20) },
    { role: 'user', content: 'hello' },
  ],
};

type Post = () => Promise<unknown>;

function clients(base: string): Record<string, Post> {
  const url = new URL(`${base}/chat/completions`);
  const headers = { 'content-type': 'application/json', accept: 'application/json' };
  const config: ProviderConfig = { type: 'openai', timeout_ms: 30_000, max_retries: 0, retry_base_ms: 500 };
  const target = { provider: 'bench', model: 'stub', baseUrl: base, config };
  return {
    fetch: async () => {
      const res = await fetch(url, { method: 'POST', headers, body: JSON.stringify(REQUEST) });
      return JSON.parse(await res.text());
    },
    "Caxton's postJson": () => postJson(target, { url: url.href, headers: {}, body: REQUEST }),
  };
}

/** Client CPU µs per sequential POST (main thread). */
async function clientRep(post: Post, n: number): Promise<number> {
  const c0 = threadCpuMs(process.pid);
  for (let i = 0; i < n; i++) await post();
  return ((threadCpuMs(process.pid) - c0) * 1000) / n;
}

async function serverRep(s: Child): Promise<{ rps: number; us: number }> {
  const pid = s.child.pid!;
  const c0 = threadCpuMs(pid);
  const r = await load({
    url: s.line,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ request: 'hello' }),
    duration: SECONDS,
    connections: CONNECTIONS,
  });
  if (r.non2xx + r.errors > 0) throw new Error(`${s.line}: ${r.non2xx} non-2xx, ${r.errors} errors`);
  return { rps: r.req_per_s, us: ((threadCpuMs(pid) - c0) * 1000) / r.requests };
}

export const modelHttpSuite: Suite = {
  name: 'model-http',
  description:
    'a model call over HTTP: client CPU per POST by transport, server CPU per invoke beside the scripted model',
  async run(): Promise<SuiteReport> {
    const stub = await child('model-stub.mjs', []);
    const started: Child[] = [stub];
    try {
      // Part 1: the transports, alternated.
      const cs = clients(stub.line);
      const names = Object.keys(cs);
      const client: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
      for (const n of names) await clientRep(cs[n]!, 300); // warm-up
      for (let r = 0; r < ROUNDS; r++) {
        const order = r % 2 === 0 ? names : [...names].reverse();
        for (const n of order) client[n]!.push(await clientRep(cs[n]!, POSTS));
        note(
          `model-http: client round ${r + 1}/${ROUNDS}: ${order.map((n) => `${n} ${client[n]!.at(-1)!.toFixed(1)} µs`).join(', ')}`,
        );
      }

      // Part 2: the server on each model, alternated.
      const scripted = await child('model-http-server.mjs', ['scripted']);
      started.push(scripted);
      const openai = await child('model-http-server.mjs', ['openai', stub.line]);
      started.push(openai);
      const servers: Record<string, Child> = { scripted, openai };
      const names2 = Object.keys(servers);
      const server: Record<string, { rps: number[]; us: number[] }> = Object.fromEntries(
        names2.map((n) => [n, { rps: [], us: [] }]),
      );
      for (const s of Object.values(servers)) await serverRep(s); // warm-up
      const ratio: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        const order = r % 2 === 0 ? names2 : [...names2].reverse();
        for (const n of order) {
          const m = await serverRep(servers[n]!);
          server[n]!.rps.push(m.rps);
          server[n]!.us.push(m.us);
        }
        ratio.push(server.openai!.us.at(-1)! / server.scripted!.us.at(-1)!);
        note(
          `model-http: server round ${r + 1}/${ROUNDS}: ${names2.map((n) => `${n} ${server[n]!.us.at(-1)!.toFixed(1)} µs`).join(', ')}`,
        );
      }

      const fetchUs = median(client.fetch!);
      const rows: Row[] = names.map((n) => ({
        metric: `client CPU per sequential POST, ${n} (µs, median (min–max) of ${ROUNDS})`,
        value: spread(client[n]!),
        baseline:
          n === 'fetch' ? '—' : `fetch ${fetchUs.toFixed(1)} µs: ${(median(client[n]!) / fetchUs).toFixed(2)} ×`,
      }));
      const r = median(ratio);
      rows.push(
        {
          metric: `server CPU per invoke, OpenAI-compatible model over HTTP (µs, ${CONNECTIONS} connections)`,
          value: spread(server.openai!.us),
          baseline: `scripted model ${spread(server.scripted!.us)}`,
        },
        {
          metric: 'the same, OpenAI-compatible / scripted (median of per-round ratios)',
          value: `${r.toFixed(2)} × (${Math.min(...ratio).toFixed(2)}–${Math.max(...ratio).toFixed(2)})`,
          baseline: '1',
          target: '≤ 2 ×',
          verdict: r <= 2 ? 'pass' : 'fail',
        },
        {
          metric: 'throughput, OpenAI-compatible model (req/s)',
          value: spread(server.openai!.rps, 0),
          baseline: `scripted model ${spread(server.scripted!.rps, 0)}`,
        },
      );
      return {
        rows,
        raw: {
          client,
          server,
          ratio,
          rounds: ROUNDS,
          posts: POSTS,
          seconds: SECONDS,
          connections: CONNECTIONS,
        },
      };
    } finally {
      await stop(started);
    }
  },
};
