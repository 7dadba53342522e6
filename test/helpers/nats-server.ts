/**
 * A real `nats-server -js` for a test (Debian's binary; `.ci/run` installs it): loopback, a port
 * of its own (chosen by the server, read from its log), a JetStream store directory of its own.
 * `stop()` kills it (SIGKILL: as a crash would), `restart()` starts it again on the same port and
 * store, so what JetStream had persisted comes back.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { makeTempDir } from './tmp.js';

export const NATS_SERVER = process.env.CAXTON_TEST_NATS_SERVER ?? 'nats-server';

export interface NatsServer {
  url: string;
  port: number;
  storeDir: string;
  stop(): Promise<void>;
  restart(): Promise<void>;
}

function launch(port: number, storeDir: string): Promise<{ child: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(NATS_SERVER, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir, '--http_port', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
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
      if (m && /Server is ready/.test(log)) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]) });
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

/** Starts a JetStream-enabled nats-server on a free loopback port. */
export async function startNatsServer(): Promise<NatsServer> {
  const storeDir = makeTempDir('caxton-nats-');
  let { child, port } = await launch(-1, storeDir);
  return {
    get url() {
      return `nats://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    storeDir,
    stop: () => stopChild(child),
    async restart() {
      await stopChild(child);
      ({ child, port } = await launch(port, storeDir));
    },
  };
}
