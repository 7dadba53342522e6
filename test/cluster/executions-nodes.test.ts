/**
 * Execution records on a cluster (ADR 0056): three `caxton serve` nodes in this process on one
 * nats-server and one PostgreSQL schema. An execution run on any node is found from every node
 * (GET /api/v1/executions and /executions/{id}), once, with the node that ran it; filters and
 * the scope rule are the single node's (the same SQL, PostgreSQL's dialect). The PostgreSQL
 * adapter's retention by rows is applied across the nodes' records.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { entryOf, PgExecutionStore } from '../../src/execution/index.js';
import { makeTempDir } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';
import { clusterFixture, clusterToml, servers } from './helpers/serve-nodes.js';
import type { TestServer } from '../helpers/server.js';

const cluster = clusterFixture('execs');
const { run, schema } = cluster;
const NODES = ['node-a', 'node-b', 'node-c'] as const;

describe.skipIf(!run)('execution records on three nodes', () => {
  const start = servers();
  const nodes: TestServer[] = [];

  beforeAll(async () => {
    for (const node of NODES) {
      const dir = makeTempDir('caxton-execs-node-');
      writeFileSync(join(dir, 'replies.toml'), `fallback = "answered on ${node}"\n`);
      nodes.push(
        await start({
          dir,
          toml: `${clusterToml(node, cluster.nats.url, schema)}
[llm]
default_provider = "s"
[llm.providers.s]
type = "scripted"
script = "replies.toml"
`,
          agentFiles: { 'worker.toml': 'name = "worker"\nsystem_prompt = "You work."\n' },
        }),
      );
    }
  }, 90_000);

  it('an execution run on any node is found from every node, once, with the node that ran it', async () => {
    const ran: Record<string, string> = {};
    for (const [i, n] of nodes.entries()) {
      const r = await fetch(`${n.url}/api/v1/agents/worker/invoke`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ request: `job ${i}`, conversation_id: `conv-${i}` }),
      });
      const body = (await r.json()) as { execution_id: string; content: string };
      expect(r.status, JSON.stringify(body)).toBe(200);
      expect(body.content).toBe(`answered on ${NODES[i]}`);
      ran[body.execution_id] = NODES[i]!;
    }
    for (const n of nodes) {
      // Each node writes its records behind its answers (one batch per window): another node's
      // record is found once its node wrote it.
      const { value: list } = await waitUntil(
        async () => {
          const l = (await (await fetch(`${n.url}/api/v1/executions?agent=worker`)).json()) as {
            executions: { id: string; node: string }[];
          };
          return l.executions.length >= Object.keys(ran).length && l;
        },
        { what: `every execution listed by ${n.url}` },
      );
      expect(list.executions.map((e) => e.id).sort()).toEqual(Object.keys(ran).sort());
      for (const e of list.executions) expect(e.node).toBe(ran[e.id]);
      for (const [id, node] of Object.entries(ran)) {
        const one = (await (await fetch(`${n.url}/api/v1/executions/${id}`)).json()) as {
          node: string;
          answer: string;
          model_turns: unknown[];
        };
        expect(one.node).toBe(node);
        expect(one.answer).toBe(`answered on ${node}`);
        expect(one.model_turns).toHaveLength(1);
      }
      const conv = (await (await fetch(`${n.url}/api/v1/executions?conversation=conv-1`)).json()) as {
        executions: { node: string }[];
      };
      expect(conv.executions.map((e) => e.node)).toEqual(['node-b']);
    }
  });

  it('the PostgreSQL adapter keeps max_rows across the nodes and reads in the scope in the query', async () => {
    const stores = ['x', 'y'].map(
      (node) => new PgExecutionStore({ pool: cluster.pool, schema, node, retentionMs: 3_600_000, maxRows: 100 }),
    );
    const t0 = Date.now();
    for (let i = 0; i < 150; i++)
      stores[i % 2]!.record(
        entryOf({
          id: `exec_pg_${i}`,
          agent: i % 2 === 0 ? 'a-even' : 'b-odd',
          version: '1',
          shadow: false,
          started: t0 + i,
          duration_ms: 1,
          request: { request: 'r' },
          error: new Error('boom'),
        }),
      );
    for (const s of stores) await s.flush();
    // Skipped while another store holds the retention lock (its own timed run): ask until it ran.
    while ((await stores[0]!.prune()).skipped) await new Promise((r) => setTimeout(r, 50));
    const kept = await stores[1]!.list({ limit: 1000, since: t0 });
    expect(kept.executions).toHaveLength(100);
    const scoped = await stores[1]!.list({ limit: 1000, since: t0, agents: ['a-*'] });
    expect(new Set(scoped.executions.map((e) => e.agent))).toEqual(new Set(['a-even']));
    expect(await stores[0]!.get('exec_pg_149', { agents: ['a-*'] })).toBeUndefined();
    expect((await stores[0]!.get('exec_pg_149'))!.error).toEqual({ code: 'internal', message: 'boom' });
    for (const s of stores) await s.close();
  });
});
