/**
 * Directory propagation (ADR 0045) on a real `nats-server -js` started by
 * the test and the machine's PostgreSQL (a schema per test): three registries, each with its own
 * NATS connection and pool, as three nodes would have. A change is made as the service makes it:
 * the row written first, then the registry. A deploy, an update and a removal through one node
 * reach the others; a node that starts later gets the current directory, loses what was removed
 * while it was down and writes what only it had; a missed notice is caught up by the
 * reconciliation; two nodes changing one agent end on the row PostgreSQL kept; a file agent is
 * never replaced; a damaged row is skipped, naming it. Its lag's last figures are in
 * docs/adr/experiments.md.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AgentRegistry, PgAgentDirectory, type DeployedAgent } from '../../src/agents/index.js';
import { agentsSubject, DirectorySync } from '../../src/cluster/index.js';
import { agentDef } from '../messaging/helpers.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { hasSystem, TEST_PG_URL } from '../helpers/system.js';
import { removeTempDirs } from '../helpers/tmp.js';
import { sleep, waitUntil } from '../helpers/wait.js';

const run = hasSystem('nats-server') && hasSystem('postgresql');
const base = `caxton_dirsync_${process.pid}_${Date.now()}`;
const schemas: string[] = [];
let nats: NatsServer;
let admin: pg.Pool;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  if (!run) return;
  nats = await startNatsServer();
  admin = new pg.Pool({ connectionString: TEST_PG_URL, max: 2 });
  admin.on('error', () => {});
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

afterAll(async () => {
  if (run) {
    for (const s of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
    await admin.end();
  }
  await nats?.stop();
  removeTempDirs();
});

interface Node {
  name: string;
  registry: AgentRegistry;
  directory: PgAgentDirectory;
  sync: DirectorySync;
  warnings: string[];
  /** Deploys or updates as the service does: the row, then the registry. */
  deploy(a: DeployedAgent): Promise<void>;
  remove(name: string): Promise<void>;
}

function cluster(): string {
  const schema = `${base}_${schemas.length + 1}`;
  schemas.push(schema);
  return schema;
}

async function node(
  name: string,
  schema: string,
  registry = new AgentRegistry(),
  opts: { reconcileMs?: number; sources?: Record<string, string>; slowRowsMs?: number; slowHeadMs?: number } = {},
): Promise<Node> {
  const nc: NatsConnection = await connect({ servers: nats.url });
  const pool = new pg.Pool({ connectionString: TEST_PG_URL, max: 3 });
  pool.on('error', () => {});
  const directory = await PgAgentDirectory.open({ pool, schema, node: name });
  const warnings: string[] = [];
  const slow = opts.slowRowsMs;
  const slowHead = opts.slowHeadMs ?? 0;
  const sync = await DirectorySync.start({
    nc,
    subject: agentsSubject(schema),
    node: name,
    // A slow read of rows: what it returns is older than what this node writes meanwhile.
    directory:
      slow === undefined && slowHead === 0
        ? directory
        : {
            head: (k) => directory.head(k).then(async (r) => (await sleep(slowHead), r)),
            heads: () => directory.heads(),
            adopt: (x) => directory.adopt(x),
            rows: (k) => directory.rows(k).then(async (r) => (await sleep(slow ?? 0), r)),
          },
    registry,
    sourceOf: (n) => opts.sources?.[n.toLowerCase()],
    ...(opts.reconcileMs !== undefined && { reconcileMs: opts.reconcileMs }),
    log: { info: () => {}, warn: (_o, msg) => warnings.push(msg) },
  });
  cleanups.push(async () => {
    await sync.stop();
    await nc.close();
    await pool.end();
  });
  return {
    name,
    registry,
    directory,
    sync,
    warnings,
    deploy: async (a) => {
      await directory.put({ ...a, source: `name = "${a.definition.name}"` });
      registry.upsert(a);
    },
    remove: async (n) => {
      const here = registry.get(n)!;
      await directory.remove({ ...here, source: '' });
      registry.remove(n);
    },
  };
}

