/**
 * What RolloutSync carries between nodes besides the marks (src/cluster/rollout-sync.ts), on a
 * real `nats-server` started by the test: two syncs, each with its own NATS connection, around
 * recording stand-ins for the agent service (the service itself is exercised through two
 * `caxton serve` nodes in pg-agent-versions-nodes.test.ts).
 *
 * A promotion or rollback sent to a node is carried out there (marked forwarded, so it is never
 * sent on) and its outcome is the answer; its error comes back with its code, message and details;
 * an unexpected failure comes back as `internal` without its text; a node that does not listen
 * answers 503 `not_ready` at once. A canary figure reaches only the node it names.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CanaryFigure, RolloutActionOptions, RolloutForwarder, ShadowFigure } from '../../src/agents/index.js';
import { RolloutSync, rolloutsSubject } from '../../src/cluster/index.js';
import { RolloutFigures } from '../../src/cluster/rollout-figures.js';
import { CaxtonError } from '../../src/shared/errors.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { hasSystem } from '../helpers/system.js';
import { sleep, waitUntil } from '../helpers/wait.js';

const run = hasSystem('nats-server');

interface Stand {
  sync: RolloutSync;
  nc: NatsConnection;
  forwarder: RolloutForwarder | undefined;
  sendFigure: ((f: CanaryFigure) => void) | undefined;
  figures: CanaryFigure[];
  sendShadow: ((f: ShadowFigure) => void) | undefined;
  shadows: ShadowFigure[];
  actions: {
    action: string;
    name: string;
    to?: number | undefined;
    by: string | undefined;
    opts: RolloutActionOptions;
  }[];
  /** What the next action does. */
  next: () => unknown;
}

let nats: NatsServer;
const stands: Stand[] = [];

async function stand(node: string): Promise<Stand> {
  const nc = await connect({ servers: nats.url });
  const s = {
    nc,
    forwarder: undefined,
    sendFigure: undefined,
    figures: [],
    sendShadow: undefined,
    shadows: [],
    actions: [],
    next: () => ({ done: node }),
  } as unknown as Stand;
  s.sync = await RolloutSync.start({
    nc,
    subject: rolloutsSubject('rollout_sync_test'),
    node,
    marks: { others: () => Promise.resolve([]), onChanged: undefined },
    agents: {
      followRollouts: () => Promise.resolve({ followed: 0, ended: 0 }),
      sendFigures: (to) => (s.sendFigure = to),
      observeElsewhere: (f) => s.figures.push(f),
      sendShadows: (to) => (s.sendShadow = to),
      observeShadowElsewhere: (f) => s.shadows.push(f),
      forwardRolloutsTo: (f) => (s.forwarder = f),
      promote: async (name, by, opts) => {
        s.actions.push({ action: 'promote', name, by, opts });
        return s.next() as never;
      },
      rollback: async (name, to, by, opts) => {
        s.actions.push({ action: 'rollback', name, to, by, opts });
        return s.next() as never;
      },
      rolloutStatus: (name) => {
        s.actions.push({ action: 'status', name, by: undefined, opts: {} });
        return s.next() as never;
      },
    },
    figuresMs: 20,
    figuresRetryMs: 100,
    // Longer than a test may run: a node that does not listen must answer before it (no responders).
    forwardTimeoutMs: 120_000,
  });
  stands.push(s);
  return s;
}

beforeAll(async () => {
  if (run) nats = await startNatsServer();
});

afterAll(async () => {
  for (const s of stands) {
    await s.sync.stop();
    await s.nc.close();
  }
  await nats?.stop();
});

