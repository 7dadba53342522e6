/**
 * `caxton serve` processes for the cluster benchmarks (bench/cluster.ts, bench/cluster-rows.ts):
 * each node its own process on a `caxton.toml` written for it, one keep-alive HTTP pool per node,
 * and the receiving agent every node learns from the directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool, type Dispatcher } from 'undici';

/** The built CLI every node runs (`npm run build`). */
export const CAXTON_MAIN = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
/** The agent every benchmark message is sent to. */
export const SINK = 'bench-sink';
/** Messages one agent takes at once on each node (its `[messaging] max_concurrency`): enough that the agent's lane is not the bottleneck. */
const AGENT_CONCURRENCY = 64;

export const content = (i: number): string => `payload ${i} `.padEnd(200, 'x');
/** A wall-clock time with sub-millisecond resolution, comparable across processes on one machine. */
export const wallNow = (): number => performance.timeOrigin + performance.now();
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** The names one cluster's nodes agree on; fresh for each cluster so runs do not see each other. */
export interface ClusterNames {
  schema: string;
  stream: string;
  subject: string;
  consumer: string;
  nodes_bucket: string;
}

export function clusterNames(tag: string): ClusterNames {
  return {
    schema: `caxton_bench_nodes_${tag}`,
    stream: `BENCH_NODES_${tag}`,
    subject: `bench.nodes${tag}`,
    consumer: `deliverer_${tag}`,
    nodes_bucket: `bench_nodes_${tag}`,
  };
}

export interface Node {
  name: string;
  url: string;
  key: string;
  child: ChildProcess;
  pid: number;
  log: string;
  metricsUrl: string;
}

export interface NodeOptions {
  natsUrl: string;
  pgUrl: string;
  /** The build this node runs (default CAXTON_MAIN): two builds side by side in one run. */
  main?: string;
}

export function logTail(file: string): string {
  try {
    return readFileSync(file, 'utf8').slice(-3000);
  } catch {
    return '(no log)';
  }
}

