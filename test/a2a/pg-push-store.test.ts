/**
 * A2A push notification configs on a cluster (docs/a2a.md, ADR 0140): the PostgreSQL store in a
 * schema of its own on the test server, its reads and changes scoped to the principal that set a
 * config, two stores (two nodes, each with its own pool) on one schema seeing each other's
 * configs; and a node that runs a task sending, to a real webhook on 127.0.0.1, a config another
 * node took, signed as every delivery is. The run itself is a stand-in (its journal read and its
 * change notices), the store, the pools and the webhook are real.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PgPushConfigStore } from '../../src/a2a/pg-push-store.js';
import { pushSignature, PushNotifier, SIGNATURE_HEADER, TIMESTAMP_HEADER, TOKEN_HEADER } from '../../src/a2a/push.js';
import type { PushConfig } from '../../src/a2a/push-store.js';
import type { DurableRuns, RunNotice, RunRecord, RunStatus } from '../../src/execution/index.js';
import { newRunRecord } from '../../src/execution/runs/run-model.js';
import { hasSystem, TEST_PG_URL } from '../helpers/system.js';
import { waitUntil } from '../helpers/wait.js';

const withPg = hasSystem('postgresql');
const base = `caxton_a2a_push_${process.pid}_${Date.now()}`;
let schemaNo = 0;
const schemas: string[] = [];
let pools: pg.Pool[] = [];

const config = (over: Partial<PushConfig> = {}): PushConfig => ({
  taskId: 'exec_1',
  principal: 'key-a',
  id: 'c1',
  url: 'https://hooks.example.com/a',
  token: 'tok-a',
  authScheme: '',
  authCredentials: '',
  ...over,
});

/** Two nodes' stores on one schema of its own, each with its own pool. */
async function twoStores(): Promise<{ a: PgPushConfigStore; b: PgPushConfigStore; schema: string }> {
  const schema = `${base}_${++schemaNo}`;
  schemas.push(schema);
  const a = await PgPushConfigStore.open({ pool: pools[0]!, schema });
  const b = await PgPushConfigStore.open({ pool: pools[1]!, schema });
  return { a, b, schema };
}

/** The runs of a node as the notifier reads them: one run, its status changed by the test. */
function runsOf(run: RunRecord): { runs: DurableRuns; set(status: RunStatus): void } {
  const watchers = new Set<(n: RunNotice) => void>();
  const runWatchers = new Set<() => void>();
  const runs = {
    journal: { get: (id: string) => Promise.resolve(id === run.id ? { run: { ...run }, steps: [] } : undefined) },
    watch: (f: (n: RunNotice) => void) => (watchers.add(f), () => watchers.delete(f)),
    watchRun: (_id: string, f: () => void) => (runWatchers.add(f), () => runWatchers.delete(f)),
  } as unknown as DurableRuns;
  return {
    runs,
    set(status) {
      run.status = status;
      for (const f of runWatchers) f();
      for (const f of watchers) f({ type: 'changed', run_id: run.id });
    },
  };
}

