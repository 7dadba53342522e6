/**
 * The run journal's contract, the same cases against both adapters (a SQLite file, and PostgreSQL
 * when it runs here): a run opened, its steps appended in order and read back, a key opened again
 * finds its run, resumes counted, ends recorded, lists filtered and paged, unfinished runs found,
 * the steps of many runs in one turn committed together, lazy runs written with their first step
 * that must be on disk, retention by age and by count. PostgreSQL's own: leases (another node
 * takes a run over only once its node stopped renewing it), one run when two nodes open the same
 * key at once, a decision on a paused run recorded through another node, and a run cancelled or
 * taken over elsewhere lost to the node running it at its next renewal.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  PgRunJournal,
  RUNS_MIGRATIONS,
  SqliteRunJournal,
  type RunJournal,
  type RunStart,
  type RunStep,
} from '../../src/execution/runs/index.js';
import type { AgentResponse } from '../../src/execution/types.js';
import { isCaxtonError } from '../../src/shared/errors.js';
import { registerSecrets } from '../../src/shared/secrets.js';
import { migrate, openDatabase } from '../../src/storage/index.js';
import { hasSystem, TEST_PG_URL } from '../helpers/system.js';
import { waitUntil } from '../helpers/wait.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

const withPg = hasSystem('postgresql');
const schema = `caxton_runs_${process.pid}_${Date.now()}`;
let pool: pg.Pool | undefined;
const journals: RunJournal[] = [];

beforeAll(async () => {
  if (withPg) {
    pool = new pg.Pool({ connectionString: TEST_PG_URL, max: 4 });
    await PgRunJournal.migrate(pool, schema);
  }
});

afterAll(async () => {
  for (const j of journals) await j.close();
  if (pool) {
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await pool.end();
  }
  removeTempDirs();
});

let n = 0;
function start(more: Partial<RunStart> = {}): RunStart {
  n++;
  return {
    id: `exec_${String(n).padStart(6, '0')}_${Math.random().toString(36).slice(2, 8)}`,
    key: null,
    agent: 'helper',
    origin: 'invoke',
    principal: null,
    request: { request: `question ${n}` },
    ...more,
  };
}

const reply = (turn: number, content: string): RunStep => ({
  kind: 'model',
  turn,
  reply: {
    content,
    tool_calls: [],
    usage: { input_tokens: 1, output_tokens: 1, total_tokens: 2 },
    finish_reason: 'stop',
    provider: 'stub',
    model: 'stub',
    latency_ms: 1,
  },
});
const response = (content: string): AgentResponse => ({
  id: 'r',
  execution_id: 'e',
  agent: 'helper',
  content,
  tool_calls: [],
  usage: { input_tokens: 1, output_tokens: 1, total_tokens: 2 },
  execution_time_ms: 1,
  finish_reason: 'stop',
  provider: 'stub',
  model: 'stub',
  turns: 1,
  isolation: 'context',
});

type Make = (o?: {
  node?: string;
  leaseMs?: number;
  writeAfterMs?: number;
  retentionMs?: number;
  maxRows?: number;
}) => RunJournal;

const adapters: { name: string; skip: boolean; make: Make }[] = [
  {
    name: 'sqlite',
    skip: false,
    make: (o = {}) => {
      const db = openDatabase(makeTempDir('runs-'));
      migrate(db, RUNS_MIGRATIONS);
      const j = new SqliteRunJournal({
        db,
        retentionMs: o.retentionMs ?? 60_000,
        ...(o.maxRows !== undefined && { maxRows: o.maxRows }),
      });
      journals.push(j);
      return j;
    },
  },
  {
    name: 'postgresql',
    skip: !withPg,
    make: (o = {}) => {
      const j = new PgRunJournal({
        pool: pool!,
        schema,
        node: o.node ?? `node-${Math.random().toString(36).slice(2, 8)}`,
        retentionMs: o.retentionMs ?? 60_000,
        ...(o.leaseMs !== undefined && { leaseMs: o.leaseMs }),
        ...(o.writeAfterMs !== undefined && { writeAfterMs: o.writeAfterMs }),
        ...(o.maxRows !== undefined && { maxRows: o.maxRows }),
      });
      journals.push(j);
      return j;
    },
  },
];

for (const a of adapters) {
  describe.skipIf(a.skip)(`run journal: ${a.name}`, () => {
    it('opens a run, appends its steps in order, reads them back', async () => {
      const j = a.make();
      const s = start();
      const opened = await j.open(s);
      expect(opened.created).toBe(true);
      expect(opened.steps).toEqual([]);
      await j.append(s.id, [{ kind: 'context', memory_context: 'm' }, reply(0, 'one')]);
      await j.append(s.id, [
        { kind: 'tool_start', turn: 0, id: 'c1', name: 'append' },
        { kind: 'tool_end', turn: 0, id: 'c1', name: 'append', result: 'ok', is_error: false, duration_ms: 3 },
      ]);
      const got = await j.get(s.id);
      expect(got?.run).toMatchObject({ id: s.id, status: 'running', agent: 'helper', resumes: 0 });
      expect(got?.steps.map((x) => x.kind)).toEqual(['context', 'model', 'tool_start', 'tool_end']);
      expect(await j.get('exec_missing')).toBeUndefined();
    });

    it('a key opened again finds its run with its steps; resumes are counted; its end is recorded', async () => {
      const j = a.make();
      const key = `msg:m${n}:helper`;
      const first = await j.open(start({ key, origin: 'message' }));
      await j.append(first.run.id, [reply(0, 'one')]);
      const again = await j.open(start({ key, origin: 'message' }));
      expect(again.created).toBe(false);
      expect(again.run.id).toBe(first.run.id);
      expect(again.steps).toHaveLength(1);
      await j.resumed(first.run.id);
      await j.append(first.run.id, [reply(1, 'two')]);
      await j.finish(first.run.id, { status: 'completed', response: response('done') });
      const done = await j.open(start({ key, origin: 'message' }));
      expect(done.created).toBe(false);
      expect(done.run).toMatchObject({ status: 'completed', resumes: 1, response: { content: 'done' } });
      expect(done.steps.map((x) => (x.kind === 'model' ? x.turn : -1))).toEqual([0, 1]);
      const failed = await j.open(start());
      await j.finish(failed.run.id, { status: 'failed', error: { code: 'llm_error', message: 'no' } });
      expect((await j.get(failed.run.id))?.run).toMatchObject({ status: 'failed', error: { code: 'llm_error' } });
    });

    it('lists runs by agent (and its versions), status, origin and principal, newest first, in pages', async () => {
      const j = a.make();
      const agent = `lister${n}`;
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        const s = start({
          agent: i % 2 === 0 ? agent : `${agent}@1.0.0`,
          principal: i < 3 ? 'alice' : 'bob',
          origin: i === 4 ? 'background' : 'invoke',
        });
        ids.push(s.id);
        await j.open(s);
        await j.append(s.id, [reply(0, 'x')]);
      }
      await j.finish(ids[0]!, { status: 'completed', response: response('a') });
      await j.open(start({ agent: `${agent}x` }));
      const all = await j.list({ agent, limit: 10 });
      expect(all.map((r) => r.id)).toEqual([...ids].reverse());
      expect((await j.list({ agent, status: 'completed', limit: 10 })).map((r) => r.id)).toEqual([ids[0]]);
      expect((await j.list({ agent, principal: 'bob', limit: 10 })).map((r) => r.id)).toEqual([ids[4], ids[3]]);
      expect((await j.list({ agent, origin: 'background', limit: 10 })).map((r) => r.id)).toEqual([ids[4]]);
      const page1 = await j.list({ agent, limit: 2 });
      const page2 = await j.list({ agent, limit: 2, before: page1[1]!.id });
      expect([...page1, ...page2].map((r) => r.id)).toEqual([ids[4], ids[3], ids[2], ids[1]]);
    });

    it('finds unfinished runs, oldest first', async () => {
      const j = a.make();
      const s1 = start({ agent: `unf${n}` });
      const s2 = start({ agent: `unf${n}` });
      await j.open(s1);
      await j.append(s1.id, [reply(0, 'x')]);
      await j.open(s2);
      await j.append(s2.id, [reply(0, 'x')]);
      await j.finish(s2.id, { status: 'completed', response: response('b') });
      const unf = (await j.unfinished(1000)).filter((r) => r.agent === s1.agent).map((r) => r.id);
      // PostgreSQL: a run this node holds is running here, not left unfinished.
      expect(unf).toEqual(a.name === 'sqlite' ? [s1.id] : []);
    });

    it('commits the steps of many runs queued in one turn together, each append resolving once committed', async () => {
      const j = a.make();
      const starts = Array.from({ length: 20 }, () => start({ agent: `group${n}` }));
      for (const s of starts) await j.open(s);
      await j.append(starts[0]!.id, [reply(0, 'warm')]);
      const spy = pool ? vi.spyOn(pool, 'query') : undefined;
      await Promise.all(starts.map((s) => j.append(s.id, [reply(1, 'a'), reply(2, 'b')])));
      if (a.name === 'postgresql') expect(spy!.mock.calls.length).toBe(1);
      spy?.mockRestore();
      for (const s of starts.slice(1)) expect((await j.get(s.id))?.steps).toHaveLength(2);
    });

    it('deletes finished runs past their retention with their steps, never a running one', async () => {
      const j = a.make({ retentionMs: 0 });
      const done = start();
      const running = start();
      await j.open(done);
      await j.append(done.id, [reply(0, 'x')]);
      await j.finish(done.id, { status: 'completed', response: response('x') });
      await j.open(running);
      await j.append(running.id, [reply(0, 'x')]);
      await new Promise((r) => setTimeout(r, 5));
      if (j instanceof SqliteRunJournal) j.sweep();
      else await (j as PgRunJournal).prune();
      expect(await j.get(done.id)).toBeUndefined();
      expect((await j.get(running.id))?.steps).toHaveLength(1);
    });

    it('keeps at most maxRows finished runs, the newest, and every running one', async () => {
      const j = a.make({ maxRows: 2 });
      const finished: string[] = [];
      const running = start();
      await j.open(running);
      await j.append(running.id, [reply(0, 'x')]);
      for (let i = 0; i < 4; i++) {
        const s = start();
        await j.open(s);
        await j.append(s.id, [reply(0, 'x')]);
        await j.finish(s.id, { status: 'completed', response: response('x') });
        finished.push(s.id);
        // Distinct end times: the cut falls between runs.
        await new Promise((r) => setTimeout(r, 5));
      }
      if (j instanceof SqliteRunJournal) j.sweep();
      else await (j as PgRunJournal).prune();
      const kept = await Promise.all(finished.map(async (id) => (await j.get(id)) !== undefined));
      expect(kept).toEqual([false, false, true, true]);
      expect((await j.get(running.id))?.run.status).toBe('running');
    });

    it('a lazy run is written with its first step that must be on disk, and not at all without one', async () => {
      const j = a.make();
      const quiet = start({ lazy: true });
      await j.open(quiet);
      await j.append(quiet.id, [{ kind: 'context', memory_context: 'm' }, reply(0, 'answer')]);
      expect(await j.get(quiet.id)).toBeUndefined();
      await j.finish(quiet.id, { status: 'completed', response: response('answer') });
      expect(await j.get(quiet.id)).toBeUndefined();
      const acting = start({ lazy: true });
      await j.open(acting);
      await j.append(acting.id, [{ kind: 'context', memory_context: 'm' }]);
      expect(await j.get(acting.id)).toBeUndefined();
      await j.append(acting.id, [{ kind: 'tool_start', turn: 1, id: 'c1', name: 'append' }]);
      const got = await j.get(acting.id);
      expect(got?.run.status).toBe('running');
      expect(got?.steps.map((x) => x.kind)).toEqual(['context', 'tool_start']);
      await j.finish(acting.id, { status: 'completed', response: response('done') });
      expect((await j.get(acting.id))?.run.status).toBe('completed');
    });

    it('a lazy run written with a later step stores its request scrubbed of secrets, as a run written at once', async () => {
      const secret = `sk-run-journal-${Math.random().toString(36).slice(2)}-secret`;
      registerSecrets([secret]);
      const j = a.make();
      const lazy = start({ lazy: true, request: { request: `use ${secret} please` } });
      const eager = start({ request: { request: `use ${secret} please` } });
      for (const s of [lazy, eager]) {
        await j.open(s);
        await j.append(s.id, [{ kind: 'tool_start', turn: 1, id: 'c1', name: 'append' }]);
        const got = await j.get(s.id);
        expect(got?.run.request.request).toBe('use *** please');
      }
    });
  });
}

describe.skipIf(!withPg)('run journal: postgresql across nodes', () => {
  const make = adapters[1]!.make;

  it('two nodes opening one key at once make one run', async () => {
    for (let i = 0; i < 10; i++) {
      const a = make({ node: 'a' });
      const b = make({ node: 'b' });
      const key = `msg:race${i}_${n}:helper`;
      const opened = await Promise.allSettled([
        a.open(start({ key, origin: 'message' })),
        b.open(start({ key, origin: 'message' })),
      ]);
      const ok = opened.filter((o) => o.status === 'fulfilled').map((o) => o.value);
      expect(ok.filter((o) => o.created)).toHaveLength(1);
      // The loser finds it held by the winner, a live node: busy, to be tried again later.
      for (const o of opened)
        if (o.status === 'rejected') expect(isCaxtonError(o.reason) && o.reason.code).toBe('rate_limited');
      const { rows } = await pool!.query(`SELECT count(*)::int AS n FROM "${schema}".runs WHERE key = $1`, [key]);
      expect(rows[0].n).toBe(1);
    }
  });

  it("a message's run on its first delivery writes nothing without a step that must be on disk; its key checked when it has one", async () => {
    const a = make({ node: 'a' });
    const b = make({ node: 'b' });
    const rows = async (key: string): Promise<number> =>
      (await pool!.query(`SELECT count(*)::int AS n FROM "${schema}".runs WHERE key = $1`, [key])).rows[0].n;
    // One model turn, no tool call: no row at all.
    const quietKey = `msg:first_quiet_${n}:helper`;
    const quiet = start({ key: quietKey, origin: 'message', lazy: true, firstDelivery: true });
    expect((await a.open(quiet)).created).toBe(true);
    await a.append(quiet.id, [{ kind: 'context', memory_context: 'm' }, reply(0, 'answer')]);
    await a.finish(quiet.id, { status: 'completed', response: response('answer') });
    expect(await rows(quietKey)).toBe(0);
    expect(await a.get(quiet.id)).toBeUndefined();
    // A tool call: the key's row, then the held steps, before the call's start resolves.
    const key = `msg:first_acting_${n}:helper`;
    const acting = start({ key, origin: 'message', lazy: true, firstDelivery: true });
    await a.open(acting);
    await a.append(acting.id, [{ kind: 'context', memory_context: 'm' }]);
    expect(await rows(key)).toBe(0);
    await a.append(acting.id, [{ kind: 'tool_start', turn: 1, id: 'c1', name: 'append' }]);
    expect((await a.get(acting.id))?.steps.map((x) => x.kind)).toEqual(['context', 'tool_start']);
    // A copy of the same delivery published again meanwhile, run on node b as a first hand-out: its
    // first step that must be on disk finds the key taken, writes nothing and is told to try later.
    const copy = start({ key, origin: 'message', lazy: true, firstDelivery: true });
    await b.open(copy);
    const refused = await b.append(copy.id, [{ kind: 'tool_start', turn: 1, id: 'c1', name: 'append' }]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isCaxtonError(refused) && refused.code).toBe('rate_limited');
    await b.finish(copy.id, { status: 'failed', error: { code: 'rate_limited', message: 'x' } });
    expect(await b.get(copy.id)).toBeUndefined();
    expect(await rows(key)).toBe(1);
    // Its redelivery (not a first hand-out) opens the key's run as before: held by a, so busy.
    const again = await b.open(start({ key, origin: 'message', lazy: true })).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isCaxtonError(again) && again.code).toBe('rate_limited');
    await a.finish(acting.id, { status: 'completed', response: response('done') });
    const found = await b.open(start({ key, origin: 'message', lazy: true }));
    expect(found.created).toBe(false);
    expect(found.run.status).toBe('completed');
  });

  it("a message's first run still going after writeAfterMs is written: a second delivery finds it held, or it finds the key taken and stops", async () => {
    const rows = async (key: string): Promise<number> =>
      (await pool!.query(`SELECT count(*)::int AS n FROM "${schema}".runs WHERE key = $1`, [key])).rows[0].n;
    // A long model call on a: its row (with the step it held back) is written without a step that must be on disk.
    const a = make({ node: 'long-a', writeAfterMs: 200 });
    const b = make({ node: 'long-b', writeAfterMs: 200 });
    const key = `msg:first_long_${n}:helper`;
    const long = start({ key, origin: 'message', lazy: true, firstDelivery: true });
    await a.open(long);
    await a.append(long.id, [{ kind: 'context', memory_context: 'm' }]);
    expect(await rows(key)).toBe(0);
    await waitUntil(async () => (await rows(key)) === 1, { timeoutMs: 10_000, what: "the long run's row" });
    await waitUntil(async () => (await a.get(long.id))?.steps.length === 1, {
      timeoutMs: 10_000,
      what: 'its held step',
    });
    // The queue hands its delivery to b (a's ack wait outlived): busy, held by a.
    await expect(b.open(start({ key, origin: 'message', lazy: true }))).rejects.toMatchObject({ code: 'rate_limited' });
    await a.append(long.id, [reply(0, 'answer')]);
    await a.finish(long.id, { status: 'completed', response: response('answer') });
    expect((await b.open(start({ key, origin: 'message', lazy: true }))).run.status).toBe('completed');

    // The other way round: b's redelivery made the key's run first; a's long first run is lost and stops.
    const c = make({ node: 'long-c', writeAfterMs: 200 });
    const lost: { id: string; reason: Error }[] = [];
    c.onLost?.((id, reason) => lost.push({ id, reason }));
    const key2 = `msg:first_long2_${n}:helper`;
    const first = start({ key: key2, origin: 'message', lazy: true, firstDelivery: true });
    await c.open(first);
    const second = await b.open(start({ key: key2, origin: 'message', lazy: true }));
    expect(second.created).toBe(true);
    await waitUntil(() => lost.length > 0, { timeoutMs: 10_000, what: 'the first run lost' });
    expect(lost[0]!.id).toBe(first.id);
    expect(isCaxtonError(lost[0]!.reason) && lost[0]!.reason.code).toBe('rate_limited');
    await expect(c.append(first.id, [reply(0, 'late')])).rejects.toMatchObject({ code: 'rate_limited' });
    await c.finish(first.id, { status: 'failed', error: { code: 'rate_limited', message: 'x' } });
    expect(await rows(key2)).toBe(1);
    expect(await c.get(first.id)).toBeUndefined();
    await b.finish(second.run.id, { status: 'completed', response: response('by b') });
  });

  it('a run is taken over only once its lease expired, with its steps; the old holder can no longer end it', async () => {
    const a = make({ node: 'lease-a', leaseMs: 600 });
    const b = make({ node: 'lease-b', leaseMs: 600 });
    const key = `msg:lease${n}:helper`;
    const s = start({ key, origin: 'message', agent: `lease${n}` });
    await a.open(s);
    await a.append(s.id, [reply(0, 'by a')]);
    // a's heartbeat keeps it held past the lease.
    await new Promise((r) => setTimeout(r, 900));
    expect((await b.unfinished(1000)).map((r) => r.id)).not.toContain(s.id);
    await expect(b.open(start({ key, origin: 'message' }))).rejects.toMatchObject({ code: 'rate_limited' });
    // a stops renewing (its node died): after the lease, b finds it and takes it.
    await a.close();
    await new Promise((r) => setTimeout(r, 700));
    expect((await b.unfinished(1000)).map((r) => r.id)).toContain(s.id);
    const taken = await b.open(start({ key, origin: 'message' }));
    expect(taken).toMatchObject({ created: false, run: { id: s.id, node: 'lease-b' } });
    expect(taken.steps).toHaveLength(1);
    await b.resumed(s.id);
    await b.append(s.id, [reply(1, 'by b')]);
    // A third node finds it held by b.
    const c = make({ node: 'lease-c', leaseMs: 600 });
    await expect(c.resumed(s.id)).rejects.toMatchObject({ code: 'rate_limited' });
    await b.finish(s.id, { status: 'completed', response: response('b') });
    expect((await b.get(s.id))?.run).toMatchObject({ status: 'completed', resumes: 1, node: 'lease-b' });
    expect((await b.get(s.id))?.steps).toHaveLength(2);
  });

  it('a node resumes what its earlier process left unfinished, whatever the lease', async () => {
    const first = make({ node: 'same', leaseMs: 60_000 });
    const s = start({ agent: `restart${n}` });
    await first.open(s);
    await first.append(s.id, [reply(0, 'x')]);
    await first.close();
    const second = make({ node: 'same', leaseMs: 60_000 });
    const other = make({ node: 'other', leaseMs: 60_000 });
    expect((await other.unfinished(1000)).map((r) => r.id)).not.toContain(s.id);
    expect((await second.unfinished(1000)).map((r) => r.id)).toContain(s.id);
    await second.resumed(s.id);
    await second.append(s.id, [reply(1, 'y')]);
    expect((await second.get(s.id))?.steps).toHaveLength(2);
  });

  it("a takeover while a node runs takes only runs whose lease expired and still running, never one of that node's own", async () => {
    const [own, other] = [`own${n}`, `other${n}`];
    const j = make({ node: own, leaseMs: 60_000 }) as PgRunJournal;
    const b = make({ node: other, leaseMs: 60_000 }) as PgRunJournal;
    const held = start();
    const released = start();
    const pausing = start();
    for (const s of [held, released, pausing]) {
      await j.open(s);
      await j.append(s.id, [reply(0, 'x')]);
    }
    // Stopped here without an end, its lease still live: what a start finds, not a takeover.
    j.release(released.id);
    expect((await j.unfinished(1000, 'expired')).map((r) => r.id)).not.toContain(released.id);
    expect((await j.unfinished(1000, 'left')).map((r) => r.id)).toContain(released.id);
    await expect(j.resumed(released.id, 'expired')).rejects.toMatchObject({ code: 'rate_limited' });
    // One this process runs, found between two of its writes: refused, and it stays held.
    await expect(j.resumed(held.id, 'expired')).rejects.toMatchObject({ code: 'rate_limited' });
    expect(j.held).toContain(held.id);
    // Read as running with its lease expired, then paused before the takeover's claim: not taken.
    await pool!.query(`UPDATE "${schema}".runs SET lease_until = now() - interval '1 second' WHERE id = $1`, [
      pausing.id,
    ]);
    expect((await b.unfinished(1000, 'expired')).map((r) => r.id)).toContain(pausing.id);
    await j.paused(pausing.id);
    await expect(b.resumed(pausing.id, 'expired')).rejects.toMatchObject({ code: 'rate_limited' });
    expect((await b.get(pausing.id))?.run).toMatchObject({ status: 'awaiting_approval', node: own });
    // A decision's resume takes it.
    await b.resumed(pausing.id);
    expect((await b.get(pausing.id))?.run).toMatchObject({ status: 'running', node: other, resumes: 1 });
    expect(await j.heartbeat()).toBe(1);
  });

  it('renews every run a node holds in one statement, not one released', async () => {
    const j = make({ node: 'beat', leaseMs: 60_000 }) as PgRunJournal;
    for (let i = 0; i < 5; i++) {
      const s = start();
      await j.open(s);
      await j.append(s.id, [reply(0, 'x')]);
    }
    const spy = vi.spyOn(pool!, 'query');
    expect(await j.heartbeat()).toBe(5);
    expect(spy.mock.calls.length).toBe(1);
    spy.mockRestore();
    // A run that stopped here without an end is no longer renewed: its lease runs out for another node.
    j.release(j.held[0]!);
    expect(await j.heartbeat()).toBe(4);
  });
});

describe.skipIf(!withPg)('run journal: postgresql, a run decided or cancelled through another node', () => {
  const make = (node: string) => adapters[1]!.make({ node, leaseMs: 60_000 }) as PgRunJournal;
  const asking: RunStep = {
    kind: 'model',
    turn: 1,
    reply: {
      content: '',
      tool_calls: [{ id: 'c1', name: 'append', arguments: { line: 'x' } }],
      usage: { input_tokens: 1, output_tokens: 1, total_tokens: 2 },
      finish_reason: 'tool_calls',
      provider: 'stub',
      model: 'stub',
      latency_ms: 1,
    },
  };

  it('a decision recorded through another node follows the paused run steps; that node takes the run on', async () => {
    const a = make('pause-a');
    const b = make('pause-b');
    const s = start();
    await a.open(s);
    await a.append(s.id, [
      asking,
      { kind: 'approval_requested', turn: 1, id: 'c1', name: 'append', arguments: { line: 'x' }, at: 1 },
    ]);
    await a.paused(s.id);
    await a.close();
    expect((await b.get(s.id))?.run.status).toBe('awaiting_approval');
    await b.append(s.id, [{ kind: 'approval', turn: 1, id: 'c1', decision: 'approved', by: 'alice', at: 2 }]);
    await b.resumed(s.id);
    await b.append(s.id, [{ kind: 'tool_start', turn: 1, id: 'c1', name: 'append' }]);
    await b.finish(s.id, { status: 'completed', response: response('done') });
    const got = await b.get(s.id);
    expect(got?.run).toMatchObject({ status: 'completed', node: 'pause-b', resumes: 1 });
    expect(got?.steps.map((x) => x.kind)).toEqual(['model', 'approval_requested', 'approval', 'tool_start']);
  });

  it('two nodes recording a decision on one paused run at once: one is recorded, the other told the run changed', async () => {
    const a = make('both-a');
    const b = make('both-b');
    const c = make('both-c');
    const s = start();
    await a.open(s);
    await a.append(s.id, [
      asking,
      { kind: 'approval_requested', turn: 1, id: 'c1', name: 'append', arguments: { line: 'x' }, at: 1 },
    ]);
    await a.paused(s.id);
    const decision = (by: string): RunStep => ({ kind: 'approval', turn: 1, id: 'c1', decision: 'denied', by, at: 2 });
    const both = await Promise.allSettled([b.append(s.id, [decision('b')]), c.append(s.id, [decision('c')])]);
    const failed = both.filter((x) => x.status === 'rejected').map((x) => (x as PromiseRejectedResult).reason);
    expect(failed.map((e) => isCaxtonError(e) && e.code)).toEqual(['conflict']);
    expect((await a.get(s.id))?.steps).toHaveLength(3);
    // One after the other: the call has its decision.
    await expect(c.append(s.id, [decision('c')])).rejects.toMatchObject({ code: 'conflict' });
    expect((await a.get(s.id))?.steps.map((x) => x.kind)).toEqual(['model', 'approval_requested', 'approval']);
  });

  it('a run cancelled through another node is lost to its node at the next renewal: nothing more of it is written', async () => {
    const a = make('cancel-a');
    const b = make('cancel-b');
    const lost: [string, unknown][] = [];
    a.onLost((id, reason) => lost.push([id, reason]));
    const s = start();
    const kept = start();
    await a.open(s);
    await a.open(kept);
    await a.append(s.id, [asking]);
    await a.append(kept.id, [asking]);
    expect(await a.heartbeat()).toBe(2);
    expect(lost).toEqual([]);
    // What POST /runs/{id}/cancel does on a node that does not run it.
    await b.finish(s.id, { status: 'cancelled', error: { code: 'cancelled', message: 'the run was cancelled' } });
    expect(await a.heartbeat()).toBe(1);
    expect(lost.map(([id, e]) => [id, isCaxtonError(e) && e.code])).toEqual([[s.id, 'cancelled']]);
    expect(a.held).not.toContain(s.id);
    await expect(a.append(s.id, [{ kind: 'tool_start', turn: 1, id: 'c1', name: 'append' }])).rejects.toMatchObject({
      code: 'cancelled',
    });
    // The stopped run's own end does not overwrite the cancel.
    await a.finish(s.id, { status: 'cancelled', error: { code: 'cancelled', message: 'stopped here' } });
    const got = await b.get(s.id);
    expect(got?.run).toMatchObject({ status: 'cancelled', error: { message: 'the run was cancelled' } });
    expect(got?.steps).toHaveLength(1);
    expect(await a.heartbeat()).toBe(1);
    expect(lost).toHaveLength(1);
  });

  it('a run taken over after its lease ran out is lost to the node that held it, naming the new holder', async () => {
    const a = make('over-a');
    const b = make('over-b');
    const lost: [string, unknown][] = [];
    a.onLost((id, reason) => lost.push([id, reason]));
    const s = start();
    await a.open(s);
    await a.append(s.id, [asking]);
    // a stalled past its lease (a pause, PostgreSQL out of reach): b takes the run.
    await pool!.query(`UPDATE "${schema}".runs SET lease_until = now() - interval '1 second' WHERE id = $1`, [s.id]);
    await b.resumed(s.id);
    expect(await a.heartbeat()).toBe(0);
    expect(lost.map(([id, e]) => [id, isCaxtonError(e) && e.code])).toEqual([[s.id, 'rate_limited']]);
    expect(String((lost[0]![1] as Error).message)).toContain('over-b');
    await a.finish(s.id, { status: 'failed', error: { code: 'rate_limited', message: 'lost' } });
    expect((await b.get(s.id))?.run).toMatchObject({ status: 'running', node: 'over-b' });
  });
});