export async function startNode(root: string, name: string, names: ClusterNames, opts: NodeOptions): Promise<Node> {
  const dir = join(root, name);
  mkdirSync(join(dir, 'agents'), { recursive: true });
  const [port, metricsPort] = [await freePort(), await freePort()];
  writeFileSync(join(dir, 'replies.toml'), '[[rules]]\ncontent = "noted"\n');
  writeFileSync(
    join(dir, 'caxton.toml'),
    `data_dir = "data"
agents_dir = "agents"

[server]
host = "127.0.0.1"

[logging]
level = "warn"

[llm]
default_provider = "bench"

[llm.providers.bench]
type = "scripted"
script = "replies.toml"

[cluster]
node = "${name}"
advertise_url = "http://127.0.0.1:${port}"
heartbeat = "1s"
nodes_bucket = "${names.nodes_bucket}"

[cluster.state]
url_env = "CAXTON_BENCH_STATE_URL"
schema = "${names.schema}"

[cluster.nats]
urls = ["${opts.natsUrl}"]

[cluster.delivery]
stream = "${names.stream}"
subject = "${names.subject}"
consumer = "${names.consumer}"
`,
  );
  // The environment's own CAXTON_SECTION__KEY overrides must not leak into the nodes' configuration.
  const env: NodeJS.ProcessEnv = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^CAXTON_[A-Z0-9_]*__/.test(k)),
  );
  env.CAXTON_BENCH_STATE_URL = opts.pgUrl;
  const log = join(dir, 'serve.log');
  const fd = openSync(log, 'a');
  const child = spawn(
    process.execPath,
    [
      // BENCH_CLUSTER_NODE_ARGS: node options for every node, e.g. "--cpu-prof --cpu-prof-dir=DIR".
      ...(process.env.BENCH_CLUSTER_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
      opts.main ?? CAXTON_MAIN,
      'serve',
      '--config',
      join(dir, 'caxton.toml'),
      '--port',
      String(port),
      '--metrics-port',
      String(metricsPort),
    ],
    { env, stdio: ['ignore', fd, fd] },
  );
  closeSync(fd);
  const url = `http://127.0.0.1:${port}`;
  const t0 = Date.now();
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(
        `caxton serve (node ${name}) exited with ${child.exitCode ?? child.signalCode} before it was ready:\n${logTail(log)}`,
      );
    if (Date.now() - t0 > 60_000) {
      child.kill('SIGKILL');
      throw new Error(`caxton serve (node ${name}) was not ready within 60 s:\n${logTail(log)}`);
    }
    const ok = await fetch(`${url}/ready`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) break;
    await sleep(100);
  }
  const key = readFileSync(join(dir, 'data', 'admin.key'), 'utf8').trim();
  return { name, url, key, child, pid: child.pid!, log, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics` };
}

export async function stopNode(n: Node): Promise<void> {
  await closePool(n.url);
  if (n.child.exitCode !== null || n.child.signalCode !== null) return;
  const exited = new Promise<void>((r) => n.child.once('exit', () => r()));
  n.child.kill('SIGTERM');
  const timer = setTimeout(() => n.child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

/**
 * One keep-alive pool per origin. Why not fetch: the driver shares the machine's two cores with
 * the processes it measures, and undici's `request` costs it about a third of fetch's CPU per call.
 */
const pools = new Map<string, Pool>();
let poolConnections = 72;

/** Connections each origin's pool opens (set before the first request): at least the requests kept in flight. */
export function setPoolConnections(n: number): void {
  poolConnections = n;
}

const poolOf = (origin: string) => {
  let p = pools.get(origin);
  if (!p) pools.set(origin, (p = new Pool(origin, { connections: poolConnections, pipelining: 1 })));
  return p;
};

export async function closePool(origin: string): Promise<void> {
  const p = pools.get(origin);
  pools.delete(origin);
  await p?.close();
}

/** One HTTP request on the origin's keep-alive pool; the body parsed as JSON when it is JSON. */
export async function httpCall(
  origin: string,
  method: string,
  path: string,
  opts: { body?: string; type?: string; key?: string } = {},
): Promise<{ status: number; json: unknown }> {
  const res = await poolOf(origin).request({
    path,
    method: method as Dispatcher.HttpMethod,
    headers: {
      ...(opts.key !== undefined && { authorization: `Bearer ${opts.key}` }),
      ...(opts.body !== undefined && { 'content-type': opts.type ?? 'application/json' }),
    },
    ...(opts.body !== undefined && { body: opts.body }),
  });
  const text = await res.body.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {
    // Not JSON: kept as text.
  }
  return { status: res.statusCode, json };
}

export function api(
  n: Node,
  method: string,
  path: string,
  body?: string,
  type = 'application/json',
): Promise<{ status: number; json: unknown }> {
  return httpCall(n.url, method, path, { key: n.key, ...(body !== undefined && { body, type }) });
}

/** Deploys the receiver on the first node and waits until every node has it from the directory. */
export async function deploySink(nodes: Node[]): Promise<void> {
  const toml = `name = "${SINK}"\ncapabilities = ["bench-sink"]\nsystem_prompt = "You receive benchmark messages."\n\n[messaging]\nmax_concurrency = ${AGENT_CONCURRENCY}\n`;
  const r = await api(nodes[0]!, 'POST', '/api/v1/agents', toml, 'application/toml');
  if (r.status !== 201)
    throw new Error(`deploying ${SINK} on node ${nodes[0]!.name} answered ${r.status}: ${JSON.stringify(r.json)}`);
  for (const n of nodes) {
    const t0 = Date.now();
    while ((await api(n, 'GET', `/api/v1/agents/${SINK}`)).status !== 200) {
      if (Date.now() - t0 > 10_000)
        throw new Error(`node ${n.name} did not learn of ${SINK} from the directory within 10 s`);
      await sleep(20);
    }
  }
}
