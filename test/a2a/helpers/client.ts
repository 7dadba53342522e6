/** The real @a2a-js/sdk client, as an A2A caller builds it, sending a Caxton key on every request. */
import {
  ClientFactory,
  ClientFactoryOptions,
  DefaultAgentCardResolver,
  JsonRpcTransportFactory,
  type Client,
} from '@a2a-js/sdk/client';

/** fetch with the key's credential on every request (card and calls). */
export const fetchWith =
  (key: string): typeof fetch =>
  (input, init) => {
    const headers = new Headers(init?.headers);
    headers.set('authorization', `Bearer ${key}`);
    return fetch(input, { ...init, headers });
  };

/** A client of `agent` on the server at `base`, over JSON-RPC, resolving its card first. */
export async function clientFor(base: string, key: string, agent: string): Promise<Client> {
  const fetchImpl = fetchWith(key);
  const factory = new ClientFactory(
    ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
      transports: [new JsonRpcTransportFactory({ fetchImpl })],
      cardResolver: new DefaultAgentCardResolver({ fetchImpl }),
    }),
  );
  // A base with its trailing slash: the SDK resolves the well-known path relative to it.
  return factory.createFromUrl(`${base}/a2a/${agent}/`);
}
