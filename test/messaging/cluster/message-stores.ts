import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { AgentRegistry } from '../../../src/agents/index.js';
import { clusterConfigSchema } from '../../../src/config/index.js';
import { ClusterBus } from '../../../src/messaging/cluster/index.js';
import { PgMessageReads, PgMessageStore, type PgMessageStoreOptions } from '../../../src/messaging/postgres/index.js';
import type { Conversation, ConversationId, InProcessHandler } from '../../../src/messaging/index.js';
import { agentDef, deploy, messagingConfig } from '../helpers.js';
import { TEST_PG_URL } from '../../helpers/system.js';

/**
 * A pool on the test database whose connections pass the text (or config) of every query they
 * send to `onQuery` (a multi-statement simple query is one): how tests count round trips and
 * transactions.
 */
export function observedPool(max: number, onQuery: (query: unknown) => void): pg.Pool {
  const p = new pg.Pool({ connectionString: TEST_PG_URL, max });
  p.on('error', () => {});
  p.on('connect', (c) => {
    const query = c.query.bind(c) as (...a: unknown[]) => unknown;
    (c as unknown as { query: (...a: unknown[]) => unknown }).query = (...a: unknown[]) => {
      onQuery(a[0]);
      return query(...a);
    };
  });
  return p;
}

/**
 * Two nodes' message stores on one fresh schema (`<prefix>_<pid>_<time>`), each on an observed
 * pool of `max` connections; opened before the file's tests when `run`, the schema dropped after.
 * `onQuery(node, query)` sees every query of each node's pool.
 */
export function twoStores(
  run: boolean,
  prefix: string,
  opts: {
    max: number;
    onQuery: (node: number, query: unknown) => void;
    groups?: [PgMessageStoreOptions['groups'], PgMessageStoreOptions['groups']];
  },
): { schema: string; pools: pg.Pool[]; stores: PgMessageStore[] } {
  const out = {
    schema: `${prefix}_${process.pid}_${Date.now()}`,
    pools: [] as pg.Pool[],
    stores: [] as PgMessageStore[],
  };
  beforeAll(async () => {
    if (!run) return;
    out.pools.push(...[0, 1].map((i) => observedPool(opts.max, (q) => opts.onQuery(i, q))));
    for (const [i, pool] of out.pools.entries()) {
      const groups = opts.groups?.[i];
      out.stores.push(await PgMessageStore.open({ pool, schema: out.schema, ...(groups && { groups }) }));
    }
  });
  afterAll(async () => {
    if (!run) return;
    await out.pools[0]!.query(`DROP SCHEMA IF EXISTS "${out.schema}" CASCADE`);
    for (const p of out.pools) await p.end();
  });
  return out;
}

/** A conversation in progress, started by `caller` now, as a step stores it the first time. */
export function freshConversation(id: string, maxTurns = 100): Conversation {
  const t = new Date().toISOString();
  return {
    id: id as ConversationId,
    protocol: null,
    state: 'in_progress',
    initiator: 'caller',
    participants: ['caller'],
    capability: null,
    turns: 0,
    max_turns: maxTurns,
    created_at: t,
    updated_at: t,
    expires_at: null,
    reason: null,
  };
}

/**
 * A one-node cluster bus on its own `schema` (dropped at close) and the NATS server at `natsUrl`,
 * serving `sink` (`extra`: more of its definition), its sweeps off; `counted(fn)` gives the
 * statements its pool sent while `fn` ran, each statement of a multi-statement query apart.
 */
export async function countingNode(natsUrl: string, schema: string, sink: InProcessHandler, extra = '') {
  const sent: string[] = [];
  const state = { counting: false };
  const pool = observedPool(4, (q) => {
    if (!state.counting) return;
    const text = typeof q === 'string' ? q : ((q as { text?: string }).text ?? '');
    for (const st of text.split(/;\s*\n|;\s+(?=[A-Z])/)) if (st.trim() !== '') sent.push(st.trim());
  });
  const nc = await connect({ servers: natsUrl });
  const store = await PgMessageStore.open({ pool, schema });
  const registry = new AgentRegistry();
  deploy(registry, agentDef('sink', ['notes'], extra));
  const bus = new ClusterBus({
    store,
    reads: new PgMessageReads({ store }),
    nc,
    registry,
    config: messagingConfig(),
    cluster: clusterConfigSchema.parse({
      node: 'n1',
      delivery: { stream: `S${schema}`, consumer: `c${schema}`, subject: `d${schema}` },
    }),
    sweepMs: 3_600_000,
    republish: { everyMs: 3_600_000 },
  });
  bus.registerHandler('sink', sink);
  await bus.start();
  return {
    bus,
    store,
    pool,
    async counted<T>(fn: () => Promise<T>): Promise<{ out: T; statements: string[] }> {
      sent.length = 0;
      state.counting = true;
      try {
        return { out: await fn(), statements: [...sent] };
      } finally {
        state.counting = false;
      }
    },
    async close() {
      await bus.close();
      await nc.close();
      await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await pool.end();
    },
  };
}
