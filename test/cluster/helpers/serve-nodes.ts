import pg from 'pg';
import { stringify } from 'smol-toml';
import { stubLlmSection } from '../../execution/helpers/llm-stub.js';
import { afterAll, beforeAll } from 'vitest';
import { startNatsServer, type NatsServer } from '../../helpers/nats-server.js';
import { startTestServer, type TestServer } from '../../helpers/server.js';
import { hasSystem, TEST_PG_URL } from '../../helpers/system.js';
import { removeTempDirs } from '../../helpers/tmp.js';

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

/**
 * caxton.toml of `caxton serve` node `node` of the cluster of `fx`, authentication off, its model
 * the OpenAI stand-in at `stubUrl`; `cluster` adds keys to `[cluster]` (timers), `extra` top-level
 * sections.
 */
export function stubNodeToml(o: {
  node: string;
  stubUrl: string;
  fx: ClusterFixture;
  cluster?: Record<string, unknown>;
  extra?: Record<string, unknown>;
}): string {
  return stringify({
    data_dir: './data',
    agents_dir: './agents',
    logging: { level: 'warn' },
    auth: { enabled: false },
    llm: stubLlmSection(o.stubUrl),
    ...o.extra,
    cluster: {
      node: o.node,
      heartbeat: '200ms',
      nats: { urls: [o.fx.nats.url] },
      state: { url: TEST_PG_URL, schema: o.fx.schema },
      ...o.cluster,
    },
  });
}

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

/** What the nodes of one test file share: a nats-server and a schema of the test database. */
export interface ClusterFixture {
  /** Whether nats-server and PostgreSQL are there (else nothing is started: skip the tests). */
  readonly run: boolean;
  /** The file's own schema, dropped after it. */
  readonly schema: string;
  readonly nats: NatsServer;
  /** A small pool on the test database, to read or change what the nodes wrote. */
  readonly pool: pg.Pool;
}

/**
 * Starts a nats-server and a pool on a fresh schema (`caxton_NAME_…`) before the file's tests and
 * stops them, drops the schema and removes the temporary folders after. Call at the top of the file.
 */
export function clusterFixture(name: string): ClusterFixture {
  const run = hasSystem('nats-server') && hasSystem('postgresql');
  const schema = `caxton_${name}_${process.pid}_${Date.now()}`;
  let nats: NatsServer | undefined;
  let pool: pg.Pool | undefined;
  beforeAll(async () => {
    if (!run) return;
    nats = await startNatsServer();
    pool = new pg.Pool({ connectionString: TEST_PG_URL, max: 2 });
  }, 30_000);
  afterAll(async () => {
    await nats?.stop();
    if (pool) {
      await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await pool.end();
    }
    removeTempDirs();
  });
  const started = <T>(v: T | undefined): T => {
    if (v === undefined) throw new Error('the cluster fixture is used before its beforeAll ran');
    return v;
  };
  return {
    run,
    schema,
    get nats() {
      return started(nats);
    },
    get pool() {
      return started(pool);
    },
  };
}
