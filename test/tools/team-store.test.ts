/**
 * The team task lists as stored (src/tools/todo/team-store.ts, pg-team-store.ts): a server's lists
 * are in its SQLite file and come back when it is opened again; a cluster's are in its PostgreSQL,
 * where every node reads and changes the same lists; and two agents changing one list at once,
 * on one node or on two, both keep their change; with PostgreSQL out of reach a call fails naming it
 * and changes nothing. The rules themselves (who reaches which list, the
 * bounds) are test/tools/team.test.ts's.
 */
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../../src/storage/index.js';
import type { Tool, ToolContext } from '../../src/tools/index.js';
import { PgTeamStore } from '../../src/tools/todo/pg-team-store.js';
import { SqliteTeamStore, TEAM_LIMITS, TeamBoard, teamTools, type TeamStore } from '../../src/tools/todo/index.js';
import { hasSystem, TEST_PG_URL } from '../helpers/system.js';
import { startPgProxy } from '../helpers/tcp-proxy.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

/** A node: its board over `store`, and its team tools. */
function node(store: TeamStore, now: () => number = Date.now) {
  const board = new TeamBoard(store, now);
  const tools = new Map<string, Tool>(teamTools(board, undefined).map((t) => [t.name, t]));
  const run = async (tool: string, c: ToolContext, args: Record<string, unknown> = {}) =>
    (await tools.get(`team.${tool}`)!.invoke(args, c)).content;
  return { board, run };
}

const ctx = (agent: string, where: { conversation?: string; execution?: string }): ToolContext => ({
  agent,
  principal: 'key:p',
  execution_id: where.execution ?? `exec-${agent}`,
  ...(where.conversation !== undefined && { conversation_id: where.conversation }),
  deadline: Date.now() + 60_000,
  signal: new AbortController().signal,
});

const task = (subject: string) => ({ subject, description: `do ${subject}` });
const lead = ctx('lead', { execution: 'e-lead' });
const mate = ctx('worker', { conversation: 'conv-mate' });

/** The lead makes team "crew" with `tasks` tasks and starts `worker` in conversation conv-mate. */
async function crew(n: ReturnType<typeof node>, tasks: number): Promise<void> {
  expect(await n.run('create', lead, { team_name: 'crew' })).toContain('Team "crew" created');
  for (let i = 1; i <= tasks; i++) await n.run('task_create', lead, task(`t${i}`));
  const team = (await n.board.teamOf(lead, false))!;
  expect(await n.board.join(team, { name: 'alice', agent: 'worker' }, 'conv-mate', 'key:p')).toBeUndefined();
}

