import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import type { Transform } from 'node:stream';
import { TEST_PG_URL } from './system.js';

/**
 * A TCP relay on 127.0.0.1 in front of a real service (PostgreSQL, NATS), which a test can cut
 * and restore: the network failure between a node and a dependency, without stopping the
 * dependency other tests share. While cut, every open connection is destroyed and new ones are
 * closed as soon as they arrive (the peer sees a reset, as when a link goes down).
 */
export interface TcpProxy {
  readonly port: number;
  /** Connections relayed so far. */
  readonly accepted: number;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

/** `down`: a filter of each connection's service → client bytes (e.g. one that loses a frame: test/helpers/nats-frames.ts). */
export async function startTcpProxy(
  target: { host: string; port: number },
  opts: { down?: () => Transform } = {},
): Promise<TcpProxy> {
  const open = new Set<Socket>();
  let cut = false;
  let accepted = 0;
  const server = createServer((client) => {
    if (cut) {
      client.destroy();
      return;
    }
    accepted++;
    const upstream = connect(target.port, target.host);
    open.add(client);
    open.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    if (opts.down) upstream.pipe(opts.down()).pipe(client);
    else upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    get accepted() {
      return accepted;
    },
    cut() {
      cut = true;
      for (const s of open) s.destroy();
      open.clear();
    },
    restore() {
      cut = false;
    },
    close() {
      for (const s of open) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** A cuttable link to the machine's PostgreSQL (`TEST_PG_URL`), and the URL that goes through it. */
export async function startPgProxy(): Promise<{ proxy: TcpProxy; url: string }> {
  const u = new URL(TEST_PG_URL);
  const proxy = await startTcpProxy({ host: u.hostname || '127.0.0.1', port: Number(u.port || 5432) });
  u.hostname = '127.0.0.1';
  u.port = String(proxy.port);
  return { proxy, url: u.toString() };
}
