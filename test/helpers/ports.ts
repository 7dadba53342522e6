/**
 * Loopback ports for the servers a test starts by number (`--port`, a nats-server, a route list).
 * Below Linux's ephemeral range (32768–60999): a port the kernel hands out for `listen(0)` or for
 * an outgoing connection could be taken by another test's socket between the moment it is picked
 * and the server's bind, or while a killed server is down before its restart on the same port.
 * Nobody gets a port from this range without asking for it by number.
 */
import { createServer } from 'node:net';

const PORT_BASE = 20_000;
const PORT_SPAN = 12_000;

/** A port number of the range, free or not (a caller that binds it tries another when it is taken). */
export const randomPort = (): number => PORT_BASE + Math.floor(Math.random() * PORT_SPAN);

/** `n` distinct ports of the range that were free a moment ago. */
export async function freePorts(n: number): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < n) {
    const port = randomPort();
    if (ports.includes(port)) continue;
    const free = await new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (free) ports.push(port);
  }
  return ports;
}
