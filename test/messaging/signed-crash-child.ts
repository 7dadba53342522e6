/**
 * The child of signed-crash.test.ts: a signed bus on the data dir given, whose receiver records
 * each run in `runs.log`; the moment the seen-set records the delivery, the process is killed
 * (SIGKILL, nothing flushed or closed), as a node dying between that record and the
 * acknowledgement would.
 */
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { AgentRegistry } from '../../src/agents/index.js';
import { SigningKeyStore } from '../../src/auth/index.js';
import { MessageSigner, SqliteSignedSeen } from '../../src/messaging/index.js';
import { MESSAGING_MIGRATIONS, MessageBus } from '../../src/messaging/sqlite/index.js';
import { migrate, openDatabase } from '../../src/storage/index.js';
import { agentDef, deploy, messagingConfig } from './helpers.js';

const dir = process.argv[2]!;
const db = openDatabase(dir);
migrate(db, MESSAGING_MIGRATIONS);
const keys = new SigningKeyStore(db, { dir: join(dir, 'signing'), node: 'local' });
const seen = new SqliteSignedSeen(join(dir, 'signing'), { ttlMs: 3_600_000 });
const mark = seen.mark.bind(seen);
seen.mark = (id, receiver) => {
  mark(id, receiver);
  process.kill(process.pid, 'SIGKILL');
};
const registry = new AgentRegistry();
deploy(registry, agentDef('payer', []));
const bus = new MessageBus({
  db,
  registry,
  config: messagingConfig({ signing: true }),
  signer: new MessageSigner(keys, { seen }),
});
bus.setAgentHandler((m) => {
  appendFileSync(join(dir, 'runs.log'), `${m.id}\n`);
  return { performative: 'inform', content: 'paid' };
});
bus.start();
const r = await bus.submit({ id: 'pay-once', performative: 'request', receivers: ['payer'], content: 'pay 100' });
process.stdout.write(`${r.id}\n`);
await new Promise((resolve) => setTimeout(resolve, 60_000));
