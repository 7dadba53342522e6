/**
 * One version history of API agents for two nodes (ADR 0043, item 5), in this process on
 * the machine's nats-server and PostgreSQL: per node its own SQLite (agents, file agents'
 * versions, rollouts), registry, service and pool, the agents propagated by DirectorySync, the
 * versions in one PgAgentVersionStore schema. A deploy on one node, an update on the other and a
 * rollback record one version each, numbered once for the cluster; the change the other node
 * applies from the directory records none; both nodes list, read and roll back the same history.
 * Then two `caxton serve` nodes in this process: the version routes answer the same on both, and
 * rollouts are the cluster's rows (src/agents/rollouts/pg-rollout-state.ts, ADR 0054): started through one node,
 * shown, refused, promoted and rolled back through another; a canary's share splits every node's
 * new conversations alike and every node's executions add up in its figures, which take it to its
 * promotion whichever node judges; a conversation keeps its version on every node; a shadow's
 * report counts every node's copies; and when the node that started a canary stops, the other's
 * judge carries it to its end.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  AGENT_MIGRATIONS,
  AgentRegistry,
  AgentService,
  AgentStore,
  AgentVersionStore,
  canaryBucket,
  PgAgentDirectory,
  PgAgentVersionStore,
  PgRolloutState,
  RolloutStore,
} from '../../src/agents/index.js';
import { agentsSubject, DirectorySync } from '../../src/cluster/index.js';
import { migrate, openDatabase } from '../../src/storage/index.js';
import { assertBuilt, expectExit, runCli } from '../cli/helpers/cli.js';
import { http, tomlAgent } from '../helpers/http.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { clusterToml as clusterTomlOf, servers } from './helpers/serve-nodes.js';
import type { TestServer } from '../helpers/server.js';
import { hasSystem, TEST_PG_URL } from '../helpers/system.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';

const run = hasSystem('postgresql') && hasSystem('nats-server');
const base = `caxton_pgversions_nodes_${process.pid}_${Date.now()}`;
const schemas: string[] = [];
let nats: NatsServer;
const cleanups: (() => unknown)[] = [];

beforeAll(async () => {
  if (run) nats = await startNatsServer();
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

afterAll(async () => {
  if (run) {
    const pool = new pg.Pool({ connectionString: TEST_PG_URL, max: 1 });
    for (const s of schemas) await pool.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
    await pool.end();
  }
  await nats?.stop();
  removeTempDirs();
});

interface Node {
  name: string;
  registry: AgentRegistry;
  service: AgentService;
  local: AgentVersionStore;
}

/** Node `name` of the cluster whose agents and versions are in a schema named after `bucket` (one per test). */
async function node(name: string, bucket: string): Promise<Node> {
  const schema = `${base}_${bucket}`;
  if (!schemas.includes(schema)) schemas.push(schema);
  const db = openDatabase(makeTempDir('caxton-pgversions-'));
  migrate(db, AGENT_MIGRATIONS);
  const pool = new pg.Pool({ connectionString: TEST_PG_URL, max: 4 });
  const directory = await PgAgentDirectory.open({ pool, schema, node: name });
  const shared = await PgAgentVersionStore.open({ pool, schema, directory });
  const registry = new AgentRegistry();
  const local = new AgentVersionStore(db);
  const store = new AgentStore(db);
  const service = new AgentService(registry, store, {
    versions: local,
    rollouts: new RolloutStore(db),
    cluster: { versions: shared, agents: directory, rollouts: await PgRolloutState.open({ pool, schema }) },
  });
  const nc: NatsConnection = await connect({ servers: nats.url });
  const sync = await DirectorySync.start({
    nc,
    subject: agentsSubject(schema),
    node: name,
    directory,
    registry,
    sourceOf: (n) => store.source(n),
  });
  cleanups.push(async () => {
    await sync.stop();
    await service.close();
    await nc.close();
    await pool.end();
    db.close();
  });
  return { name, registry, service, local };
}

/** caxton.toml of node `node` of the cluster whose state is `schema`, on this file's NATS server. */
const clusterToml = (node: string, schema: string) => clusterTomlOf(node, nats.url, schema);

const v1 = tomlAgent('Writer', 'version = "1.0.0"\n');
const v2 = tomlAgent('Writer', 'version = "2.0.0"\n').replace('You are Writer.', 'You are Writer. Be terse.');
const promptOf = (n: Node) => n.registry.get('writer')?.definition.system_prompt;
const historyOf = async (n: Node) =>
  (await n.service.history.portFor('writer')!.list('writer', { limit: 100 })).items.map((v) => [
    v.version,
    v.how,
    v.semver,
    v.restored_from,
  ]);

