/**
 * Several real `caxton serve` processes acting as one cluster, for the system tests in
 * test/cluster/*.e2e.test.ts: one `nats-server -js` per test file (test/helpers/nats-server.ts),
 * one fresh PostgreSQL schema per test file (dropped by close(); on the shared test server, or on
 * a test's own given as `pgUrl`), and per node its own directory
 * with its own caxton.toml, data dir and scripted-provider script, so the reply of an agent names
 * the node that ran it. A node's link to NATS or to PostgreSQL may go through a TCP relay the test
 * can cut (test/helpers/tcp-proxy.ts). A node can be killed (SIGKILL, as a crash) and restarted
 * with the same configuration on the same ports (the URL it advertises does not change).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import {
  assertBuilt,
  cleanup as cleanupCli,
  freePorts,
  startServe,
  stopServe,
  tempDir,
  type ServeProcess,
} from '../../cli/helpers/cli.js';
import { startNatsServer, type NatsServer } from '../../helpers/nats-server.js';
import { TEST_PG_URL } from '../../helpers/system.js';
import { startTcpProxy, type TcpProxy } from '../../helpers/tcp-proxy.js';
import { removeTempDirs } from '../../helpers/tmp.js';

/** What a node's scripted agents answer: every reply names the node (`<node> did it`). */
export function nodeScript(node: string, latencyMs = 0): string {
  return [
    `latency_ms = ${latencyMs}`,
    `fallback = "${node} did it"`,
    '',
    '# Contract Net: the winner carries out the task (the prompt of accept-proposal).',
    '[[rules]]',
    'name = "award"',
    'match = "Your proposal was accepted"',
    `content = "${node} did it"`,
    '',
    '# Contract Net: every bidder proposes the same price; the proposal names the node.',
    '[[rules]]',
    'name = "bid"',
    'match = "This is a call for proposals"',
    `content = "PROPOSE: ${node} bids, price: 10"`,
    '',
  ].join('\n');
}

/** The node named in a reply made by nodeScript (undefined for anything else). */
export function nodeOf(content: unknown): string | undefined {
  if (typeof content !== 'string') return undefined;
  return /^(?:PROPOSE:\s*)?(\S+) (?:did it|bids)/.exec(content)?.[1];
}

export interface NodeSpec {
  name: string;
  /** The script of this node's scripted provider (default: nodeScript(name, latencyMs)). */
  script?: string;
  /** This node reaches NATS through a TCP relay (`node.natsProxy`), which the test can cut. */
  proxyNats?: boolean;
  /** This node reaches PostgreSQL through a TCP relay (`node.pgProxy`), which the test can cut. */
  proxyPg?: boolean;
}

export interface ClusterOptions {
  nodes: NodeSpec[];
  /** `[cluster] heartbeat` (default 500ms). */
  heartbeat?: string;
  /** `[cluster.delivery] ack_wait` (default 3s). */
  ackWait?: string;
  /** `[cluster.delivery] publish_timeout` (default 1s: a submission with NATS down fails fast). */
  publishTimeout?: string;
  /** `[cluster.nats] connect_timeout` (default 2s). */
  connectTimeout?: string;
  /** Scripted reply latency of every node (default 20 ms: deliveries are in flight long enough to be interrupted). */
  latencyMs?: number;
  /** `[messaging] agent_concurrency` (default 16). */
  agentConcurrency?: number;
  /** More TOML appended to every node's caxton.toml (after the tables this harness writes). */
  extraToml?: string;
  /** Log level of the nodes (default $CAXTON_TEST_CLUSTER_LOG or "warn"). */
  logLevel?: string;
  /** Longest a node may take to answer GET /ready with 200 (default 30 s: three nodes start together on a slow machine). */
  readyTimeoutMs?: number;
  /**
   * The PostgreSQL every node's `[cluster.state]` points at (default TEST_PG_URL, the shared test
   * server): a server of the test's own that it may stop (helpers/private-postgres.ts).
   */
  pgUrl?: string;
}

export interface ClusterNode {
  readonly name: string;
  readonly dir: string;
  readonly configPath: string;
  readonly port: number;
  readonly metricsPort: number;
  /** http://127.0.0.1:PORT, the API (and [cluster] advertise_url). */
  readonly url: string;
  readonly natsProxy: TcpProxy | undefined;
  readonly pgProxy: TcpProxy | undefined;
  /** The process running now (undefined after kill() until restart()). */
  readonly serve: ServeProcess | undefined;
  readonly alive: boolean;
  /** stdout + stderr of every process of this node so far (restarts included), for failure messages. */
  output(): string;
}

