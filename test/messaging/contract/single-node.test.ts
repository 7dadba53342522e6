/**
 * The bus contract (bus-contract.ts) against the single node's bus: `MessageBus` over a real
 * SQLite file in a directory of its own per case; a restart closes the bus and its database and
 * opens both again on the same file.
 */
import { afterAll } from 'vitest';
import { AgentRegistry } from '../../../src/agents/index.js';
import { type InProcessHandler } from '../../../src/messaging/index.js';
import { MESSAGING_MIGRATIONS, MessageBus } from '../../../src/messaging/sqlite/index.js';
import { migrate, openDatabase } from '../../../src/storage/index.js';
import { makeTempDir, removeTempDirs } from '../../helpers/tmp.js';
import { agentDef, deploy, messagingConfig } from '../helpers.js';
import { runBusContract, type BusFactory, type ContractBus, type ContractSetup } from './bus-contract.js';
import { runOneWayContract } from './one-way.js';

afterAll(() => removeTempDirs());

function open(
  setup: ContractSetup,
  dir: string,
  registry: AgentRegistry,
  handlers: Record<string, InProcessHandler>,
): ContractBus {
  const db = openDatabase(dir);
  migrate(db, MESSAGING_MIGRATIONS);
  const bus = new MessageBus({
    db,
    registry,
    config: messagingConfig(setup.config),
    ...(setup.tracer && { tracer: setup.tracer }),
    ...(setup.principals && { principals: setup.principals }),
  });
  for (const [agent, h] of Object.entries(handlers)) bus.registerHandler(agent, h);
  bus.start();
  const close = async () => {
    await bus.close();
    db.close();
  };
  return {
    bus,
    registry,
    close,
    async restart(next) {
      await close();
      return open(setup, dir, registry, next);
    },
  };
}

const factory: BusFactory = (setup) => {
  const registry = new AgentRegistry();
  for (const [name, caps] of setup.agents) deploy(registry, agentDef(name, caps));
  return Promise.resolve(open(setup, makeTempDir('caxton-contract-'), registry, setup.handlers));
};

runBusContract('MessageBus (one node, SQLite)', factory, { differs: {} });
runOneWayContract('MessageBus (one node, SQLite)', factory);