describe.skipIf(!run)('agent versions shared by two nodes', () => {
  it('a deploy on one node, an update on the other and a rollback: one numbering, one history, read the same on both', async () => {
    const [a, b] = [await node('node-a', 'test_versions_1'), await node('node-b', 'test_versions_1')];

    const created = await a.service.deploy({ body: v1, deployed_by: 'alice' }, 'create');
    expect(created.version).toMatchObject({ version: 1, how: 'api', deployed_by: 'alice' });
    await waitUntil(() => b.registry.get('writer'), { what: 'the agent on node b' });
    // Node b applied the change from the directory: no version of its own.
    expect(await historyOf(b)).toEqual([[1, 'api', '1.0.0', null]]);
    expect(await b.service.liveVersion('writer')).toBe(1);

    const updated = await b.service.deploy({ body: v2, deployed_by: 'bob' }, 'update', 'writer');
    expect(updated.version).toMatchObject({ version: 2, deployed_by: 'bob' });
    await waitUntil(() => promptOf(a)?.includes('Be terse'), { what: 'the update on node a' });
    // The same content deployed again on the node that did not write it: nothing recorded.
    const same = await a.service.deploy({ body: v2 }, 'update', 'writer');
    expect(same).toMatchObject({ unchanged: true, version: { version: 2 } });

    const back = await a.service.rollback('writer', undefined, 'carol');
    expect(back.version).toMatchObject({ version: 3, how: 'rollback', restored_from: 1, deployed_by: 'carol' });
    await waitUntil(() => promptOf(b) === 'You are Writer.', { what: 'the rollback on node b' });

    const expected = [
      [3, 'rollback', '1.0.0', 1],
      [2, 'api', '2.0.0', null],
      [1, 'api', '1.0.0', null],
    ];
    expect(await historyOf(a)).toEqual(expected);
    expect(await historyOf(b)).toEqual(expected);
    expect(await a.service.liveVersion('writer')).toBe(3);
    expect(await b.service.liveVersion('writer')).toBe(3);
    expect((await b.service.history.portFor('writer')!.get('writer', 2))!.source).toBe(v2);
    // Neither node kept a version of the API agent in its own SQLite.
    expect(a.local.list('writer').total + b.local.list('writer').total).toBe(0);

    // A rollback to a given version on the other node continues the same numbering.
    const again = await b.service.rollback('writer', 2);
    expect(again.version).toMatchObject({ version: 4, restored_from: 2 });
    await waitUntil(() => promptOf(a)?.includes('Be terse'), { what: 'the second rollback on node a' });
    expect((await historyOf(a)).map(([v]) => v)).toEqual([4, 3, 2, 1]);
  });

  it('updates of one agent on both nodes at once take distinct numbers', async () => {
    const [a, b] = [await node('node-a', 'test_versions_2'), await node('node-b', 'test_versions_2')];
    const first = await a.service.deploy({ body: tomlAgent('Racer') }, 'create');
    await waitUntil(() => b.registry.get('racer'), { what: 'the agent on node b' });
    const [x, y] = await Promise.all([
      a.service.deploy({ body: tomlAgent('Racer', 'version = "1.1.0"\n') }, 'update', 'racer'),
      b.service.deploy({ body: tomlAgent('Racer', 'version = "1.2.0"\n') }, 'update', 'racer'),
    ]);
    expect([first.version!.version, x.version!.version, y.version!.version].sort()).toEqual([1, 2, 3]);
    expect((await a.service.history.portFor('racer')!.list('racer')).total).toBe(3);
  });

  it('a blue-green rollout on a node: its candidate is numbered in the shared history and served there as NAME@VERSION; the promotion reaches the other node', async () => {
    const [a, b] = [await node('node-a', 'test_versions_3'), await node('node-b', 'test_versions_3')];
    await a.service.deploy({ body: v1 }, 'create');
    await waitUntil(() => b.registry.get('writer'), { what: 'the agent on node b' });
    const started = await a.service.deploy({ body: v2, strategy: 'blue-green' }, 'update', 'writer');
    expect(started.rollout).toMatchObject({ stable_version: 1, candidate_version: 2, state: 'running' });
    expect(a.registry.resolve('writer@2')?.definition.system_prompt).toContain('Be terse');
    expect(a.registry.resolve('writer', 'conv-1')?.definition.system_prompt).toBe('You are Writer.');
    // Node b serves version 1 too (the rollout's stable version), though version 2 is in the history, and reaches version 2 as writer@2.
    expect(await b.service.liveVersion('writer')).toBe(1);
    await b.service.rollout.follow();
    expect(b.registry.resolve('writer@2')?.definition.system_prompt).toContain('Be terse');
    const promoted = await a.service.promote('writer', 'alice');
    expect(promoted.version).toMatchObject({ version: 3, how: 'promotion', restored_from: 2 });
    await waitUntil(() => promptOf(b)?.includes('Be terse'), { what: 'the promotion on node b' });
    expect(await b.service.liveVersion('writer')).toBe(3);
    // The conversation pinned on node a keeps version 1 after the promotion.
    expect(a.registry.resolve('writer', 'conv-1')?.definition.system_prompt).toBe('You are Writer.');
  });
});