export interface TestCluster {
  readonly nats: NatsServer;
  /** The PostgreSQL schema every node shares (dropped by close()). */
  readonly schema: string;
  readonly nodes: readonly ClusterNode[];
  node(name: string): ClusterNode;
  /** kill -9: the node stops at once, holding what it held (JetStream redelivers after ack_wait). */
  kill(name: string): Promise<void>;
  /** SIGTERM and wait for the exit (a clean stop). */
  stop(name: string, timeoutMs?: number): Promise<void>;
  /** Starts the node again (killing it first if it runs) with the same caxton.toml, data dir and ports; resolves once GET /ready answers 200. */
  restart(name: string): Promise<ClusterNode>;
  /** Replaces a node's script (the scripted provider reads it again when it changes; no restart). */
  setScript(name: string, script: string): void;
  /** The last `chars` characters of every node's output, labelled, for failure messages. */
  logs(chars?: number): string;
  /** Kills every node, stops nats-server, closes the relays, drops the schema, removes the temp dirs. */
  close(): Promise<void>;
}

interface NodeState {
  name: string;
  dir: string;
  configPath: string;
  port: number;
  metricsPort: number;
  url: string;
  natsProxy: TcpProxy | undefined;
  pgProxy: TcpProxy | undefined;
  serve: ServeProcess | undefined;
  previous: string[];
}

function pgTarget(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname || '127.0.0.1', port: Number(u.port || 5432) };
}

/** `url` with its host and port replaced by the relay's. */
function viaProxy(url: string, proxy: TcpProxy): string {
  const u = new URL(url);
  u.hostname = '127.0.0.1';
  u.port = String(proxy.port);
  return u.toString();
}

const q = (s: string) => JSON.stringify(s);

function nodeToml(o: {
  node: NodeState;
  natsUrl: string;
  pgUrl: string;
  schema: string;
  heartbeat: string;
  ackWait: string;
  publishTimeout: string;
  connectTimeout: string;
  agentConcurrency: number;
  logLevel: string;
  extra: string;
}): string {
  return `# Node ${o.node.name} of a test cluster (test/cluster/helpers/nodes.ts).
data_dir = "data"
agents_dir = "agents"

[server]
host = "127.0.0.1"

# Loopback only: the cluster tests are about delivery, not authentication (test/auth covers it).
[auth]
enabled = false

[logging]
level = ${q(o.logLevel)}

[llm]
default_provider = "demo"

[llm.providers.demo]
type = "scripted"
script = "replies.toml"

[messaging]
agent_concurrency = ${o.agentConcurrency}

[cluster]
node = ${q(o.node.name)}
advertise_url = ${q(o.node.url)}
heartbeat = ${q(o.heartbeat)}

[cluster.nats]
urls = [${q(o.natsUrl)}]
connect_timeout = ${q(o.connectTimeout)}

[cluster.state]
url = ${q(o.pgUrl)}
schema = ${q(o.schema)}

[cluster.delivery]
ack_wait = ${q(o.ackWait)}
publish_timeout = ${q(o.publishTimeout)}
${o.extra}
`;
}

function view(s: NodeState): ClusterNode {
  return {
    name: s.name,
    dir: s.dir,
    configPath: s.configPath,
    port: s.port,
    metricsPort: s.metricsPort,
    url: s.url,
    natsProxy: s.natsProxy,
    pgProxy: s.pgProxy,
    get serve() {
      return s.serve;
    },
    get alive() {
      return s.serve !== undefined && s.serve.child.exitCode === null && s.serve.child.signalCode === null;
    },
    output: () => [...s.previous, s.serve ? `${s.serve.stdout()}${s.serve.stderr()}` : ''].join('\n--- (restarted)\n'),
  };
}

/**
 * Starts nats-server, creates nothing in PostgreSQL (the nodes create their schema), writes each
 * node's directory and starts all nodes at once; resolves when every node answers GET /ready 200.
 * On failure everything started is stopped again and the error names the node and its output.
 */
