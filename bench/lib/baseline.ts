import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';

/**
 * The reference point for the HTTP figures: a fastify hello-world in the same process, on the same
 * machine, measured the same way in the same run. Caxton's numbers are only meaningful beside it.
 */
export interface HelloWorld {
  readonly app: FastifyInstance;
  readonly url: string;
  close(): Promise<void>;
}

export async function startHelloWorld(): Promise<HelloWorld> {
  const app = Fastify({ logger: false });
  app.get('/', async () => ({ hello: 'world' }));
  // A JSON POST answered with its own body: the hello-world counterpart of an invoke request.
  app.post('/echo', async (req) => req.body);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return { app, url: `http://127.0.0.1:${port}/`, close: () => app.close() };
}