function agent(
  name: string,
  revision = 1,
  origin: DeployedAgent['origin'] = { kind: 'api' },
  extra = '',
): DeployedAgent {
  const now = new Date(Date.UTC(2026, 10, 24, 9, 0, revision)).toISOString();
  return {
    definition: agentDef(name, ['desk'], extra),
    format: 'toml',
    origin,
    revision,
    deployed_at: now,
    updated_at: now,
  };
}

describe.skipIf(!run)('directory propagation: API agents in PostgreSQL, notices on NATS', () => {
  it('a deploy, an update and a removal on one node reach the two others, with their lag', async () => {
    const s = cluster();
    const [a, b, c] = [await node('node-a', s), await node('node-b', s), await node('node-c', s)];
    await a.deploy(agent('Clerk.One'));
    for (const n of [b, c]) await waitUntil(() => n.registry.get('clerk.one'), { what: 'the deploy on every node' });
    expect(c.registry.get('clerk.one')).toMatchObject({
      definition: { name: 'Clerk.One', capabilities: ['desk'] },
      origin: { kind: 'api' },
      revision: 1,
      format: 'toml',
    });
    expect(c.registry.providersOf('desk').map((x) => x.definition.name)).toEqual(['Clerk.One']);

    await a.deploy(agent('Clerk.One', 2, { kind: 'api' }, 'description = "second"'));
    for (const n of [b, c])
      await waitUntil(() => n.registry.get('clerk.one')?.revision === 2, { what: 'the update on every node' });
    expect(b.registry.get('clerk.one')?.definition.description).toBe('second');

    await a.remove('clerk.one');
    for (const n of [b, c]) await waitUntil(() => !n.registry.has('clerk.one'), { what: 'the removal on every node' });
    // Each other node applied the two changes and the removal and measured their lag; none came back to A.
    expect(b.sync.lag().samples).toBe(3);
    expect(b.sync.lag().p99_ms).toBeGreaterThanOrEqual(0);
    expect(a.sync.lag().samples).toBe(0);
    // The removal is a tombstone: the name's row stays, removed.
    expect((await a.directory.heads()).map((h) => [h.key, h.deleted])).toEqual([['clerk.one', true]]);
    expect([a.warnings, b.warnings, c.warnings]).toEqual([[], [], []]);
  });

  it('a quick series of updates never goes backwards on the node that made them, and ends the same on the others', async () => {
    const s = cluster();
    const [a, b] = [
      await node('node-a', s, undefined, { reconcileMs: 50 }),
      await node('node-b', s, undefined, { reconcileMs: 50 }),
    ];
    const seen: number[] = [];
    a.registry.on('change', (e) => seen.push(e.agent.revision));
    // Reconciliations every 50 ms read rows while the updates are being written: none older may land on A.
    for (let rev = 1; rev <= 15; rev++) await a.deploy(agent('busy', rev));
    await waitUntil(() => b.registry.get('busy')?.revision === 15, { what: 'the last revision on node-b' });
    await sleep(200);
    expect(seen).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
    expect(b.registry.get('busy')?.revision).toBe(15);
  });

  it("a row read before this node's own change committed never lands over it", async () => {
    const s = cluster();
    // The slow read leaves node-a's own deploy (after 100 ms) a wide window to commit in, even on a
    // loaded machine: an own change committed after the read landed is a plain later change.
    const [a, b] = [await node('node-a', s, undefined, { slowRowsMs: 1_500 }), await node('node-b', s)];
    await a.deploy(agent('raced'));
    await waitUntil(() => b.registry.get('raced'), { what: 'the deploy on node-b' });
    const seen: number[] = [];
    a.registry.on('change', (e) => seen.push(e.agent.revision));
    // node-b's update: node-a reads its row (slowly); node-a's own, newer update commits meanwhile.
    await b.deploy(agent('raced', 2));
    await sleep(100);
    await a.deploy(agent('raced', 3));
    await sleep(1_700);
    await a.sync.reconcile();
    expect(seen).toEqual([3]);
    await waitUntil(() => b.registry.get('raced')?.revision === 3, { what: "node-a's update on node-b" });
  });

  it("another node's later change heard while this node's own is still being announced is applied once it is", async () => {
    const s = cluster();
    const [a, b] = [await node('node-a', s, undefined, { slowHeadMs: 300 }), await node('node-b', s)];
    await a.deploy(agent('echoed'));
    await waitUntil(() => b.registry.get('echoed'), { what: 'the deploy on node-b' });
    await sleep(400);
    // node-a's update: the read of its seq is slow; node-b's, committed after it, is announced meanwhile.
    await a.deploy(agent('echoed', 2));
    await b.deploy(agent('echoed', 3));
    await waitUntil(() => a.registry.get('echoed')?.revision === 3, {
      what: "node-b's later update on node-a",
      timeoutMs: 3000,
    });
  });

  it('a node that starts later gets the current directory before start() resolves, drops what was removed meanwhile, and writes what only it had', async () => {
    const s = cluster();
    const a = await node('node-a', s);
    await a.deploy(agent('early'));
    await a.deploy(agent('gone'));
    // What a restarted node loads from its own SQLite: one the cluster removed while it was down, one only it has.
    const own = new AgentRegistry();
    own.upsert(agent('gone'));
    own.upsert(agent('late-local'));
    await a.remove('gone');
    const late = await node('node-late', s, own, { sources: { 'late-local': 'name = "late-local"' } });
    expect(late.registry.get('early')?.revision).toBe(1);
    expect(late.registry.has('gone')).toBe(false);
    expect(late.registry.get('late-local')?.origin.kind).toBe('api');
    expect(await a.directory.source('late-local')).toBe('name = "late-local"');
    // Written for the cluster at start; node-a reads it at its next reconciliation (no notice for an adoption).
    await a.sync.reconcile();
    expect(a.registry.get('late-local')).toBeDefined();
    expect(late.sync.lag().samples).toBe(0);
  });

  it('a change whose notice was missed is applied by the reconciliation', async () => {
    const s = cluster();
    const [a, b] = [await node('node-a', s), await node('node-b', s, undefined, { reconcileMs: 100 })];
    // The row written without the notice (node-a's NATS link down at that moment).
    await a.directory.put({ ...agent('quiet', 3), source: '' });
    const { elapsedMs } = await waitUntil(() => b.registry.get('quiet'), {
      what: 'the reconciliation on node-b',
      timeoutMs: 3000,
    });
    expect(b.registry.get('quiet')?.revision).toBe(3);
    expect(elapsedMs).toBeLessThan(3000);
    // Its lag is counted from the row's time, as a notice's is.
    expect(b.sync.lag().samples).toBe(1);
  });

  it('two nodes changing one agent at once end on the row PostgreSQL kept', async () => {
    const s = cluster();
    const [a, b, c] = [await node('node-a', s), await node('node-b', s), await node('node-c', s)];
    await a.deploy(agent('shared'));
    await waitUntil(() => b.registry.get('shared') && c.registry.get('shared'), {
      what: 'the first deploy everywhere',
    });
    // Three writers, twelve rounds: each round every node must end on the row kept, well within the 15 s reconciliation.
    for (let i = 0; i < 12; i++) {
      await Promise.all(
        [a, b, c].map((x) => x.deploy(agent('shared', 10 + i, { kind: 'api' }, `description = "${x.name}-${i}"`))),
      );
      const [kept] = await a.directory.rows(['shared']);
      const want = kept && !kept.deleted && 'agent' in kept ? kept.agent.definition.description : undefined;
      expect(want).toMatch(new RegExp(`^node-[abc]-${i}$`));
      for (const n of [a, b, c])
        await waitUntil(() => n.registry.get('shared')?.definition.description === want, {
          what: `${n.name} on the kept row (round ${i})`,
          timeoutMs: 3000,
        });
    }
  });

  it("a node whose own change was overtaken by another node's, applied here before its registry's update, ends on the kept row", async () => {
    const s = cluster();
    const [b, c] = [await node('node-b', s), await node('node-c', s)];
    await b.deploy(agent('raced'));
    await waitUntil(() => c.registry.get('raced'), { what: 'the first deploy on node-c' });
    // node-c's row commits, then node-b's later one, which node-c applies from its notice, all
    // before node-c's own registry update (a deploy's second half) runs.
    const mine = agent('raced', 2, { kind: 'api' }, 'description = "node-c"');
    await c.directory.put({ ...mine, source: 'name = "raced"' });
    await b.deploy(agent('raced', 3, { kind: 'api' }, 'description = "node-b"'));
    await waitUntil(() => c.registry.get('raced')?.definition.description === 'node-b', {
      what: "node-b's change applied on node-c",
    });
    c.registry.upsert(mine);
    await waitUntil(() => c.registry.get('raced')?.definition.description === 'node-b', {
      what: 'node-c back on the row PostgreSQL kept',
      timeoutMs: 5000,
    });
  });

  it("never replaces a file agent with another node's agent of the same name, and says so once per change", async () => {
    const s = cluster();
    const a = await node('node-a', s);
    const files = new AgentRegistry();
    files.upsert(agent('clerk', 1, { kind: 'file', path: '/agents/clerk.toml' }));
    const f = await node('node-f', s, files);
    await a.deploy(agent('clerk', 5));
    await waitUntil(() => f.warnings.length > 0, { what: 'the warning' });
    await f.sync.reconcile();
    expect(f.warnings).toEqual([
      'agent "clerk" deployed on node node-a is not applied here: this node has a file agent of that name (file agents stay per node)',
    ]);
    expect(f.registry.get('clerk')).toMatchObject({ origin: { kind: 'file' }, revision: 1 });
    // The file agent itself is never written for the cluster: node-a keeps its own.
    expect(a.registry.get('clerk')?.revision).toBe(5);
    expect((await a.directory.rows(['clerk']))[0]).toMatchObject({ node: 'node-a', revision: 5 });
  });

  it('skips a damaged row, naming the agent and what is wrong, and applies it once repaired', async () => {
    const s = cluster();
    const a = await node('node-a', s);
    const b = await node('node-b', s);
    await a.deploy(agent('fragile'));
    await waitUntil(() => b.registry.get('fragile'), { what: 'the deploy on node-b' });
    // Edited by hand: not JSON, then valid JSON naming another agent.
    await admin.query(
      `UPDATE "${s}".agents SET definition = 'not json', revision = 2, seq = seq + 1000 WHERE key = 'fragile'`,
    );
    await b.sync.reconcile();
    await admin.query(
      `UPDATE "${s}".agents SET definition = $1, revision = 3, seq = seq + 1000 WHERE key = 'fragile'`,
      [JSON.stringify(agentDef('other', ['desk']))],
    );
    await b.sync.reconcile();
    expect(b.warnings).toHaveLength(2);
    expect(b.warnings[0]).toMatch(
      /^skipped cluster agent "fragile" written by node node-a: its stored definition is not JSON \(.+\); redeploy it$/,
    );
    expect(b.warnings[1]).toBe(
      'skipped cluster agent "fragile" written by node node-a: it holds agent "other"; redeploy it',
    );
    expect(b.registry.get('fragile')?.revision).toBe(1);
    await a.deploy(agent('fragile', 4));
    await waitUntil(() => b.registry.get('fragile')?.revision === 4, { what: 'the redeploy on node-b' });
  });

  it('a notice that is not one is skipped with a warning', async () => {
    const s = cluster();
    const a = await node('node-a', s);
    const nc = await connect({ servers: nats.url });
    nc.publish(agentsSubject(s), 'not json');
    nc.publish(agentsSubject(s), JSON.stringify({ node: 'x' }));
    await nc.flush();
    await nc.close();
    await waitUntil(() => a.warnings.length === 2, { what: 'two warnings' });
    expect(a.warnings[0]).toBe(`skipped a cluster directory notice on ${agentsSubject(s)}: it is not JSON`);
    expect(a.warnings[1]).toBe(
      `skipped a cluster directory notice on ${agentsSubject(s)}: it names no agent and change`,
    );
  });
});