describe.skipIf(!run)('two caxton serve nodes: the version routes answer the same on both', () => {
  let a: TestServer;
  let b: TestServer;
  const schema = `${base}_serve`;
  const start = servers();

  beforeAll(async () => {
    schemas.push(schema);
    a = await start({ toml: clusterToml('node-a', schema) });
    b = await start({ toml: clusterToml('node-b', schema) });
  }, 60_000);

  interface History {
    current: number | null;
    total: number;
    versions: { version: number; how: string; restored_from: number | null }[];
  }
  const history = async (srv: TestServer) =>
    (await http<History>(srv.url, 'GET', '/api/v1/agents/clerk/versions')).json;

  it('a deploy through A, an update through B and a rollback through A: versions 1, 2, 3 on both, current 3 on both', async () => {
    const created = await http<{ version: number }>(a.url, 'POST', '/api/v1/agents', {
      body: tomlAgent('clerk'),
      contentType: 'application/toml',
    });
    expect(created.status, created.text).toBe(201);
    expect(created.json.version).toBe(1);
    await waitUntil(async () => (await http(b.url, 'GET', '/api/v1/agents/clerk')).status === 200, {
      what: 'the agent on B',
    });
    const updated = await http<{ version: number }>(b.url, 'PUT', '/api/v1/agents/clerk', {
      body: tomlAgent('clerk', 'version = "2.0.0"\n'),
      contentType: 'application/toml',
    });
    expect(updated.status, updated.text).toBe(200);
    expect(updated.json.version).toBe(2);
    await waitUntil(
      async () =>
        (await http<{ definition: { version?: string } }>(a.url, 'GET', '/api/v1/agents/clerk')).json.definition
          .version === '2.0.0',
      {
        what: 'the update on A',
      },
    );
    const back = await http<{ version: { version: number }; restored: { version: number } }>(
      a.url,
      'POST',
      '/api/v1/agents/clerk/rollback',
    );
    expect(back.status, back.text).toBe(200);
    expect([back.json.version.version, back.json.restored.version]).toEqual([3, 1]);
    await waitUntil(
      async () => (await http<{ revision: number }>(b.url, 'GET', '/api/v1/agents/clerk')).json.revision === 3,
      { what: 'the rollback on B' },
    );
    const [ha, hb] = [await history(a), await history(b)];
    expect(ha).toEqual(hb);
    expect(ha).toMatchObject({ current: 3, total: 3 });
    expect(ha.versions.map((v) => [v.version, v.how, v.restored_from])).toEqual([
      [3, 'rollback', 1],
      [2, 'api', null],
      [1, 'api', null],
    ]);
    const one = await http<{ source: string }>(b.url, 'GET', '/api/v1/agents/clerk/versions/2');
    expect(one.json.source).toBe(tomlAgent('clerk', 'version = "2.0.0"\n'));
  });

  it('the text an agent was deployed from reads the same through either node; a removal through B reaches A', async () => {
    const body = tomlAgent('scribe', '# deployed through A\n');
    expect((await http(a.url, 'POST', '/api/v1/agents', { body, contentType: 'application/toml' })).status).toBe(201);
    await waitUntil(async () => (await http(b.url, 'GET', '/api/v1/agents/scribe')).status === 200, {
      what: 'the agent on B',
    });
    const src = await http(b.url, 'GET', '/api/v1/agents/scribe/source');
    expect(src.status, src.text).toBe(200);
    expect(src.text).toBe(body);
    const removed = await http(b.url, 'DELETE', '/api/v1/agents/scribe');
    expect(removed.status, removed.text).toBe(204);
    await waitUntil(async () => (await http(a.url, 'GET', '/api/v1/agents/scribe')).status === 404, {
      what: 'the removal on A',
    });
    expect((await http(a.url, 'GET', '/api/v1/agents/scribe/source')).status).toBe(404);
  });
});

