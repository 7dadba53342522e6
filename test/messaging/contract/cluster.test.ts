/**
 * The bus contract (bus-contract.ts) against the cluster's bus: one `ClusterBus` node over a real
 * `nats-server -js` started here and the machine's PostgreSQL, each case on a schema and a
 * JetStream stream of its own; a restart closes the node and starts another on the same schema
 * and stream.
 */
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { AgentRegistry } from '../../../src/agents/index.js';
import { clusterConfigSchema } from '../../../src/config/index.js';
import { ClusterBus } from '../../../src/messaging/cluster/index.js';
import { PgMessageReads, PgMessageStore } from '../../../src/messaging/postgres/index.js';
import type { InProcessHandler } from '../../../src/messaging/index.js';
import { startNatsServer, type NatsServer } from '../../helpers/nats-server.js';
import { hasSystem, TEST_PG_URL } from '../../helpers/system.js';
import { removeTempDirs } from '../../helpers/tmp.js';
import { agentDef, deploy, messagingConfig } from '../helpers.js';
import { runBusContract, type BusFactory, type ContractBus, type ContractSetup } from './bus-contract.js';
import { runOneWayContract } from './one-way.js';

const run = hasSystem('nats-server') && hasSystem('postgresql');
let nats: NatsServer | undefined;
let cases = 0;

beforeAll(async () => {
  if (run) nats = await startNatsServer();
});

afterAll(async () => {
  await nats?.stop();
  removeTempDirs();
});

/** A node on `schema` (and the stream named after it); closing it drops the schema unless it restarts. */
async function node(
  setup: ContractSetup,
  schema: string,
  pool: pg.Pool,
  registry: AgentRegistry,
  handlers: Record<string, InProcessHandler>,
): Promise<ContractBus> {
  const nc = await connect({ servers: nats!.url });
  const store = await PgMessageStore.open({ pool, schema });
  const options = {
    store,
    reads: new PgMessageReads({ store }),
    nc,
    registry,
    config: messagingConfig(setup.config),
    cluster: clusterConfigSchema.parse({
      node: 'n1',
      delivery: {
        stream: `S${schema}`,
        consumer: `c${schema}`,
        subject: `d${schema}`,
        ...(setup.inHandAtMost !== undefined && { max_held: setup.inHandAtMost }),
      },
    }),
    sweepMs: 200,
    ...(setup.tracer && { tracer: setup.tracer }),
    ...(setup.principals && { principals: setup.principals }),
  };
  const bus = new ClusterBus(options);
  for (const [agent, h] of Object.entries(handlers)) bus.registerHandler(agent, h);
  await bus.start();
  const stop = async () => {
    await bus.close();
    await nc.close();
  };
  return {
    bus,
    registry,
    async close() {
      await stop();
      await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await pool.end();
    },
    async restart(next) {
      await stop();
      return node(setup, schema, pool, registry, next);
    },
  };
}

const factory: BusFactory = (setup) => {
  const registry = new AgentRegistry();
  for (const [name, caps] of setup.agents) deploy(registry, agentDef(name, caps));
  const pool = new pg.Pool({ connectionString: TEST_PG_URL, max: 4 });
  pool.on('error', () => {});
  return node(setup, `contract_${process.pid}_${++cases}`, pool, registry, setup.handlers);
};

runBusContract('ClusterBus (PostgreSQL + JetStream)', factory, { runs: run });
runOneWayContract('ClusterBus (PostgreSQL + JetStream)', factory, { runs: run });
