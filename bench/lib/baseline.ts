import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { pool, sequential, type PoolResult, type SequentialResult } from './http.js';
import { load, type LoadResult } from './load.js';
import { msSince } from './stats.js';

/**
 * The reference point for every figure: a fastify hello-world in the same process, on the same
 * machine, measured the same way in the same run. Caxton's numbers are only meaningful beside it.
 */
export interface HelloWorld {
  readonly app: FastifyInstance;
  readonly url: string;
  /** Time from `Fastify()` to listening. */
  readonly start_ms: number;
  close(): Promise<void>;
}

export async function startHelloWorld(): Promise<HelloWorld> {
  const t0 = process.hrtime.bigint();
  const app = Fastify({ logger: false });
  app.get('/', async () => ({ hello: 'world' }));
  // Accepts the same bodies Caxton is sent, so "POST with a 1 KB TOML body" has a baseline too.
  app.addContentTypeParser('application/toml', { parseAs: 'string' }, (_req, body, done) => done(null, body));
  app.post('/', async (req, reply) =>
    reply.code(201).send({ ok: true, bytes: typeof req.body === 'string' ? req.body.length : 0 }),
  );
  // A JSON POST answered with its own body: the hello-world counterpart of an invoke request.
  app.post('/echo', async (req) => req.body);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const start_ms = msSince(t0);
  const { port } = app.server.address() as AddressInfo;
  return { app, url: `http://127.0.0.1:${port}/`, start_ms, close: () => app.close() };
}

export interface BaselineOptions {
  /** autocannon run length, seconds. */
  duration: number;
  connections: number;
  /** Sequential single requests (fetch). */
  sequential: number;
  /** POSTs with `concurrency` in flight, bodies from `body(i)`; 0 skips. */
  posts?: { n: number; concurrency: number; body: (i: number) => string };
}

export interface BaselineResult {
  start_ms: number;
  autocannon: LoadResult;
  sequential: SequentialResult;
  posts?: PoolResult;
}

export async function measureBaseline(opts: BaselineOptions): Promise<BaselineResult> {
  const hw = await startHelloWorld();
  try {
    // The client (fetch/undici) runs on this thread too: warm it up first, so the baseline is not
    // penalised for compiling the client code that Caxton's later measurements then get for free.
    await sequential(2000, () => hw.url, { warmup: 0 });
    const seq = await sequential(opts.sequential, () => hw.url);
    let posts: PoolResult | undefined;
    if (opts.posts && opts.posts.n > 0) {
      const { body } = opts.posts;
      posts = await pool(opts.posts.n, opts.posts.concurrency, (i) => ({
        url: hw.url,
        init: { method: 'POST', headers: { 'content-type': 'application/toml' }, body: body(i) },
        expectStatus: 201,
      }));
    }
    const ac = await load({ url: hw.url, duration: opts.duration, connections: opts.connections });
    return { start_ms: hw.start_ms, autocannon: ac, sequential: seq, ...(posts && { posts }) };
  } finally {
    await hw.close();
  }
}
