/**
 * Directory propagation (issue 17, item 4) on a real `nats-server -js` started by the test: three
 * registries, each with its own NATS connection, as three nodes would have. A deploy, an update and
 * a removal through one reach the others; a node that starts later gets the current directory; a
 * file agent is never replaced by another node's; an entry that is not an agent is skipped with a
 * warning naming it. The lag is measured in bench/cluster.ts, not asserted here.
 */
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AgentRegistry, type DeployedAgent } from '../../src/agents/index.js';
import { DirectorySync } from '../../src/cluster/index.js';
import { agentDef } from '../messaging/helpers.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { hasSystem } from '../helpers/system.js';
import { removeTempDirs } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';

const run = hasSystem('nats-server');

let nats: NatsServer;
const connections: NatsConnection[] = [];
const syncs: DirectorySync[] = [];
let buckets = 0;

beforeAll(async () => {
  if (run) nats = await startNatsServer();
});

afterEach(async () => {
  for (const s of syncs.splice(0)) await s.stop();
});

afterAll(async () => {
  for (const nc of connections) await nc.close().catch(() => {});
  await nats?.stop();
  removeTempDirs();
});

interface Node {
  registry: AgentRegistry;
  sync: DirectorySync;
  warnings: string[];
  nc: NatsConnection;
}

async function node(name: string, bucket: string, registry = new AgentRegistry()): Promise<Node> {
  const nc = await connect({ servers: nats.url });
  connections.push(nc);
  const warnings: string[] = [];
  const sync = await DirectorySync.start({ nc, bucket, node: name, registry, log: { warn: (_o, msg) => warnings.push(msg) } });
  syncs.push(sync);
  return { registry, sync, warnings, nc };
}

function agent(name: string, revision = 1, origin: DeployedAgent['origin'] = { kind: 'api' }, prompt = ''): DeployedAgent {
  const now = new Date(Date.UTC(2026, 10, 24, 9, 0, revision)).toISOString();
  return { definition: agentDef(name, ['desk'], prompt), format: 'toml', origin, revision, deployed_at: now, updated_at: now };
}

const bucket = () => `test_agents_${++buckets}`;
const promptOf = (r: AgentRegistry, name: string) => r.get(name)?.definition.system_prompt;