describe.skipIf(!run)("a single node that joins a cluster brings its agents' version history", () => {
  const schema = `${base}_joined`;
  const started = servers();

  interface Versions {
    current: number | null;
    total: number;
    versions: { version: number; how: string; hash: string; deployed_at: string; restored_from: number | null }[];
  }
  const versionsOf = async (srv: TestServer) => {
    const r = await http<Versions>(srv.url, 'GET', '/api/v1/agents/keeper/versions');
    expect(r.status, r.text).toBe(200);
    return r.json;
  };
  const put = async (srv: TestServer, extra: string) => {
    const r = await http(srv.url, 'PUT', '/api/v1/agents/keeper', {
      body: tomlAgent('keeper', extra),
      contentType: 'application/toml',
    });
    expect(r.status, r.text).toBe(200);
  };

  it("its versions become the cluster's, numbers and times unchanged; a node joining later with its own keeps the cluster's", async () => {
    schemas.push(schema);
    // A single node (SQLite only): a deploy, an update and a rollback.
    const single = await started({});
    expect(
      (
        await http(single.url, 'POST', '/api/v1/agents', {
          body: tomlAgent('keeper', 'version = "1.0.0"\n'),
          contentType: 'application/toml',
        })
      ).status,
    ).toBe(201);
    await put(single, 'version = "2.0.0"\n');
    expect((await http(single.url, 'POST', '/api/v1/agents/keeper/rollback')).status).toBe(200);
    const before = await versionsOf(single);
    expect(before.versions.map((v) => [v.version, v.how, v.restored_from])).toEqual([
      [3, 'rollback', 1],
      [2, 'api', null],
      [1, 'api', null],
    ]);
    // Another single node with a history of its own for the same agent.
    const other = await started({});
    expect(
      (
        await http(other.url, 'POST', '/api/v1/agents', {
          body: tomlAgent('keeper', 'version = "9.0.0"\n'),
          contentType: 'application/toml',
        })
      ).status,
    ).toBe(201);
    await single.close();
    await other.close();

    // The first restarts on its data with [cluster]: the shared history is its history.
    const joined = await started({ dir: single.dir, toml: clusterToml('node-c', schema) });
    expect(await versionsOf(joined)).toEqual(before);
    const back = await http<{ version: { version: number; restored_from: number } }>(
      joined.url,
      'POST',
      '/api/v1/agents/keeper/rollback',
      {
        body: JSON.stringify({ to: 2 }),
        contentType: 'application/json',
      },
    );
    expect(back.status, back.text).toBe(200);
    expect(back.json.version).toMatchObject({ version: 4, restored_from: 2 });

    // The second joins after: its own history is not copied over the cluster's, and it records nothing.
    const late = await started({ dir: other.dir, toml: clusterToml('node-d', schema) });
    await waitUntil(
      async () =>
        (await http<{ definition: { version?: string } }>(late.url, 'GET', '/api/v1/agents/keeper')).json.definition
          .version === '2.0.0',
      {
        what: "the cluster's agent on the node that joined later",
      },
    );
    const shared = await versionsOf(late);
    expect(shared).toEqual(await versionsOf(joined));
    expect(shared).toMatchObject({ total: 4, current: 4 });
    expect(shared.versions.slice(1)).toEqual(before.versions);
  }, 60_000);
});