describe.runIf(run)('RolloutSync between two nodes', () => {
  it('a promotion or rollback sent to the rollout node is carried out there and answered with its outcome or its error', async () => {
    const a = await stand('node-a');
    const b = await stand('node-b');
    expect(await b.forwarder!.promote('node-a', 'pilot', 'alice')).toEqual({ done: 'node-a' });
    expect(a.actions).toEqual([{ action: 'promote', name: 'pilot', by: 'alice', opts: { forwarded: true } }]);
    expect(b.actions).toEqual([]);
    // Its status, as that node reports it.
    a.next = () => ({ running: true, rollout: null, canary: null, shadow: null });
    expect(await b.forwarder!.status('node-a', 'pilot')).toEqual({
      running: true,
      rollout: null,
      canary: null,
      shadow: null,
    });
    expect(a.actions[1]).toMatchObject({ action: 'status', name: 'pilot' });

    a.next = () => {
      throw new CaxtonError('rollout_in_progress', 'agent "pilot" has a canary rollout running: run it without --to', {
        name: 'pilot',
        rollout: { id: 3 },
      });
    };
    const refused = await b.forwarder!.rollback('node-a', 'pilot', 9, undefined).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(CaxtonError);
    expect(refused).toMatchObject({
      code: 'rollout_in_progress',
      message: 'agent "pilot" has a canary rollout running: run it without --to',
      details: { name: 'pilot', rollout: { id: 3 } },
    });
    expect(a.actions[2]).toEqual({
      action: 'rollback',
      name: 'pilot',
      to: 9,
      by: undefined,
      opts: { forwarded: true },
    });

    // Anything else: `internal`, its text kept in that node's log, not sent.
    a.next = () => {
      throw new Error('secret detail of node-a');
    };
    const broken = (await b.forwarder!.promote('node-a', 'pilot', undefined).catch((e: unknown) => e)) as CaxtonError;
    expect([broken.code, broken.message]).toEqual([
      'internal',
      'node node-a could not carry out the rollout action; see its log',
    ]);
  });

  it('a node that does not listen answers 503 not_ready at once (not after the timeout), naming it', async () => {
    const b = stands[1] ?? (await stand('node-b'));
    const e = (await b.forwarder!.promote('node-gone', 'pilot', undefined).catch((x: unknown) => x)) as CaxtonError;
    expect(e).toBeInstanceOf(CaxtonError);
    expect(e.code).toBe('not_ready');
    expect(e.message).toContain('node node-gone runs the rollout of "pilot" but did not answer the promotion');
  });

  it("a canary figure reaches the node it names, and no other's judge", async () => {
    const [a, b] = stands as [Stand, Stand];
    const c = await stand('node-c');
    const figure = (node: string, version: number): CanaryFigure => ({
      node,
      agent: 'pilot',
      rollout_id: 4,
      share: 25,
      version,
      ok: true,
      ms: 12,
    });
    b.sendFigure!(figure('node-a', 7));
    b.sendFigure!(figure('node-c', 8));
    c.sendFigure!(figure('node-a', 9));
    await waitUntil(() => a.figures.length === 2 && c.figures.length === 1, {
      timeoutMs: 5_000,
      what: 'the figures on node-a and node-c',
    });
    expect(a.figures.map((f) => f.version).sort()).toEqual([7, 9]);
    expect(c.figures).toEqual([figure('node-c', 8)]);
    expect(b.figures).toEqual([]);
  });

  it("a shadow comparison reaches the node it names, its texts cut to the report's 2,000 characters; a copy skipped travels as one without a result", async () => {
    const [a, b] = stands as [Stand, Stand];
    const result = {
      rollout_id: 5,
      request: 'q'.repeat(5000),
      stable_answer: 'stable',
      candidate_answer: 'c'.repeat(3000),
      agree: false,
      method: 'exact' as const,
      stable_ms: 10,
      candidate_ms: 12,
      stable_tokens: 3,
      candidate_tokens: 4,
    };
    b.sendShadow!({ node: 'node-a', agent: 'mirror', rollout_id: 5, result });
    b.sendShadow!({ node: 'node-a', agent: 'mirror', rollout_id: 5 });
    b.sendShadow!({ node: 'node-c', agent: 'mirror', rollout_id: 5 });
    await waitUntil(() => a.shadows.length === 2, {
      timeoutMs: 5_000,
      what: 'the comparison and the skipped copy on node-a',
    });
    const got = a.shadows.find((f) => f.result)!;
    expect(got.result).toMatchObject({
      rollout_id: 5,
      stable_answer: 'stable',
      agree: false,
      method: 'exact',
      candidate_tokens: 4,
    });
    expect([got.result!.request.length, got.result!.candidate_answer!.length]).toEqual([2000, 2000]);
    expect(a.shadows.find((f) => !f.result)).toEqual({ node: 'node-a', agent: 'mirror', rollout_id: 5 });
    // Something that is not a comparison is dropped.
    await b.nc.request(
      `${rolloutsSubject('rollout_sync_test')}.figures.node-a`,
      JSON.stringify({ from: 'node-x', id: 'x-1', shadows: [{ node: 'node-a', agent: 'mirror', rollout_id: 'five' }] }),
    );
    b.sendShadow!({ node: 'node-a', agent: 'mirror', rollout_id: 6 });
    await waitUntil(() => a.shadows.length === 3, { timeoutMs: 5_000, what: 'the next copy on node-a' });
    expect(a.shadows[2]).toEqual({ node: 'node-a', agent: 'mirror', rollout_id: 6 });
  });

  it('figures for a node that is not listening reach it once it is (sent again until answered), and a batch sent twice counts once', async () => {
    const [a, b] = stands as [Stand, Stand];
    const figure = (node: string, version: number): CanaryFigure => ({
      node,
      agent: 'pilot',
      rollout_id: 8,
      share: 50,
      version,
      ok: true,
      ms: 5,
    });
    // node-d has not started (restarting, or cut off from NATS): B keeps its figures and tries again.
    b.sendFigure!(figure('node-d', 1));
    b.sendShadow!({ node: 'node-d', agent: 'mirror', rollout_id: 8 });
    await sleep(400);
    const d = await stand('node-d');
    // Before: published once on core NATS while no one listened, and lost.
    await waitUntil(() => d.figures.length === 1 && d.shadows.length === 1, {
      timeoutMs: 5_000,
      what: "node-d's figures after it started",
    });
    expect(d.figures).toEqual([figure('node-d', 1)]);
    await sleep(300);
    expect([d.figures.length, d.shadows.length]).toEqual([1, 1]);

    // A batch whose answer was lost is sent again with its id: counted once.
    const before = a.figures.length;
    const batch = JSON.stringify({ from: 'node-x', id: 'x-again', figures: [figure('node-a', 3)] });
    for (let i = 0; i < 2; i++)
      expect((await b.nc.request(`${rolloutsSubject('rollout_sync_test')}.figures.node-a`, batch)).string()).toBe('ok');
    expect(a.figures.length).toBe(before + 1);
  });

  it('figures their node never takes are dropped after keepMs and beyond 100 batches waiting, each drop counted (onDropped)', async () => {
    const figure = (version: number): CanaryFigure => ({
      node: 'node-q',
      agent: 'pilot',
      rollout_id: 9,
      share: 50,
      version,
      ok: true,
      ms: 5,
    });
    const subject = rolloutsSubject('rollout_drop_test');
    const nc = await connect({ servers: nats.url });
    const nc2 = await connect({ servers: nats.url });
    const dropped: [string, number][] = [];
    const sender = new RolloutFigures({
      nc,
      subject,
      node: 'node-s',
      batchMs: 5,
      retryMs: 50,
      keepMs: 400,
      onDropped: (node, n) => dropped.push([node, n]),
    });
    const got: number[] = [];
    const receiver = new RolloutFigures({ nc: nc2, subject, node: 'node-q' });
    try {
      // node-q does not listen: the two figures wait, then go with a count.
      sender.canary(figure(1));
      sender.canary(figure(2));
      await waitUntil(() => dropped.length > 0, { timeoutMs: 3_000, what: 'the figures dropped' });
      expect(dropped).toEqual([['node-q', 2]]);
      // Once it listens, what was dropped never arrives; what is new does.
      receiver.receive({ observeElsewhere: (f) => got.push(f.version), observeShadowElsewhere: () => {} });
      sender.canary(figure(3));
      await waitUntil(() => got.length === 1, { timeoutMs: 3_000, what: 'the new figure at node-q' });
      await sleep(200);
      expect(got).toEqual([3]);
    } finally {
      sender.stop();
      receiver.stop();
    }

    // The bound: at most 100 batches wait for one node; beyond, the oldest go, counted.
    const bounded: [string, number][] = [];
    const many = new RolloutFigures({
      nc,
      subject,
      node: 'node-s',
      batchMs: 1,
      retryMs: 60_000,
      keepMs: 60_000,
      onDropped: (node, n) => bounded.push([node, n]),
    });
    try {
      for (let i = 0; i < 103; i++) {
        many.canary({ ...figure(i), node: 'node-r' });
        await sleep(4);
      }
      await waitUntil(() => bounded.length === 3, { timeoutMs: 3_000, what: 'three batches dropped beyond the bound' });
      expect(bounded).toEqual([
        ['node-r', 1],
        ['node-r', 1],
        ['node-r', 1],
      ]);
    } finally {
      many.stop();
      await nc.close();
      await nc2.close();
    }
  });
});