describe.skipIf(!withPg)('A2A push notification configs in PostgreSQL (a cluster)', () => {
  beforeAll(() => {
    pools = [
      new pg.Pool({ connectionString: TEST_PG_URL, max: 2 }),
      new pg.Pool({ connectionString: TEST_PG_URL, max: 2 }),
    ];
  });
  afterEach(async () => {
    for (const s of schemas.splice(0)) await pools[0]!.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
  });
  afterAll(async () => {
    for (const p of pools) await p.end();
  });

  it('sets, replaces, reads, lists and deletes a principal’s configs; another principal sees none of them', async () => {
    const { a } = await twoStores();
    await a.put(config());
    await a.put(config({ id: 'c2', url: 'https://hooks.example.com/b', authScheme: 'Bearer', authCredentials: 's' }));
    await a.put(config({ principal: 'key-b', id: 'c1', url: 'https://hooks.example.com/other' }));
    await a.put(config({ url: 'https://hooks.example.com/a2' })); // replaces key-a's c1
    expect(await a.get('exec_1', 'key-a', 'c1')).toEqual(config({ url: 'https://hooks.example.com/a2' }));
    expect((await a.list('exec_1', 'key-a')).map((c) => c.id)).toEqual(['c1', 'c2']);
    expect((await a.list('exec_1', 'key-b')).map((c) => c.url)).toEqual(['https://hooks.example.com/other']);
    expect(await a.get('exec_1', 'key-c', 'c1')).toBeUndefined();
    expect(await a.list('exec_1', 'key-c')).toEqual([]);
    expect(await a.delete('exec_1', 'key-c', 'c1')).toBe(false);
    expect(await a.delete('exec_1', 'key-b', 'c1')).toBe(true);
    expect(await a.delete('exec_1', 'key-b', 'c1')).toBe(false);
    expect(await a.get('exec_1', 'key-a', 'c1')).toBeDefined();
    expect((await a.forTask('exec_1')).map((c) => `${c.principal}/${c.id}`)).toEqual(['key-a/c1', 'key-a/c2']);
    await a.put(config({ taskId: 'exec_2' }));
    expect((await a.tasks()).sort()).toEqual(['exec_1', 'exec_2']);
    await a.dropTask('exec_1');
    expect(await a.tasks()).toEqual(['exec_2']);
  });

  it('two nodes on one schema see each other’s configs', async () => {
    const { a, b, schema } = await twoStores();
    await a.put(config());
    expect(await b.get('exec_1', 'key-a', 'c1')).toEqual(config());
    await b.put(config({ id: 'c2' }));
    expect((await a.forTask('exec_1')).map((c) => c.id)).toEqual(['c1', 'c2']);
    expect(await b.delete('exec_1', 'key-a', 'c1')).toBe(true);
    expect((await a.list('exec_1', 'key-a')).map((c) => c.id)).toEqual(['c2']);
    // Migrated once, whichever node opened first.
    const { rows } = await pools[0]!.query<{ n: string }>(
      `SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'a2a_push_configs'`,
      [schema],
    );
    expect(Number(rows[0]!.n)).toBe(1);
  });

  describe('delivery by the node running the task', () => {
    let hook: Server;
    let hookUrl: string;
    const hits: { headers: IncomingHttpHeaders; body: string }[] = [];
    beforeAll(async () => {
      hook = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          hits.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
          res.writeHead(200).end();
        });
      });
      await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
      hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`;
    });
    afterAll(() => new Promise<void>((r) => hook.close(() => r())));

    it('sends a config node A took, signed, when node B runs the task and A is gone', async () => {
      const { a, b } = await twoStores();
      const run = newRunRecord(
        { id: 'exec_b1', key: null, agent: 'p-chat', origin: 'a2a', principal: 'key-a', request: { request: 'hello' } },
        { request: 'hello' },
        Date.now(),
        'node-b',
      );
      // Node A took the config and is down since: only its row in the shared store is left.
      await a.put(config({ taskId: run.id, url: hookUrl, token: 'tok-shared' }));
      const nodeB = runsOf(run);
      const push = new PushNotifier({
        store: b,
        runs: nodeB.runs,
        allowedHosts: ['127.0.0.1'],
        shared: true,
        sharedCheckMs: 0,
      });
      try {
        // At start a shared store's tasks are not followed by every node, only looked after.
        await push.resume();
        expect(hits).toHaveLength(0);
        nodeB.set('running');
        await waitUntil(() => hits.length >= 1, { timeoutMs: 10_000 });
        nodeB.set('completed');
        await waitUntil(() => hits.some((h) => h.body.includes('TASK_STATE_COMPLETED')), { timeoutMs: 10_000 });
      } finally {
        push.close();
      }
      for (const h of hits) {
        expect(h.headers[TOKEN_HEADER.toLowerCase()]).toBe('tok-shared');
        const ts = h.headers[TIMESTAMP_HEADER.toLowerCase()] as string;
        expect(h.headers[SIGNATURE_HEADER.toLowerCase()]).toBe(pushSignature('tok-shared', ts, h.body));
        expect((JSON.parse(h.body) as { task: { id: string } }).task.id).toBe(run.id);
      }
    });
  });
});
