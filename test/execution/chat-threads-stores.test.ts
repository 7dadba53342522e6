/**
 * Chat threads read from the execution records, the same on both adapters (a SQLite file, and
 * PostgreSQL when it runs here): a thread per conversation of one agent begun by a direct call,
 * newest activity first, in pages; a principal's list holds only the threads it began (not one it
 * joined later); message deliveries and shadow copies are no one's thread; a thread's turns come
 * oldest first with their version, tool calls and run. A trace read names only its trace's executions.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  entryOf,
  EXECUTIONS_MIGRATIONS,
  PgExecutionStore,
  SqliteExecutionStore,
  type ExecutionLog,
} from '../../src/execution/index.js';
import type { FinishedExecution } from '../../src/execution/records/index.js';
import { migrate, openDatabase } from '../../src/storage/index.js';
import { hasSystem, TEST_PG_URL } from '../helpers/system.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

const schema = `caxton_threads_${process.pid}_${Date.now()}`;
const withPg = hasSystem('postgresql');
let pool: pg.Pool | undefined;

beforeAll(async () => {
  if (withPg) {
    pool = new pg.Pool({ connectionString: TEST_PG_URL, max: 2 });
    await PgExecutionStore.migrate(pool, schema);
  }
});

afterAll(async () => {
  if (pool) {
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await pool.end();
  }
  removeTempDirs();
});

let n = 0;
const t0 = Date.now();
function run(
  conversation: string,
  principal: string | undefined,
  request: string,
  more: Partial<FinishedExecution> & { message_id?: string } = {},
) {
  n++;
  const { message_id, ...rest } = more;
  return entryOf({
    id: `exec_thread_${n}`,
    agent: 'helper',
    version: '1.0.0',
    version_number: 2,
    shadow: false,
    started: t0 + n,
    duration_ms: 1,
    request: {
      request,
      conversation_id: conversation,
      ...(principal !== undefined && { principal }),
      ...(message_id !== undefined && { message_id }),
    },
    response: {
      id: `r${n}`,
      execution_id: `exec_thread_${n}`,
      agent: 'helper',
      content: `answer to ${request}`,
      tool_calls: [
        {
          id: 't1',
          name: 'calculator',
          arguments: { expression: '1+1' },
          result: '2',
          is_error: false,
          duration_ms: 1,
        },
      ],
      usage: { input_tokens: 1, output_tokens: 1, total_tokens: 2 },
      execution_time_ms: 1,
      finish_reason: 'stop',
      provider: 's',
      model: 'scripted',
      turns: 1,
      isolation: 'context',
    },
    ...rest,
  });
}

async function exercise(store: ExecutionLog): Promise<void> {
  store.record(run('c1', 'key:alice', 'first in c1'));
  store.record(run('c2', 'key:bob', 'first in c2'));
  store.record(run('c1', 'key:alice', 'second in c1', { addressed: true, version_number: 1 }));
  // Alice joins Bob's thread later: still Bob's.
  store.record(run('c2', 'key:alice', 'alice in c2'));
  store.record(run('c3', 'key:alice', 'a message', { message_id: 'm1' }));
  // A shadow copy (a rollout's candidate on a live request) is run without the conversation.
  store.record({ ...run('c4', undefined, 'a shadow copy', { shadow: true }), conversation_id: null });
  store.record(run('c5', 'key:alice', `long ${'x'.repeat(200)}`));
  await store.flush();

  const alice = await store.threads({ agent: 'helper', principal: 'key:alice' });
  expect(alice.threads.map((t) => t.conversation_id)).toEqual(['c5', 'c1']);
  expect(alice.threads[1]).toMatchObject({
    title: 'first in c1',
    turns: 2,
    principal: 'key:alice',
    version_number: 1,
    target: 'helper@1',
  });
  expect(alice.threads[0]!.title).toHaveLength(80);
  expect(alice.threads[0]!.title.endsWith('…')).toBe(true);

  const all = await store.threads({ agent: 'helper' });
  expect(all.threads.map((t) => [t.conversation_id, t.principal, t.turns])).toEqual([
    ['c5', 'key:alice', 1],
    ['c2', 'key:bob', 2],
    ['c1', 'key:alice', 2],
  ]);
  const page = await store.threads({ agent: 'helper', limit: 2 });
  expect(page.threads.map((t) => t.conversation_id)).toEqual(['c5', 'c2']);
  const next = await store.threads({ agent: 'helper', limit: 2, before: Number(page.next_cursor) });
  expect(next.threads.map((t) => t.conversation_id)).toEqual(['c1']);
  expect((await store.threads({ agent: 'other' })).threads).toEqual([]);

  const turns = await store.thread('helper', 'c1');
  expect(turns.map((v) => [v.request, v.answer, v.version_number, v.addressed])).toEqual([
    ['first in c1', 'answer to first in c1', 2, false],
    ['second in c1', 'answer to second in c1', 1, true],
  ]);
  expect(turns[0]!.tool_calls).toMatchObject([{ name: 'calculator', arguments: '{"expression":"1+1"}', result: '2' }]);
  expect(await store.thread('helper', 'c3')).toEqual([]);

  // A trace read: the trace's executions only, not another trace's of the same second.
  const second = 'abcdef01';
  const traced = run('c6', 'key:alice', 'traced', { trace_id: `${second}${'1'.repeat(24)}` });
  store.record(traced);
  store.record(run('c6', 'key:alice', 'traced too', { trace_id: `${second}${'2'.repeat(24)}` }));
  expect((await store.byTrace(`${second}${'1'.repeat(24)}`)).map((e) => e.id)).toEqual([traced.id]);
  expect(await store.byTrace(`${second}${'3'.repeat(24)}`)).toEqual([]);

  // A chat turn's record is as private as its thread: Bob reads his thread c2 (Alice's turn in it
  // too), not Alice's c1, nor by id, nor through a trace; a message's delivery and a record outside
  // any conversation are no thread's.
  const bob = { thread_owner: 'key:bob' };
  const ids = async (q: Parameters<ExecutionLog['list']>[0]) =>
    (await store.list({ agent: 'helper', limit: 100, ...q })).executions.map((e) => e.conversation_id);
  expect(await ids(bob)).toEqual([null, 'c3', 'c2', 'c2']);
  expect(await ids({ ...bob, conversation_id: 'c1' })).toEqual([]);
  expect(await ids({ thread_owner: 'key:alice', conversation_id: 'c1' })).toEqual(['c1', 'c1']);
  const c1 = (await store.list({ conversation_id: 'c1' })).executions[0]!.id;
  expect(await store.get(c1, bob)).toBeUndefined();
  expect((await store.get(c1, { thread_owner: 'key:alice' }))?.request).toBe('second in c1');
  expect(await store.byTrace(`${second}${'1'.repeat(24)}`, bob)).toEqual([]);
  // Bob's thread narrowed by an agent scope too: both rules at once.
  expect(await ids({ ...bob, agents: ['other*'] })).toEqual([]);
}

describe('chat threads from the execution records', () => {
  it('SQLite', async () => {
    const db = openDatabase(`${makeTempDir('caxton-threads-')}/caxton.db`);
    migrate(db, EXECUTIONS_MIGRATIONS);
    const store = new SqliteExecutionStore({ db, retentionMs: 3_600_000, maxRows: 1000 });
    try {
      await exercise(store);
    } finally {
      store.close();
      db.close();
    }
  });

  it.skipIf(!withPg)('PostgreSQL', async () => {
    const store = new PgExecutionStore({ pool: pool!, schema, node: 'n1', retentionMs: 3_600_000, maxRows: 1000 });
    try {
      await exercise(store);
    } finally {
      await store.close();
    }
  });
});
