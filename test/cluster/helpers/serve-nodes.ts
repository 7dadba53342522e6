import { afterAll } from 'vitest';
import { startTestServer, type TestServer } from '../../helpers/server.js';
import { TEST_PG_URL } from '../../helpers/system.js';

/** caxton.toml of `caxton serve` node `node` of a cluster on the NATS server at `natsUrl`, its state in `schema` of the test database. */
export const clusterToml = (node: string, natsUrl: string, schema: string): string => `
[cluster]
node = "${node}"
heartbeat = "200ms"
[cluster.nats]
urls = ["${natsUrl}"]
[cluster.state]
url = "${TEST_PG_URL}"
schema = "${schema}"
`;

/** Starts `caxton serve` nodes in this process; those it started are closed after the describe block that called it (newest first). */
export function servers(): (opts: Parameters<typeof startTestServer>[0]) => Promise<TestServer> {
  const started: TestServer[] = [];
  afterAll(async () => {
    for (const s of started.reverse()) await s.close().catch(() => {});
  });
  return async (opts) => {
    const s = await startTestServer(opts);
    started.push(s);
    return s;
  };
}