describe.skipIf(!run)('directory propagation on a JetStream key-value bucket', () => {
  it('a deploy, an update and a removal on one node reach the two others', async () => {
    const b = bucket();
    const [a, n2, n3] = [await node('node-a', b), await node('node-b', b), await node('node-c', b)];
    a.registry.upsert(agent('Clerk.One'));
    for (const n of [n2, n3]) await waitUntil(() => n.registry.get('clerk.one'), { what: 'the deploy on every node' });
    expect(n3.registry.get('clerk.one')).toMatchObject({ definition: { name: 'Clerk.One', capabilities: ['desk'] }, origin: { kind: 'api' }, revision: 1, format: 'toml' });
    expect(n3.registry.providersOf('desk').map((x) => x.definition.name)).toEqual(['Clerk.One']);

    a.registry.upsert(agent('Clerk.One', 2, { kind: 'api' }, 'description = "second"'));
    for (const n of [n2, n3]) await waitUntil(() => n.registry.get('clerk.one')?.revision === 2, { what: 'the update on every node' });
    expect(n2.registry.get('clerk.one')?.definition.description).toBe('second');

    a.registry.remove('clerk.one');
    for (const n of [n2, n3]) await waitUntil(() => !n.registry.has('clerk.one'), { what: 'the removal on every node' });
    // Each node applied two changes and the removal, and measured their lag; none echoed back to A.
    expect(n2.sync.lag().samples).toBe(3);
    expect(a.sync.lag().samples).toBe(0);
    expect([a.warnings, n2.warnings, n3.warnings]).toEqual([[], [], []]);
  });

  it('a node never applies its own entries back (a quick series of updates never goes backwards there)', async () => {
    const b = bucket();
    const [a, n2] = [await node('node-a', b), await node('node-b', b)];
    const seen: number[] = [];
    a.registry.on('change', (e) => seen.push(e.agent.revision));
    for (let rev = 1; rev <= 5; rev++) a.registry.upsert(agent('busy', rev));
    await waitUntil(() => n2.registry.get('busy')?.revision === 5, { what: 'the last revision on node-b' });
    // The watch delivers in stream order: once node-b's marker is here, node-a has seen its own five entries come back.
    n2.registry.upsert(agent('marker'));
    await waitUntil(() => a.registry.get('marker'), { what: "node-b's marker on node-a" });
    expect(seen).toEqual([1, 2, 3, 4, 5, 1]);
  });

  it('a change made on any node travels, not only on the first one', async () => {
    const b = bucket();
    const [a, n2] = [await node('node-a', b), await node('node-b', b)];
    n2.registry.upsert(agent('from-b'));
    await waitUntil(() => a.registry.get('from-b'), { what: "node-b's deploy on node-a" });
    expect(promptOf(a.registry, 'from-b')).toBe('You are from-b.');
  });

  it('a node that starts later gets the current directory before start() resolves, and publishes its own API agents', async () => {
    const b = bucket();
    const a = await node('node-a', b);
    a.registry.upsert(agent('early'));
    a.registry.upsert(agent('gone'));
    a.registry.remove('gone');
    await waitUntil(async () => (await (await new Kvm(a.nc).open(b)).status()).values >= 1, { what: 'the entries in the bucket' });
    const own = new AgentRegistry();
    own.upsert(agent('late-local'));
    const late = await node('node-late', b, own);
    expect(late.registry.get('early')?.revision).toBe(1);
    expect(late.registry.has('gone')).toBe(false);
    await waitUntil(() => a.registry.get('late-local'), { what: "the late node's own agent on node-a" });
  });

  it("never replaces a file agent with another node's agent of the same name, and says so", async () => {
    const b = bucket();
    const a = await node('node-a', b);
    const files = new AgentRegistry();
    files.upsert(agent('clerk', 1, { kind: 'file', path: '/agents/clerk.toml' }));
    const f = await node('node-f', b, files);
    a.registry.upsert(agent('clerk', 5));
    await waitUntil(() => f.warnings.length > 0, { what: 'the warning' });
    expect(f.warnings).toEqual(['agent "clerk" deployed on node node-a is not applied here: this node has a file agent of that name (file agents stay per node)']);
    expect(f.registry.get('clerk')).toMatchObject({ origin: { kind: 'file' }, revision: 1 });
    // And the file agent itself is not published: node-a keeps its own.
    expect(a.registry.get('clerk')?.revision).toBe(5);
  });

  it('skips an entry that is not an agent definition, naming the key and the field', async () => {
    const b = bucket();
    const a = await node('node-a', b);
    const kv = await new Kvm(a.nc).open(b);
    await kv.put('broken', 'not json');
    await kv.put(
      'shapeless',
      JSON.stringify({ node: 'node-x', published_at: Date.now(), format: 'toml', revision: 1, deployed_at: '', updated_at: '', definition: { name: 'shapeless', capabilities: 'desk' } }),
    );
    await kv.put('other', JSON.stringify({ node: 'node-x', published_at: Date.now(), format: 'toml', revision: 1, deployed_at: '', updated_at: '', definition: agent('mismatch').definition }));
    await waitUntil(() => a.warnings.length === 3, { what: 'three warnings' });
    expect(a.warnings[0]).toBe('skipped cluster directory entry "broken": it is not JSON');
    expect(a.warnings[1]).toMatch(/^skipped cluster directory entry "shapeless" from node node-x: version: expected a string/);
    expect(a.warnings[2]).toBe('skipped cluster directory entry "other" from node node-x: it holds agent "mismatch"');
    expect(a.registry.list().total).toBe(0);
  });
});
