/**
 * guardConnections (src/storage/pg/tx.ts): a server ending a session must never end the node's
 * process. The race it closes, made deterministic: a pool of one connection, a `pool.query` on it
 * and a second caller waiting for the connection; the server answers the query and, in the same
 * write, sends "terminating connection due to administrator command" (what `pg_ctl stop -m fast`
 * sends every session). pg-pool hands the connection to the waiting caller while the reply is
 * still being read, before that caller can attach a listener, so the server's error is emitted on
 * a connection with no `error` listener: an uncaught exception without the guard (a node crashed
 * this way in test/cluster/pg-restart.e2e.test.ts).
 *
 * The server is a few lines of PostgreSQL's wire protocol on a loopback socket: trust
 * authentication, and every simple query answered with an empty result.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { guardConnections } from '../../../src/storage/pg/index.js';

/** A backend message: type byte, int32 length (itself included), body. */
function message(type: string, body: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

const cstr = (s: string) => Buffer.from(`${s}\0`, 'utf8');
const int32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};

const authenticationOk = () => message('R', int32(0));
const readyForQuery = () => message('Z', Buffer.from('I'));
const commandComplete = (tag: string) => message('C', cstr(tag));
const adminShutdown = () =>
  message(
    'E',
    Buffer.concat([
      Buffer.from('S'),
      cstr('FATAL'),
      Buffer.from('V'),
      cstr('FATAL'),
      Buffer.from('C'),
      cstr('57P01'),
      Buffer.from('M'),
      cstr('terminating connection due to administrator command'),
      Buffer.from([0]),
    ]),
  );

/**
 * Accepts connections; answers each simple query with an empty result. `shutdownAfterNextQuery`:
 * the next query's answer is followed, in the same write, by the 57P01 FATAL, and the socket ends.
 */
async function fakePostgres(): Promise<{ port: number; shutdownAfterNextQuery(): void; close(): Promise<void> }> {
  let shutdown = false;
  const sockets = new Set<Socket>();
  const server: Server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    let started = false;
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (!started) {
          // The startup message: int32 length, then the protocol version and parameters.
          if (buf.length < 4 || buf.length < buf.readInt32BE(0)) return;
          buf = buf.subarray(buf.readInt32BE(0));
          started = true;
          sock.write(Buffer.concat([authenticationOk(), readyForQuery()]));
          continue;
        }
        if (buf.length < 5 || buf.length < 1 + buf.readInt32BE(1)) return;
        const type = String.fromCharCode(buf[0]!);
        buf = buf.subarray(1 + buf.readInt32BE(1));
        if (type === 'X') return void sock.end();
        if (type !== 'Q') continue;
        if (shutdown) {
          shutdown = false;
          sock.end(Buffer.concat([commandComplete('SELECT 0'), readyForQuery(), adminShutdown()]));
          return;
        }
        sock.write(Buffer.concat([commandComplete('SELECT 0'), readyForQuery()]));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    shutdownAfterNextQuery: () => (shutdown = true),
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

describe('guardConnections', () => {
  it('a session ended by the server while its connection passes to a waiting caller fails that caller, not the process', async () => {
    const server = await fakePostgres();
    cleanup.push(server.close);
    const pool = guardConnections(
      new pg.Pool({ host: '127.0.0.1', port: server.port, user: 'postgres', database: 'postgres', max: 1 }),
    );
    const poolErrors: Error[] = [];
    pool.on('error', (e) => poolErrors.push(e));
    cleanup.push(() => pool.end().catch(() => undefined));
    await pool.query('SELECT 1'); // the one connection, open and idle

    server.shutdownAfterNextQuery();
    const first = pool.query('SELECT 1');
    const waiting = pool.connect(); // the pool is full: this one waits for the first's connection
    await expect(first).resolves.toBeDefined();
    const c = await waiting;
    // It got the connection the server ended: its first statement fails as unreachable.
    const err = await c.query('SELECT 1').then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    c.release(err);
    expect(err?.message).toMatch(/not queryable|terminat/i);
    // And the pool goes on with a new connection.
    await expect(pool.query('SELECT 1')).resolves.toBeDefined();
    expect(poolErrors).toEqual([]);
  });
});