export async function startCluster(opts: ClusterOptions): Promise<TestCluster> {
  assertBuilt();
  const schema = `c3_${randomBytes(6).toString('hex')}`;
  const nats = await startNatsServer();
  const states: NodeState[] = [];
  const relays: TcpProxy[] = [];
  const readyTimeoutMs = opts.readyTimeoutMs ?? 30_000;
  const logLevel = opts.logLevel ?? process.env.CAXTON_TEST_CLUSTER_LOG ?? 'warn';
  const pgUrl = opts.pgUrl ?? TEST_PG_URL;

  const startNode = async (s: NodeState): Promise<void> => {
    s.serve = await startServe({
      cwd: s.dir,
      args: ['--config', s.configPath],
      port: s.port,
      metricsPort: s.metricsPort,
      readyTimeoutMs,
    }).catch((e: unknown) => {
      throw new Error(`node ${s.name}: ${(e as Error).message}`);
    });
  };

  /**
   * A node's first start. Its ports were free when freePorts chose them, but another test's
   * process, or a connection's local port, may have taken one since: the node then gets new ones
   * (its caxton.toml written again, as it advertises its URL) and starts again.
   */
  const firstStart = async (s: NodeState, writeConfig: () => void): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await startNode(s);
      } catch (e) {
        if (attempt >= 3 || !/address already in use/.test((e as Error).message)) throw e;
        [s.port, s.metricsPort] = (await freePorts(2)) as [number, number];
        s.url = `http://127.0.0.1:${s.port}`;
        writeConfig();
      }
    }
  };

  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await cleanupCli(); // SIGKILL to every caxton process still running, and their temp dirs
    for (const r of relays) await r.close().catch(() => undefined);
    await nats.stop();
    const client = new pg.Client({ connectionString: pgUrl, connectionTimeoutMillis: 5000 });
    try {
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    } catch (e) {
      // A test's own server (opts.pgUrl) is removed whole by its owner, and may be down by now.
      if (opts.pgUrl === undefined) throw e;
    } finally {
      await client.end().catch(() => undefined);
      removeTempDirs();
    }
  };

  try {
    const ports = await freePorts(opts.nodes.length * 2);
    const writers = new Map<NodeState, () => void>();
    for (const [i, spec] of opts.nodes.entries()) {
      const dir = tempDir(`caxton-node-${spec.name}-`);
      mkdirSync(join(dir, 'agents'));
      const port = ports[2 * i]!;
      const natsProxy = spec.proxyNats ? await startTcpProxy({ host: '127.0.0.1', port: nats.port }) : undefined;
      const pgProxy = spec.proxyPg ? await startTcpProxy(pgTarget(pgUrl)) : undefined;
      if (natsProxy) relays.push(natsProxy);
      if (pgProxy) relays.push(pgProxy);
      const s: NodeState = {
        name: spec.name,
        dir,
        configPath: join(dir, 'caxton.toml'),
        port,
        metricsPort: ports[2 * i + 1]!,
        url: `http://127.0.0.1:${port}`,
        natsProxy,
        pgProxy,
        serve: undefined,
        previous: [],
      };
      writeFileSync(join(dir, 'replies.toml'), spec.script ?? nodeScript(spec.name, opts.latencyMs ?? 20));
      const writeConfig = () =>
        writeFileSync(
          s.configPath,
          nodeToml({
            node: s,
            natsUrl: natsProxy ? `nats://127.0.0.1:${natsProxy.port}` : nats.url,
            pgUrl: pgProxy ? viaProxy(pgUrl, pgProxy) : pgUrl,
            schema,
            heartbeat: opts.heartbeat ?? '500ms',
            ackWait: opts.ackWait ?? '3s',
            publishTimeout: opts.publishTimeout ?? '1s',
            connectTimeout: opts.connectTimeout ?? '2s',
            agentConcurrency: opts.agentConcurrency ?? 16,
            logLevel,
            extra: opts.extraToml ?? '',
          }),
        );
      writeConfig();
      writers.set(s, writeConfig);
      states.push(s);
    }
    await Promise.all(states.map((s) => firstStart(s, writers.get(s)!)));
  } catch (e) {
    await close().catch(() => undefined);
    throw e;
  }

  const byName = (name: string): NodeState => {
    const s = states.find((x) => x.name === name);
    if (!s) throw new Error(`no node named ${name} (nodes: ${states.map((x) => x.name).join(', ')})`);
    return s;
  };
  const retire = (s: NodeState) => {
    if (s.serve) s.previous.push(`${s.serve.stdout()}${s.serve.stderr()}`);
    s.serve = undefined;
  };

  return {
    nats,
    schema,
    nodes: states.map(view),
    node: (name) => view(byName(name)),
    async kill(name) {
      const s = byName(name);
      if (!s.serve) return;
      await stopServe(s.serve, 'SIGKILL');
      retire(s);
    },
    async stop(name, timeoutMs = 10_000) {
      const s = byName(name);
      if (!s.serve) return;
      await stopServe(s.serve, 'SIGTERM', timeoutMs);
      retire(s);
    },
    async restart(name) {
      const s = byName(name);
      if (s.serve) {
        await stopServe(s.serve, 'SIGKILL');
        retire(s);
      }
      await startNode(s);
      return view(s);
    },
    setScript(name, script) {
      writeFileSync(join(byName(name).dir, 'replies.toml'), script);
    },
    logs(chars = 3000) {
      return states
        .map((s) => `--- node ${s.name} (${s.serve ? 'running' : 'stopped'})\n${view(s).output().slice(-chars)}`)
        .join('\n');
    },
    close,
  };
}
