/**
 * A real `nats-server -js` for a test (Debian's binary; `.ci/run` installs it): loopback, a port
 * of its own (below the ephemeral range, read back from its log), a JetStream store directory of
 * its own.
 * `stop()` kills it (SIGKILL: as a crash would), `restart()` starts it again on the same port and
 * store, so what JetStream had persisted comes back.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { freePorts, randomPort } from './ports.js';
import { makeTempDir } from './tmp.js';

export const NATS_SERVER = process.env.CAXTON_TEST_NATS_SERVER ?? 'nats-server';

export interface NatsServer {
  url: string;
  port: number;
  storeDir: string;
  /** The HTTP monitoring endpoint (/varz, /connz) when it was asked for (`{ monitor: true }`). */
  monitorUrl?: string;
  stop(): Promise<void>;
  restart(): Promise<void>;
}

function launch(
  port: number,
  storeDir: string,
  extra: readonly string[] = [],
): Promise<{ child: ChildProcess; port: number; monitorPort?: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      NATS_SERVER,
      [
        '-a',
        '127.0.0.1',
        '-p',
        String(port),
        '-js',
        '-sd',
        storeDir,
        ...(extra.includes('-m') ? [] : ['--http_port', '0']),
        ...extra,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let log = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`nats-server did not start within 10 s:\n${log.slice(-2000)}`));
    }, 10_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      log += d;
      const m = /Listening for client connections on [^\s]*:(\d+)/.exec(log);
      const http = /Starting http monitor on [^\s]*:(\d+)/.exec(log);
      if (m && /Server is ready/.test(log)) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]), ...(http && { monitorPort: Number(http[1]) }) });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`nats-server exited with ${code} before it was ready:\n${log.slice(-2000)}`));
    });
  });
}

const stopChild = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });

/** Starts a JetStream-enabled nats-server on a free loopback port outside the ephemeral range. */
export async function startNatsServer(opts: { monitor?: boolean } = {}): Promise<NatsServer> {
  const storeDir = makeTempDir('caxton-nats-');
  const extra = opts.monitor ? ['-m', '-1'] : [];
  for (let attempt = 1; ; attempt++) {
    const port = randomPort();
    try {
      return await startOne(port, storeDir, extra);
    } catch (e) {
      // Another test's server holds this one: try another number.
      if (attempt >= 20 || !/address already in use/.test(String(e))) throw e;
    }
  }
}

/** One server on `port` (-1: any) and `storeDir`, restartable on the port it got. */
async function startOne(wanted: number, storeDir: string, extra: readonly string[] = []): Promise<NatsServer> {
  let { child, port, monitorPort } = await launch(wanted, storeDir, extra);
  return {
    get url() {
      return `nats://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    storeDir,
    get monitorUrl() {
      return monitorPort === undefined ? undefined : `http://127.0.0.1:${monitorPort}`;
    },
    stop: () => stopChild(child),
    async restart() {
      await stopChild(child);
      ({ child, port, monitorPort } = await launch(port, storeDir, extra));
    },
  };
}

export interface NatsCluster {
  /** Every server's client URL, for a client that fails over between them. */
  urls: string[];
  servers: NatsServer[];
  /** Starts the servers held back (`startNatsCluster(size, { started })`). */
  startRest(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * `size` JetStream-enabled nats-servers clustered over routes on loopback (a replicated stream
 * survives one of three dying); each with its own client port, route port and store. With
 * `started`, only that many start now (a cluster still forming); `startRest()` starts the others.
 */
export async function startNatsCluster(size = 3, opts: { started?: number } = {}): Promise<NatsCluster> {
  const [clientPorts, routePorts] = [await freePorts(size), await freePorts(size)];
  const routes = routePorts.map((p) => `nats://127.0.0.1:${p}`).join(',');
  const name = `caxton_test_${process.pid}`;
  const start = (i: number) =>
    startOne(clientPorts[i]!, makeTempDir('caxton-natsc-'), [
      '--server_name',
      `n${i}`,
      '--cluster_name',
      name,
      '--cluster',
      `nats://127.0.0.1:${routePorts[i]}`,
      '--routes',
      routes,
    ]);
  const now = opts.started ?? size;
  const servers = await Promise.all(clientPorts.slice(0, now).map((_, i) => start(i)));
  return {
    urls: clientPorts.map((p) => `nats://127.0.0.1:${p}`),
    servers,
    async startRest() {
      const rest = await Promise.all(clientPorts.slice(servers.length).map((_, i) => start(servers.length + i)));
      servers.push(...rest);
    },
    stop: async () => void (await Promise.all(servers.map((x) => x.stop()))),
  };
}