const ids = (list: string) => [...list.matchAll(/^#(\d+) /gm)].map((m) => Number(m[1]));

afterAll(() => removeTempDirs());

describe('team lists in SQLite', () => {
  it('a team, its tasks and its members are there again when the store is opened again on the same file', async () => {
    const dir = makeTempDir();
    let db: Db = openDatabase(dir);
    const first = node(new SqliteTeamStore(db));
    await crew(first, 2);
    expect(await first.run('task_update', mate, { taskId: '1', owner: 'alice', status: 'in_progress' })).toBe(
      'Updated task #1 owner, status',
    );
    await first.run('task_update', lead, { taskId: '2', addBlockedBy: ['1'], metadata: { area: 'parser' } });
    db.close();

    db = openDatabase(dir);
    const again = node(new SqliteTeamStore(db));
    expect(await again.run('task_list', lead)).toBe('#1 [in_progress] t1 (alice)\n#2 [pending] t2 [blocked by #1]');
    expect(await again.run('task_list', mate)).toBe('#1 [in_progress] t1 (alice)\n#2 [pending] t2 [blocked by #1]');
    expect(await again.run('task_get', mate, { taskId: '2' })).toContain('Metadata: {"area":"parser"}');
    // The numbering goes on, the lead is still the lead, and a teammate still cannot delete the team.
    expect(await again.run('task_create', mate, task('t3'))).toBe('Task #3 created successfully: t3');
    expect(await again.run('create', lead, { team_name: 'other' })).toContain('Already leading team "crew"');
    expect(await again.run('delete', mate)).toContain('Only the lead of team "crew"');
    expect(await again.run('delete', lead)).toBe(
      'Team "crew" deleted: its task list (3 tasks) and membership are gone.',
    );
    for (const table of ['teams', 'team_tasks', 'team_memberships'])
      expect(db.prepare(`SELECT count(*) AS n FROM ${table}`).get()).toEqual({ n: 0 });
    db.close();
  });

  it('a list idle for an hour is out of reach at once, and its rows go when a new list is made', async () => {
    let now = 1_000_000;
    const db = openDatabase(makeTempDir());
    const n = node(new SqliteTeamStore(db), () => now);
    await crew(n, 1);
    now += TEAM_LIMITS.idle_ms;
    expect(await n.run('task_list', mate)).toBe('No tasks found');
    expect(db.prepare('SELECT count(*) AS n FROM team_tasks').get()).toEqual({ n: 1 });
    // The lead's first call after the hour makes a list of its own (its key led to the idle one).
    expect(await n.run('task_create', lead, task('fresh'))).toBe('Task #1 created successfully: fresh');
    expect(await n.run('task_list', lead)).toBe('#1 [pending] fresh');
    expect(db.prepare('SELECT count(*) AS n FROM teams').get()).toEqual({ n: 1 });
    expect(db.prepare('SELECT count(*) AS n FROM team_memberships').get()).toEqual({ n: 1 });
    expect(await n.board.size()).toBe(1);
    db.close();
  });

  it('concurrent TaskCreate and TaskUpdate calls of two members all keep their change', async () => {
    const db = openDatabase(makeTempDir());
    const n = node(new SqliteTeamStore(db));
    await crew(n, 1);
    const calls: Promise<string>[] = [];
    for (let i = 0; i < 20; i++) {
      calls.push(n.run('task_create', i % 2 === 0 ? lead : mate, task(`c${i}`)));
      calls.push(n.run('task_update', i % 2 === 0 ? lead : mate, { taskId: '1', metadata: { [`k${i}`]: i } }));
    }
    await Promise.all(calls);
    const list = await n.run('task_list', lead);
    expect(ids(list)).toEqual(Array.from({ length: 21 }, (_, i) => i + 1));
    const meta = JSON.parse(/Metadata: (.*)$/m.exec(await n.run('task_get', mate, { taskId: '1' }))![1]!) as object;
    expect(Object.keys(meta)).toHaveLength(20);
    db.close();
  });
});

const withPg = hasSystem('postgresql');
const base = `caxton_teams_${process.pid}_${Date.now()}`;
let schemaNo = 0;
const schemas: string[] = [];
let pools: pg.Pool[] = [];

describe.skipIf(!withPg)('team lists in PostgreSQL (a cluster)', () => {
  beforeAll(() => {
    pools = [
      new pg.Pool({ connectionString: TEST_PG_URL, max: 4 }),
      new pg.Pool({ connectionString: TEST_PG_URL, max: 4 }),
    ];
  });
  afterEach(async () => {
    for (const s of schemas.splice(0)) await pools[0]!.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
  });
  afterAll(async () => {
    for (const p of pools) await p.end();
  });

  /** Two nodes on one schema of their own, each with its own pool (as two `caxton serve` would be). */
  async function twoNodes(now: () => number = Date.now) {
    const schema = `${base}_${++schemaNo}`;
    schemas.push(schema);
    const a = node(await PgTeamStore.open({ pool: pools[0]!, schema }), now);
    const b = node(await PgTeamStore.open({ pool: pools[1]!, schema }), now);
    return { a, b, schema };
  }

  it("each node sees and changes the other's teams and tasks", async () => {
    const { a, b } = await twoNodes();
    await crew(a, 2);
    // The teammate's request is handled on node B: it finds its team there.
    expect(await b.run('task_list', mate)).toBe('#1 [pending] t1\n#2 [pending] t2');
    expect(await b.run('task_update', mate, { taskId: '2', owner: 'alice', status: 'completed' })).toBe(
      'Updated task #2 owner, status',
    );
    expect(await b.run('task_create', mate, task('t3'))).toBe('Task #3 created successfully: t3');
    expect(await a.run('task_list', lead)).toBe('#1 [pending] t1\n#2 [completed] t2 (alice)\n#3 [pending] t3');
    // The same agent elsewhere is not a member on either node.
    expect(await b.run('task_list', ctx('worker', { conversation: 'conv-other' }))).toBe('No tasks found');
    expect(await b.run('delete', mate)).toContain('Only the lead of team "crew"');
    expect(await b.run('delete', lead)).toBe('Team "crew" deleted: its task list (3 tasks) and membership are gone.');
    expect(await a.run('task_list', mate)).toBe('No tasks found');
  });

  it('concurrent TaskCreate and TaskUpdate calls on two nodes all keep their change', async () => {
    const { a, b } = await twoNodes();
    await crew(a, 1);
    const calls: Promise<string>[] = [];
    for (let i = 0; i < 20; i++) {
      const [n, who] = i % 2 === 0 ? [a, lead] : [b, mate];
      calls.push(n.run('task_create', who, task(`c${i}`)));
      calls.push(n.run('task_update', who, { taskId: '1', metadata: { [`k${i}`]: i } }));
    }
    expect((await Promise.all(calls)).filter((r) => !/^(Task #\d+ created|Updated task #1 metadata)/.test(r))).toEqual(
      [],
    );
    expect(ids(await b.run('task_list', lead))).toEqual(Array.from({ length: 21 }, (_, i) => i + 1));
    const meta = JSON.parse(/Metadata: (.*)$/m.exec(await a.run('task_get', mate, { taskId: '1' }))![1]!) as object;
    expect(Object.keys(meta)).toHaveLength(20);
    // Two different fields of one task, changed on two nodes at once: both are kept.
    await Promise.all([
      a.run('task_update', lead, { taskId: '2', owner: 'alice' }),
      b.run('task_update', mate, { taskId: '2', status: 'in_progress' }),
    ]);
    expect(await a.run('task_get', lead, { taskId: '2' })).toMatch(/Status: in_progress[\s\S]*Owner: alice/);
  });

  it("one caller's first calls on two nodes at once make one list", async () => {
    const { a, b, schema } = await twoNodes();
    const solo = ctx('solo', { conversation: 'conv-solo' });
    await Promise.all([a.run('task_create', solo, task('x')), b.run('task_create', solo, task('y'))]);
    expect(ids(await a.run('task_list', solo))).toEqual([1, 2]);
    const { rows } = await pools[0]!.query<{ n: string }>(`SELECT count(*) AS n FROM "${schema}".teams`);
    expect(Number(rows[0]!.n)).toBe(1);
  });

  it('PostgreSQL out of reach: a team tool fails naming it and changes nothing; back, the list is as it was', async () => {
    const schema = `${base}_${++schemaNo}`;
    schemas.push(schema);
    const { proxy, url } = await startPgProxy();
    const pool = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: 1000 });
    pool.on('error', () => {});
    try {
      const n = node(await PgTeamStore.open({ pool, schema }));
      await crew(n, 1);
      proxy.cut();
      const refused = { code: 'not_ready', details: { dependency: 'cluster-postgresql' } };
      await expect(n.run('task_create', mate, task('lost'))).rejects.toMatchObject(refused);
      await expect(n.run('task_list', mate)).rejects.toMatchObject(refused);
      proxy.restore();
      expect(await n.run('task_list', mate)).toBe('#1 [pending] t1');
    } finally {
      await pool.end();
      await proxy.close();
    }
  });

  it('forgets a list an hour after its last change, and sweeps its rows', async () => {
    let now = 5_000_000;
    const { a, b, schema } = await twoNodes(() => now);
    await crew(a, 1);
    now += TEAM_LIMITS.idle_ms;
    expect(await b.run('task_list', mate)).toBe('No tasks found');
    await b.run('task_create', ctx('other', { execution: 'e-other' }), task('new'));
    const { rows } = await pools[0]!.query<{ n: string }>(`SELECT count(*) AS n FROM "${schema}".team_tasks`);
    expect(Number(rows[0]!.n)).toBe(1);
  });
});
