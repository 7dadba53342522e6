/**
 * Conversation pins shared by the nodes (src/agents/rollouts/pg-pins.ts) on the machine's PostgreSQL: two
 * nodes' stores on one schema. A pin made on one node holds on the other (read before the
 * resolution), also on a node opened afterwards (a restart); the first pin of a conversation wins
 * and the node that lost adopts it; nothing is read for agents that never had a rollout; an
 * unreachable PostgreSQL neither throws nor blocks; pins a node kept in its SQLite move to the
 * cluster's. (Across `caxton serve` nodes:
 * pg-agent-versions-nodes.test.ts.)
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_MIGRATIONS, PgConversationPins, RolloutStore } from '../../src/agents/index.js';
import { migrate, openDatabase } from '../../src/storage/index.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { hasSystem, TEST_PG_URL } from '../helpers/system.js';

const run = hasSystem('postgresql');
const schema = `caxton_pins_${process.pid}_${Date.now()}`;
let pool: pg.Pool;

beforeAll(() => {
  if (!run) return;
  pool = new pg.Pool({ connectionString: TEST_PG_URL, max: 4 });
  pool.on('error', () => {});
});

afterAll(async () => {
  if (!run) return;
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
  removeTempDirs();
});

const open = () => PgConversationPins.open({ pool, schema });

describe.runIf(run)('conversation pins shared by the nodes', () => {
  it("a pin made on node A holds on node B, read before B resolves; a node opened later knows the agent's pins", async () => {
    const a = await open();
    const b = await open();
    expect(a.hasHistory('Writer')).toBe(false);
    // No rollout yet: nothing to read, no query.
    expect(b.load('conv-1', 'Writer')).toBeUndefined();
    a.remember('Writer');
    expect(a.pin('conv-1', 'Writer', 2)).toBe(2);
    expect(a.pin('conv-1', 'writer', 3)).toBe(2); // agent names are case-insensitive, as everywhere
    await a.settled();

    b.remember('Writer'); // B follows the rollout (its mark)
    const reading = b.load('conv-1', 'Writer');
    expect(reading).toBeInstanceOf(Promise);
    await reading;
    let drawn = 0;
    expect(
      b.pin('conv-1', 'Writer', () => {
        drawn++;
        return 3;
      }),
    ).toBe(2);
    expect(drawn).toBe(0);
    // Read once: the next turn on B answers from memory.
    expect(b.load('conv-1', 'Writer')).toBeUndefined();

    // A node started after the rollout ended (or restarted) knows from the table.
    const c = await open();
    expect(c.hasHistory('WRITER')).toBe(true);
    await c.load('conv-1', 'Writer');
    expect(c.pin('conv-1', 'Writer', 3)).toBe(2);
    // A conversation no node pinned is drawn and pinned for all.
    expect(c.pin('conv-2', 'Writer', 3)).toBe(3);
    await c.settled();
    await a.load('conv-2', 'Writer');
    expect(a.pin('conv-2', 'Writer', 2)).toBe(3);
  });

  it('two nodes pinning one conversation at once: the first row wins and the other node adopts it', async () => {
    const a = await open();
    const b = await open();
    a.remember('Editor');
    b.remember('Editor');
    expect(a.pin('race', 'Editor', 1)).toBe(1);
    await a.settled();
    // B drew before it could read A's row (a canary stage changed between the two draws).
    expect(b.pin('race', 'Editor', 2)).toBe(2);
    await b.settled();
    expect(b.pin('race', 'Editor', 2)).toBe(1);
    const rows = await pool.query(`SELECT version FROM "${schema}".conversation_pins WHERE conversation_id = 'race'`);
    expect(rows.rows).toEqual([{ version: 1 }]);
  });

  it("a conversation's first pin is claimed before its first turn runs: two nodes drawing differently at once (a stage changed between the draws) both run it on the first row's version", async () => {
    const a = await open();
    const b = await open();
    a.remember('Critic');
    b.remember('Critic');
    for (let i = 0; i < 20; i++) {
      const conv = `first-${i}`;
      const drawn: string[] = [];
      // Their first turns at once, A drawing 1 and B 2.
      await Promise.all([
        a.load(conv, 'Critic', () => (drawn.push('a'), 1)),
        b.load(conv, 'Critic', () => (drawn.push('b'), 2)),
      ]);
      // Before: each ran the turn on its own draw (the pins were written after it, in the background).
      const onA = a.pin(conv, 'Critic', 1);
      expect([conv, b.pin(conv, 'Critic', 2)]).toEqual([conv, onA]);
      expect(drawn.length).toBeGreaterThan(0);
      const rows = await pool.query(`SELECT version FROM "${schema}".conversation_pins WHERE conversation_id = $1`, [
        conv,
      ]);
      expect(rows.rows).toEqual([{ version: onA }]);
    }
    // A later turn on a third node finds it at once (no waiting for a background write); nothing drawn.
    const c = await open();
    await c.load('first-0', 'Critic', () => {
      throw new Error('drawn although pinned');
    });
    expect(c.pin('first-0', 'Critic', 9)).toBe(a.pin('first-0', 'Critic', 9));
    // No draw (the agent's conversations are not pinned): nothing is written; pin() then pins as before.
    await a.load('undrawn', 'Critic', () => undefined);
    expect(
      (await pool.query(`SELECT 1 FROM "${schema}".conversation_pins WHERE conversation_id = 'undrawn'`)).rowCount,
    ).toBe(0);
  });

  it("pins a node kept in its SQLite move to the cluster's (a held pin wins), oldest first in batches, and are dropped there", async () => {
    const db = openDatabase(makeTempDir('caxton-pins-carry-'));
    migrate(db, AGENT_MIGRATIONS);
    const local = new RolloutStore(db);
    // Pinned on this node before it joined the cluster: 2,500 conversations of Scribe, one of which the cluster pinned already.
    for (let i = 0; i < 2500; i++) local.pin(`carry-${i}`, 'Scribe', i === 7 ? 4 : 3);
    const a = await open();
    a.remember('Scribe');
    expect(a.pin('carry-7', 'Scribe', 5)).toBe(5);
    await a.settled();

    const b = await open();
    expect(b.hasHistory('scribe')).toBe(true);
    const batches: number[] = [];
    const moved = await b.carryOver(
      { oldestPins: (n) => local.oldestPins(n), dropPins: (p) => (batches.push(p.length), local.dropPins(p)) },
      1000,
    );
    expect(moved).toBe(2500);
    expect(batches).toEqual([1000, 1000, 500]);
    expect(local.oldestPins(10)).toEqual([]);
    // Every node reads them, and the cluster's own pin held.
    const c = await open();
    for (const [conv, version] of [
      ['carry-0', 3],
      ['carry-2499', 3],
      ['carry-7', 5],
    ] as const) {
      await c.load(conv, 'Scribe');
      expect([conv, c.pin(conv, 'Scribe', 9)]).toEqual([conv, version]);
    }
    // Their age is kept (pins older than 30 days are dropped by it).
    const { rows } = await pool.query<{ age: number }>(
      `SELECT extract(epoch FROM now() - created_at) AS age FROM "${schema}".conversation_pins WHERE conversation_id = 'carry-0'`,
    );
    expect(Number(rows[0]!.age)).toBeLessThan(60);
    db.close();
  });

  it('an unreachable PostgreSQL neither throws nor blocks: the version is drawn and held on this node, and reported', async () => {
    const lost = new pg.Pool({ connectionString: TEST_PG_URL, max: 1 });
    lost.on('error', () => {});
    const errors: string[] = [];
    const pins = await PgConversationPins.open({ pool: lost, schema, onError: (_e, what) => errors.push(what) });
    // Every agent with pins is known at open (both of the tests above), and only those.
    expect([pins.hasHistory('Writer'), pins.hasHistory('Editor'), pins.hasHistory('Nobody')]).toEqual([
      true,
      true,
      false,
    ]);
    await lost.end();
    await expect(pins.load('conv-3', 'Writer')).resolves.toBeUndefined();
    expect(pins.pin('conv-3', 'Writer', 4)).toBe(4);
    await pins.settled();
    expect(errors).toEqual(['read', 'write']);
    expect(pins.pin('conv-3', 'Writer', 5)).toBe(4);
  });
});