describe.skipIf(!run)("a rollout is the cluster's: any node changes it, and refuses other changes of its agent", () => {
  const schema = `${base}_shared_rollout`;
  const started = servers();
  const start = (node: string) => started({ toml: clusterToml(node, schema) });
  const toml = (extra: string) => ({ body: tomlAgent('pilot', extra), contentType: 'application/toml' });
  interface RolloutView {
    running: boolean;
    live_version: number | null;
    rollout: { id: number; state: string; ended_by: string | null; reason: string | null } | null;
  }
  const rolloutOn = async (s: TestServer) =>
    (await http<RolloutView>(s.url, 'GET', '/api/v1/agents/pilot/rollout')).json;

  it('started through A: B shows it and refuses an update, B promotes it (no forwarding), and two nodes starting one at once get one', async () => {
    assertBuilt();
    schemas.push(schema);
    const a = await start('node-a');
    const b = await start('node-b');
    expect((await http(a.url, 'POST', '/api/v1/agents', toml('version = "1.0.0"\n'))).status).toBe(201);
    await waitUntil(async () => (await http(b.url, 'GET', '/api/v1/agents/pilot')).status === 200, {
      what: 'the agent on B',
    });
    const begun = await http<{ rollout: { id: number } }>(
      a.url,
      'PUT',
      '/api/v1/agents/pilot?strategy=blue-green',
      toml('version = "2.0.0"\n'),
    );
    expect(begun.status, begun.text).toBe(200);
    // B reads the same row: the same status, and an update through B refused with the same words as through A.
    expect(await rolloutOn(b)).toEqual(await rolloutOn(a));
    expect(await rolloutOn(b)).toMatchObject({ running: true, rollout: { id: begun.json.rollout.id } });
    for (const s of [a, b]) {
      const r = await http<{ error: { code: string; message: string } }>(
        s.url,
        'PUT',
        '/api/v1/agents/pilot',
        toml('version = "3.0.0"\n'),
      );
      expect(r.status, r.text).toBe(409);
      expect(r.json.error.code).toBe('rollout_in_progress');
      expect(r.json.error.message).toContain('has a blue-green rollout of version 2 running');
    }
    const status = await runCli(['--server', b.url, 'agent', 'rollout', 'status', 'pilot'], { cwd: b.dir });
    expectExit(status, 0);
    expect(status.stdout).toContain('pilot: blue-green rollout running');
    expect(status.stdout).toContain('  candidate: version 2 (reachable as pilot@2)');
    // A rollback to another version than the stable one, through B: refused as on A.
    const further = await http<{ error: { code: string; message: string } }>(
      b.url,
      'POST',
      '/api/v1/agents/pilot/rollback',
      { body: '{"to": 9}', contentType: 'application/json' },
    );
    expect([further.status, further.json.error.code]).toEqual([409, 'rollout_in_progress']);
    expect(further.json.error.message).toContain('a rollback ends it and keeps version 1');

    // Promoted through B (the real CLI), which carries it out itself; A sees the same ended row.
    const promote = await runCli(['--server', b.url, 'agent', 'promote', 'pilot'], { cwd: b.dir });
    expectExit(promote, 0);
    expect(promote.stdout).toMatch(/^promoted pilot: version 2 is live \(recorded as version 3\)/m);
    expect(await rolloutOn(a)).toMatchObject({ running: false, live_version: 3, rollout: { state: 'promoted' } });
    // A's promotion of the same rollout finds none running.
    const twice = await http<{ error: { code: string } }>(a.url, 'POST', '/api/v1/agents/pilot/promote');
    expect([twice.status, twice.json.error.code]).toEqual([409, 'no_rollout']);
    await waitUntil(
      async () =>
        (await http<{ definition: { version?: string } }>(a.url, 'GET', '/api/v1/agents/pilot')).json.definition
          .version === '2.0.0',
      { what: 'the promotion on A' },
    );

    // A and B start a rollout of the agent at the same moment: one runs, the other is refused.
    const both = await Promise.all(
      [a, b].map((s, i) =>
        http<{ error?: { code: string } }>(
          s.url,
          'PUT',
          '/api/v1/agents/pilot?strategy=blue-green',
          toml(`version = "4.${i}.0"\n`),
        ),
      ),
    );
    expect(both.map((r) => r.status).sort()).toEqual([200, 409]);
    expect(both.find((r) => r.status === 409)!.json.error?.code).toBe('rollout_in_progress');
    // Rolled back through the node that did not start it.
    const other = both[0]!.status === 200 ? b : a;
    const rolledBack = await http<{ rollout: { state: string } }>(other.url, 'POST', '/api/v1/agents/pilot/rollback');
    expect([rolledBack.status, rolledBack.json.rollout.state]).toEqual([200, 'rolled_back']);
    expect((await rolloutOn(a)).rollout?.state).toBe('rolled_back');
    expect((await rolloutOn(b)).rollout?.state).toBe('rolled_back');
  }, 90_000);
});

