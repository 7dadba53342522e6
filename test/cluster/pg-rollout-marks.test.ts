/**
 * Which node runs a rollout of each API agent (src/cluster/pg-rollout-marks.ts) on the machine's
 * PostgreSQL, two nodes' marks on one schema: the first claim holds the agent and the other node's
 * is refused with the holder; the holder's own claim again (a restart) and its release; a node
 * that is down holds nothing for a change, whose supersession the node finds when it claims again;
 * another node may then claim. (The API behaviour is in pg-agent-versions-nodes.test.ts.)
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Rollout } from '../../src/agents/index.js';
import { PgRolloutMarks } from '../../src/cluster/index.js';
import { hasSystem, TEST_PG_URL } from '../helpers/system.js';

const run = hasSystem('postgresql');
const schema = `caxton_marks_${process.pid}_${Date.now()}`;
let pool: pg.Pool;
let a: PgRolloutMarks;
let b: PgRolloutMarks;
const up = new Map<string, string | null>([
  ['node-a', 'http://a.example:8080'],
  ['node-b', null],
]);

beforeAll(async () => {
  if (!run) return;
  pool = new pg.Pool({ connectionString: TEST_PG_URL, max: 2 });
  pool.on('error', () => {});
  a = await PgRolloutMarks.open({ pool, schema, node: 'node-a' });
  b = await PgRolloutMarks.open({ pool, schema, node: 'node-b' });
  for (const m of [a, b]) m.nodesUp = () => Promise.resolve(up);
});

afterAll(async () => {
  if (!run) return;
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

let ids = 0;
const rollout = (agent: string, candidate = 2): Rollout => ({
  id: ++ids,
  agent,
  strategy: 'canary',
  stable_version: candidate - 1,
  candidate_version: candidate,
  state: 'running',
  started_at: new Date().toISOString(),
  started_by: null,
  ended_at: null,
  ended_by: null,
  reason: null,
  plan: null,
  stage: 0,
  stage_started_at: new Date().toISOString(),
});

describe.runIf(run)('rollout marks', () => {
  it('the first claim holds the agent; the other node gets the holder; a claim again and a release by the holder', async () => {
    const ra = rollout('Writer');
    expect(await a.claim(ra)).toBeUndefined();
    expect(await b.claim(rollout('writer'))).toMatchObject({
      agent: 'Writer',
      node: 'node-a',
      rollout_id: ra.id,
      strategy: 'canary',
      candidate_version: 2,
      down: false,
      url: 'http://a.example:8080',
      superseded_by: null,
    });
    expect(await b.elsewhere('WRITER', true)).toMatchObject({ node: 'node-a' });
    expect(await a.elsewhere('writer', true)).toBeUndefined();
    // The holder's own claim again (its restart), and of a newer rollout after an end that was not recorded.
    expect(await a.claim(ra)).toBeUndefined();
    const ra2 = rollout('writer', 3);
    expect(await a.claim(ra2)).toBeUndefined();
    // A release names its rollout: the older one's does nothing.
    await a.release(ra);
    expect(await b.elsewhere('writer', false)).toMatchObject({ rollout_id: ra2.id, candidate_version: 3 });
    await a.release(ra2);
    expect(await b.elsewhere('writer', true)).toBeUndefined();
    expect(await b.claim(rollout('writer'))).toBeUndefined();
  });

  it('a node that is down holds nothing for a change, which supersedes its mark; it finds that when it claims again; another node may claim', async () => {
    const ra = rollout('reader');
    expect(await a.claim(ra)).toBeUndefined();
    up.delete('node-a');
    try {
      // Only looking: the mark is shown, down, and stays.
      expect(await b.elsewhere('reader', false)).toMatchObject({ node: 'node-a', down: true, superseded_by: null });
      // Changing: nothing holds the agent, and the mark is superseded by this node.
      expect(await b.elsewhere('reader', true)).toBeUndefined();
      expect(await b.elsewhere('reader', false)).toBeUndefined();
    } finally {
      up.set('node-a', 'http://a.example:8080');
    }
    // node-a is back: its claim finds its mark superseded by node-b.
    expect(await a.claim(ra)).toMatchObject({ node: 'node-a', superseded_by: 'node-b' });
    // Another node's rollout replaces a superseded mark; node-a's release of its own does not remove it.
    const rb = rollout('reader', 5);
    expect(await b.claim(rb)).toBeUndefined();
    await a.release(ra);
    expect(await a.elsewhere('reader', true)).toMatchObject({ node: 'node-b', rollout_id: rb.id, superseded_by: null });
  });

  it("lists the other nodes' live marks (not its own, not superseded ones) and says when its own are written, reshared, deleted or superseded", async () => {
    const told: string[] = [];
    a.onChanged = (agent) => told.push(`a:${agent}`);
    b.onChanged = (agent) => told.push(`b:${agent}`);
    try {
      const ra = rollout('Lister', 4);
      const rb = rollout('other-lister', 7);
      expect(await a.claim(ra)).toBeUndefined();
      expect(await b.claim(rb, 25)).toBeUndefined();
      const ofB = (await a.others()).filter((m) => /lister$/i.test(m.agent));
      expect(ofB).toMatchObject([
        {
          agent: 'other-lister',
          node: 'node-b',
          rollout_id: rb.id,
          strategy: 'canary',
          candidate_version: 7,
          share: 25,
          down: false,
        },
      ]);
      expect((await b.others()).filter((m) => /lister$/i.test(m.agent))).toMatchObject([
        {
          agent: 'Lister',
          node: 'node-a',
          rollout_id: ra.id,
          strategy: 'canary',
          candidate_version: 4,
          share: null,
          down: false,
        },
      ]);
      // A stage moves: the share changes, said once (the same share again says nothing).
      await a.reshare(ra, 50);
      await a.reshare(ra, 50);
      expect((await b.others()).find((m) => m.rollout_id === ra.id)).toMatchObject({ share: 50 });
      // A claim that loses and a release of another rollout change nothing, and say nothing.
      expect(await a.claim(rollout('other-lister'))).toMatchObject({ node: 'node-b' });
      await a.release(rb);
      // Superseded (node-b is down and node-a changes the agent): no longer listed, and said.
      up.delete('node-b');
      try {
        expect((await a.others()).find((m) => m.rollout_id === rb.id)).toMatchObject({ down: true });
        expect(await a.elsewhere('other-lister', true)).toBeUndefined();
      } finally {
        up.set('node-b', null);
      }
      expect((await a.others()).filter((m) => /lister$/i.test(m.agent))).toEqual([]);
      await a.release(ra);
      expect((await b.others()).filter((m) => /lister$/i.test(m.agent))).toEqual([]);
      expect(told).toEqual(['a:Lister', 'b:other-lister', 'a:Lister', 'a:other-lister', 'a:Lister']);
    } finally {
      a.onChanged = b.onChanged = undefined;
    }
  });
});
