/**
 * Both message buses, the single node's (SQLite) and the cluster's (PostgreSQL + JetStream),
 * decide the send scope of a message the same way (src/messaging/bus-rules.ts sendScopeOf): the
 * principal a message acts for is resolved from real API keys, a capability is routed only to
 * providers in its agent scope, none in scope is a 403, an agent's send acting for it is refused
 * outside it, and a message acting for a revoked key sends nothing more.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentRegistry } from '../../../src/agents/index.js';
import { ApiKeyStore, PrincipalDirectory, type Principal } from '../../../src/auth/index.js';
import { clusterConfigSchema } from '../../../src/config/index.js';
import { ClusterBus } from '../../../src/messaging/cluster/index.js';
import { PgMessageReads, PgMessageStore } from '../../../src/messaging/postgres/index.js';
import { newConversationId, newMessageId, type AclMessage, type MessagingBus } from '../../../src/messaging/index.js';
import { MESSAGING_MIGRATIONS, MessageBus } from '../../../src/messaging/sqlite/index.js';
import { CaxtonError } from '../../../src/shared/errors.js';
import { migrate, openDatabase, type Db } from '../../../src/storage/index.js';
import { aclMessage, agentDef, deploy, messagingConfig } from '../helpers.js';
import { startNatsServer, type NatsServer } from '../../helpers/nats-server.js';
import { hasSystem, TEST_PG_URL } from '../../helpers/system.js';
import { makeTempDir, removeTempDirs } from '../../helpers/tmp.js';

const cluster = hasSystem('nats-server') && hasSystem('postgresql');

let db: Db;
let keys: ApiKeyStore;
let principals: PrincipalDirectory;
let scoped: Principal;
let nats: NatsServer | undefined;
const closers: (() => Promise<void>)[] = [];

function registry(): AgentRegistry {
  const r = new AgentRegistry();
  deploy(r, agentDef('a-one', ['shared']));
  deploy(r, agentDef('a-two', ['shared']));
  deploy(r, agentDef('b-secret', ['shared', 'secret']));
  return r;
}

beforeAll(async () => {
  db = openDatabase(makeTempDir('caxton-scope-buses-'));
  migrate(db, MESSAGING_MIGRATIONS);
  keys = new ApiKeyStore(db);
  principals = new PrincipalDirectory({ keys });
  keys.create({ name: 'scoped', role: 'invoker', scope: { agents: ['a-*'] } });
  keys.create({ name: 'gone', role: 'invoker', scope: { agents: ['a-*'] } });
  keys.revoke('gone');
  scoped = principals.resolve('key:scoped')!;
  if (cluster) nats = await startNatsServer();
});

afterAll(async () => {
  for (const c of closers.splice(0)) await c();
  await nats?.stop();
  db?.close();
  removeTempDirs();
});

async function singleNode(): Promise<MessagingBus> {
  const bus = new MessageBus({ db, registry: registry(), config: messagingConfig(), principals });
  bus.registerHandler('a-one', () => ({ content: 'ok' }));
  bus.start();
  closers.push(() => bus.close());
  return bus;
}

async function clusterNode(): Promise<MessagingBus> {
  const schema = `scope_${process.pid}`;
  const nc: NatsConnection = await connect({ servers: nats!.url });
  const pool = new pg.Pool({ connectionString: TEST_PG_URL, max: 4 });
  pool.on('error', () => {});
  const store = await PgMessageStore.open({ pool, schema });
  const bus = new ClusterBus({
    store,
    reads: new PgMessageReads({ store }),
    nc,
    registry: registry(),
    config: messagingConfig(),
    cluster: clusterConfigSchema.parse({
      node: 'n1',
      delivery: { stream: `S${schema}`, consumer: `c${schema}`, subject: `d${schema}` },
    }),
    principals,
  });
  await bus.start();
  closers.push(async () => {
    await bus.close();
    await nc.close();
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await pool.end();
  });
  return bus;
}

/** A message agent a-one sends while handling one that acts for `principal`. */
const fromAgent = (principal: string, over: Partial<AclMessage>): AclMessage =>
  ({
    ...aclMessage({ sender: 'a-one', on_behalf_of: principal, chain: ['a-one'], ...over }),
    id: newMessageId(),
    conversation_id: newConversationId(),
  }) as AclMessage;
const fresh = { newId: true, newConversation: true };

const forbidden = async (p: Promise<unknown>): Promise<Record<string, unknown>> => {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(CaxtonError);
  expect((e as CaxtonError).code).toBe('forbidden');
  return (e as CaxtonError).details as Record<string, unknown>;
};

const buses: [string, () => Promise<MessagingBus>, boolean][] = [
  ['MessageBus (single node)', singleNode, true],
  ['ClusterBus (PostgreSQL + JetStream)', clusterNode, cluster],
];

for (const [name, open, runs] of buses) {
  describe.runIf(runs)(name, () => {
    let bus: MessagingBus;
    beforeAll(async () => {
      bus = await open();
    });

    it('routes a capability only to providers in the acting principal’s agent scope', async () => {
      const chosen = new Set<string>();
      for (let i = 0; i < 16; i++) {
        const r = await bus.submit(
          { performative: 'inform', capability: 'shared', content: `n${i}` },
          { principal: scoped, sender: 'key:scoped' },
        );
        for (const a of r.routed_to) chosen.add(a);
      }
      expect([...chosen].sort()).toEqual(['a-one', 'a-two']);
      const one = await bus.submit(
        { performative: 'request', capability: 'shared', content: 'x' },
        { principal: scoped },
      );
      expect(one.routed_to[0]).toMatch(/^a-/);
    });

    it('refuses a capability with providers none of which is in scope as a direct send is refused', async () => {
      const direct = await forbidden(
        bus.submit({ performative: 'request', receiver: 'b-secret', content: 'x' }, { principal: scoped }),
      );
      const byCapability = await forbidden(
        bus.submit({ performative: 'request', capability: 'secret', content: 'x' }, { principal: scoped }),
      );
      expect(byCapability.reason).toBe(direct.reason);
      expect(byCapability.reason).toBe('agent_scope');
    });

    it('refuses an agent’s send acting for the principal outside its scope, resolving the principal from its id', async () => {
      await forbidden(bus.send(fromAgent('key:scoped', { receivers: ['b-secret'] }), fresh));
      await forbidden(bus.send(fromAgent('key:scoped', { capability: 'secret' }), fresh));
      // a-one is in the message's chain (a loop), so a-two is the only provider left in scope.
      const ok = await bus.send(fromAgent('key:scoped', { capability: 'shared' }), fresh);
      expect(ok.routed_to).toEqual(['a-two']);
    });

    it('sends nothing more for a revoked key', async () => {
      const details = await forbidden(bus.send(fromAgent('key:gone', { receivers: ['a-two'] }), fresh));
      expect(details).toMatchObject({ reason: 'principal_unknown', on_behalf_of: 'key:gone' });
    });
  });
}