describe.skipIf(!run)("a rollout's candidate answers as NAME@VERSION through every node, not only its own", () => {
  const schema = `${base}_candidate`;
  const started = servers();
  /** Nodes A and B, started by the first test (the tests of this block build on each other). */
  const nodes: TestServer[] = [];
  // Each node's scripted provider answers with the agent's system prompt: a reply shows which version ran.
  const start = (node: string) => {
    const dir = makeTempDir('caxton-candidate-');
    writeFileSync(join(dir, 'replies.toml'), '[[rules]]\ncontent = "{{system}}"\n');
    return started({
      dir,
      toml: `${clusterToml(node, schema)}\n[llm]\ndefault_provider = "demo"\n[llm.providers.demo]\ntype = "scripted"\nscript = "replies.toml"\n`,
    });
  };
  const pilot = (prompt: string) => ({
    body: `name = "pilot"\ndescription = "test agent pilot"\ncapabilities = ["testing"]\nsystem_prompt = "${prompt}"\n`,
    contentType: 'application/toml',
  });
  const invoke = (s: TestServer, name: string, conversation?: string) =>
    http<{ content?: string; error?: { code: string; message: string } }>(
      s.url,
      'POST',
      `/api/v1/agents/${name}/invoke`,
      {
        body: JSON.stringify({ request: 'who?', ...(conversation !== undefined && { conversation_id: conversation }) }),
        contentType: 'application/json',
      },
    );
  interface Figures {
    requests: number;
  }
  interface RolloutView {
    running: boolean;
    rollout: { state: string; strategy: string; candidate_version: number } | null;
    canary: { stage: number; weight: number; candidate: Figures; stable: Figures } | null;
    shadow: {
      compared: number;
      skipped: number;
      agreements: number;
      disagreements: { stable_answer: string; candidate_answer: string | null }[];
    } | null;
  }
  const rolloutOn = async (s: TestServer) =>
    (await http<RolloutView>(s.url, 'GET', '/api/v1/agents/pilot/rollout')).json;
  /** A canary of `prompt` started on node A (`query`: its plan), once node B reads it at its first share. */
  const canaryOnA = async (query: string, prompt: string, share: number) => {
    const deploy = await http<{ rollout: { id: number } }>(
      nodes[0]!.url,
      'PUT',
      `/api/v1/agents/pilot?strategy=canary&${query}`,
      pilot(prompt),
    );
    expect(deploy.status, deploy.text).toBe(200);
    await waitUntil(async () => (await rolloutOn(nodes[1]!)).canary?.weight === share, {
      timeoutMs: 10_000,
      what: "the canary's share on node B",
    });
    return deploy.json.rollout;
  };
  type Sent = { messages: { performative: string; sender: string; content: string }[] };
  const send = (s: TestServer, receiver: string) =>
    http<Sent>(s.url, 'POST', '/api/v1/messages?wait=10', {
      body: JSON.stringify({ performative: 'request', receiver, content: 'who?', sender: 'user' }),
      contentType: 'application/json',
    });

  it('a blue-green candidate started on A is invoked and messaged through B; once A rolls it back, both still reach it as a kept version and refuse one that does not exist alike', async () => {
    schemas.push(schema);
    const a = await start('node-a');
    const b = await start('node-b');
    nodes.push(a, b);
    expect((await http(a.url, 'POST', '/api/v1/agents', pilot('You are pilot v1.'))).status).toBe(201);
    await waitUntil(async () => (await http(b.url, 'GET', '/api/v1/agents/pilot')).status === 200, {
      what: 'the agent on B',
    });
    const rollout = await http(a.url, 'PUT', '/api/v1/agents/pilot?strategy=blue-green', pilot('You are pilot v2.'));
    expect(rollout.status, rollout.text).toBe(200);

    // B reads A's rollout (the shared row, read every second) and serves its candidate when addressed.
    await waitUntil(async () => (await invoke(b, 'pilot@2')).json.content === 'You are pilot v2.', {
      timeoutMs: 10_000,
      what: 'pilot@2 answering through node B',
    });
    // Unaddressed, B serves the stable version, as A does.
    expect((await invoke(b, 'pilot')).json.content).toBe('You are pilot v1.');
    expect((await invoke(a, 'pilot')).json.content).toBe('You are pilot v1.');
    // Messages to the candidate through B are accepted and answered by it, on whichever node ran them.
    for (let i = 0; i < 4; i++) {
      const sent = await send(b, 'pilot@2');
      expect(sent.status, sent.text).toBe(200);
      expect(sent.json.messages.find((m) => m.performative === 'inform')).toMatchObject({
        sender: 'pilot@2',
        content: 'You are pilot v2.',
      });
    }

    // Rolled back on A: the candidate stays addressable on both nodes (a kept version), and a version
    // that does not exist is refused by both with the same error.
    expect((await http(a.url, 'POST', '/api/v1/agents/pilot/rollback')).status).toBe(200);
    await waitUntil(async () => (await invoke(b, 'pilot')).json.content === 'You are pilot v1.', {
      timeoutMs: 10_000,
      what: 'pilot live on B after the rollback',
    });
    expect((await invoke(b, 'pilot@2')).json.content).toBe('You are pilot v2.');
    expect((await invoke(a, 'pilot@2')).json.content).toBe('You are pilot v2.');
    const onA = await invoke(a, 'pilot@9');
    const onB = await invoke(b, 'pilot@9');
    expect([onA.status, onA.json.error?.message]).toEqual([onB.status, onB.json.error?.message]);
    expect(onB.json.error?.code).toBe('version_not_found');
    expect(onB.json.error?.message).toContain('agent "pilot" has no version 9');
  }, 60_000);

  it("a canary started on A splits B's new conversations at its share, each conversation on one version on both nodes; both nodes' executions add up in one set of figures", async () => {
    const [a, b] = nodes;
    await canaryOnA('stages=50,100&hold=1h&min_requests=1000', 'You are pilot canary.', 50);
    // The real CLI through B says so.
    assertBuilt();
    const status = await runCli(['--server', b!.url, 'agent', 'rollout', 'status', 'pilot'], { cwd: b!.dir });
    expectExit(status, 0);
    expect(status.stdout).toContain('pilot: canary rollout running');
    expect(status.stdout).toContain(
      '  stage:     1 of 2: 50 % of new conversations to the candidate (stages 50, 100 %)',
    );
    expect(status.stdout).toContain('  next:      caxton agent promote pilot, or caxton agent rollback pilot');

    const conversations = Array.from({ length: 40 }, (_, i) => `split-${i}`);
    const onB = new Map<string, string | undefined>();
    for (const c of conversations) onB.set(c, (await invoke(b!, 'pilot', c)).json.content);
    const canaryOnB = [...onB.values()].filter((x) => x === 'You are pilot canary.').length;
    // Both versions get conversations through B (before: all 40 on the stable version).
    expect(canaryOnB).toBeGreaterThan(5);
    expect(canaryOnB).toBeLessThan(35);
    expect(new Set(onB.values())).toEqual(new Set(['You are pilot canary.', 'You are pilot v1.']));
    // The same conversations through A, where the canary runs: each gets the version it got on B.
    for (const c of conversations) expect([c, (await invoke(a!, 'pilot', c)).json.content]).toEqual([c, onB.get(c)]);
    // The figures are every node's: both nodes' 40 each, the same through A and B once each node's
    // counts are written (every second).
    for (const s of [a!, b!])
      await waitUntil(
        async () => {
          const c = (await rolloutOn(s)).canary;
          return c?.candidate.requests === 2 * canaryOnB && c.stable.requests === 2 * (40 - canaryOnB);
        },
        { timeoutMs: 10_000, what: "both nodes' executions in the canary's figures" },
      );
    expect((await rolloutOn(b!)).canary).toEqual((await rolloutOn(a!)).canary);

    // Rolled back through B: the canary ends for A too, and B sends no new conversation to the candidate any more.
    const rolledBack = await http<{ rollout: { state: string; ended_by: string } }>(
      b!.url,
      'POST',
      '/api/v1/agents/pilot/rollback',
    );
    expect(rolledBack.status, rolledBack.text).toBe(200);
    expect(rolledBack.json.rollout.state).toBe('rolled_back');
    expect((await rolloutOn(a!)).rollout?.state).toBe('rolled_back');
    for (let i = 0; i < 10; i++)
      expect((await invoke(b!, 'pilot', `after-${i}`)).json.content).toBe('You are pilot v1.');
    // A conversation keeps the version it started on, through either node, after the canary ended.
    for (const c of conversations.slice(0, 12)) {
      expect([c, (await invoke(b!, 'pilot', c)).json.content]).toEqual([c, onB.get(c)]);
      expect([c, (await invoke(a!, 'pilot', c)).json.content]).toEqual([c, onB.get(c)]);
    }
  }, 60_000);

  it("B's executions alone take A's canary through its stages to its promotion (by whichever node judges), which reaches both", async () => {
    const [a, b] = nodes;
    await canaryOnA('stages=50,100&hold=0s&min_requests=3&max_latency_ratio=1000', 'You are pilot promoted.', 50);
    let n = 0;
    await waitUntil(
      async () => {
        // New conversations through B only: A runs none of them.
        for (let i = 0; i < 4; i++) await invoke(b!, 'pilot', `judged-${n++}`);
        return (await rolloutOn(a!)).rollout?.state === 'promoted';
      },
      { timeoutMs: 20_000, intervalMs: 100, what: 'the canary promoted on node A' },
    );
    await waitUntil(async () => (await invoke(b!, 'pilot', `late-${n}`)).json.content === 'You are pilot promoted.', {
      timeoutMs: 10_000,
      what: 'the promotion on node B',
    });
  }, 60_000);

  it("a conversation keeps its version when the canary's stage rises and its next turn reaches a node that never saw it, and after the canary ends", async () => {
    const [a, b] = nodes;
    const rollout = await canaryOnA(
      'stages=20,80,100&hold=0s&min_requests=3&max_latency_ratio=1000',
      'You are pilot rising.',
      20,
    );
    // Conversations placed (canaryBucket, as on every node) on the stable version at 20 % that 80 % would
    // place on the candidate, and some on the candidate at 20 %.
    const band: string[] = [];
    const low: string[] = [];
    for (let i = 0; band.length < 6 || low.length < 3; i++) {
      const c = `rise-${i}`;
      const bucket = canaryBucket(rollout.id, c);
      if (bucket >= 20 && bucket < 80 && band.length < 6) band.push(c);
      else if (bucket < 20 && low.length < 3) low.push(c);
    }
    // Their first turns through A, at 20 %: enough executions of both versions for the judge to raise the stage.
    for (const c of band) expect((await invoke(a!, 'pilot', c)).json.content).toBe('You are pilot promoted.');
    for (const c of low) expect((await invoke(a!, 'pilot', c)).json.content).toBe('You are pilot rising.');
    await waitUntil(async () => (await rolloutOn(b!)).canary?.weight === 80, {
      timeoutMs: 10_000,
      what: 'the second stage (80 %) on node B',
    });
    // Their next turns through B, which never saw them: the version each started on (before: the band moved to the candidate).
    // The first one streamed (the streaming route reads the pin before it checks the request).
    const streamed = await fetch(`${b!.url}/api/v1/agents/pilot/invoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ request: 'who?', conversation_id: band[0] }),
    });
    expect(streamed.headers.get('content-type')).toContain('text/event-stream');
    const text = await streamed.text();
    expect(text).toContain('You are pilot promoted.');
    expect(text).not.toContain('You are pilot rising.');
    for (const c of band)
      expect([c, (await invoke(b!, 'pilot', c)).json.content]).toEqual([c, 'You are pilot promoted.']);
    for (const c of low) expect([c, (await invoke(b!, 'pilot', c)).json.content]).toEqual([c, 'You are pilot rising.']);
    // Rolled back: each conversation still keeps its version, through B too (before: B put them all on the stable version).
    expect((await http(a!.url, 'POST', '/api/v1/agents/pilot/rollback')).status).toBe(200);
    expect((await rolloutOn(b!)).running).toBe(false);
    for (const c of low) expect([c, (await invoke(b!, 'pilot', c)).json.content]).toEqual([c, 'You are pilot rising.']);
    for (const c of band.slice(0, 2))
      expect([c, (await invoke(b!, 'pilot', c)).json.content]).toEqual([c, 'You are pilot promoted.']);
    expect((await invoke(b!, 'pilot', 'rise-new')).json.content).toBe('You are pilot promoted.');
  }, 60_000);

  it("a shadow rollout started on A copies B's live requests to the candidate on B, and the one report counts them", async () => {
    const [a, b] = nodes;
    const deploy = await http(a!.url, 'PUT', '/api/v1/agents/pilot?strategy=shadow', pilot('You are pilot shadowed.'));
    expect(deploy.status, deploy.text).toBe(200);
    await waitUntil(async () => (await rolloutOn(b!)).rollout?.strategy === 'shadow', {
      timeoutMs: 10_000,
      what: 'the shadow rollout read by node B',
    });
    // Live requests through B get the stable version, as on A.
    for (let i = 0; i < 5; i++)
      expect((await invoke(b!, 'pilot', `shadowed-${i}`)).json.content).toBe('You are pilot promoted.');
    // Each copied and compared on B, or skipped there (at most 4 copies run at once); A ran none.
    await waitUntil(
      async () => {
        const sh = (await rolloutOn(a!)).shadow;
        return sh !== null && sh.compared + sh.skipped === 5;
      },
      { timeoutMs: 10_000, what: "B's five copies in A's shadow report" },
    );
    const report = (await rolloutOn(a!)).shadow!;
    expect(report.compared).toBeGreaterThan(0);
    expect(report.agreements).toBe(0);
    expect(report.disagreements[0]).toMatchObject({
      stable_answer: 'You are pilot promoted.',
      candidate_answer: 'You are pilot shadowed.',
    });
    // B shows the same report.
    expect((await rolloutOn(b!)).shadow).toEqual(report);
    expect((await http(b!.url, 'POST', '/api/v1/agents/pilot/rollback')).status).toBe(200);
  }, 60_000);

  it('the node that started a canary stops: the other node judges it and promotes it on its own traffic', async () => {
    const [a, b] = nodes;
    await canaryOnA('stages=50,100&hold=0s&min_requests=3&max_latency_ratio=1000', 'You are pilot carried on.', 50);
    await a!.close();
    let n = 0;
    await waitUntil(
      async () => {
        for (let i = 0; i < 4; i++) await invoke(b!, 'pilot', `carried-${n++}`);
        return (await rolloutOn(b!)).rollout?.state === 'promoted';
      },
      { timeoutMs: 20_000, intervalMs: 100, what: 'the canary promoted by node B alone' },
    );
    expect((await invoke(b!, 'pilot', 'after-carried')).json.content).toBe('You are pilot carried on.');
  }, 60_000);
});
