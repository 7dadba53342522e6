/** The real @a2a-js/sdk client, as an A2A caller builds it, sending a Caxton key on every request. */
import {
  ClientFactory,
  ClientFactoryOptions,
  DefaultAgentCardResolver,
  JsonRpcTransportFactory,
  RestTransportFactory,
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

/**
 * A client of `agent` on the server at `base`, resolving its card first: over JSON-RPC (the card's
 * first interface), or over HTTP+JSON when `binding` says so.
 */
export async function clientFor(
  base: string,
  key: string,
  agent: string,
  binding: 'JSONRPC' | 'HTTP+JSON' = 'JSONRPC',
): Promise<Client> {
  const fetchImpl = fetchWith(key);
  const factory = new ClientFactory(
    ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
      transports: [new JsonRpcTransportFactory({ fetchImpl }), new RestTransportFactory({ fetchImpl })],
      cardResolver: new DefaultAgentCardResolver({ fetchImpl }),
      preferredTransports: [binding],
    }),
  );
  // A base with its trailing slash: the SDK resolves the well-known path relative to it.
  return factory.createFromUrl(`${base}/a2a/${agent}/`);
}
