/**
 * HTTP traffic against a test cluster (helpers/nodes.ts) and the checks the cluster's system tests
 * make of it: bounded requests (a hang is a failure, never a test timeout), request messages for a
 * `worker` agent whose replies name the node that ran them, traffic loops that keep submitting
 * while a dependency fails, and the verification that every accepted (202) message was delivered
 * and answered exactly once. The same checks as test/cluster/three-nodes.e2e.test.ts.
 */
import { expect } from 'vitest';
import { sleep } from '../../helpers/wait.js';
import { nodeOf, type ClusterNode, type TestCluster } from './nodes.js';

// Response bodies are read loosely: the assertions name what they expect.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

export interface Res {
  status: number;
  json: Json;
  text: string;
  ms: number;
}

/** One submission: where, when, how long, and the error's code, message and dependency when refused. */
export interface Submitted {
  id: string;
  node: string;
  status: number;
  ms: number;
  at: number;
  code: string | undefined;
  message: string | undefined;
  dependency: string | undefined;
}

export interface Reply {
  id: string;
  in_reply_to?: string;
  performative: string;
  sender: string;
  content: unknown;
  conversation_id: string;
}

/** One request, bounded: no answer within timeoutMs is status -1, a refused connection status 0. */
export async function call(
  node: ClusterNode,
  method: string,
  path: string,
  body?: unknown,
  opts: { timeoutMs?: number; contentType?: string } = {},
): Promise<Res> {
  const t0 = performance.now();
  const headers: Record<string, string> = {};
  let payload: string | undefined;
  if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body);
    headers['content-type'] = opts.contentType ?? 'application/json';
  }
  try {
    const r = await fetch(node.url + path, {
      method,
      headers,
      ...(payload !== undefined && { body: payload }),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
    });
    const text = await r.text();
    let json: Json;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: r.status, json, text, ms: performance.now() - t0 };
  } catch (e) {
    const err = e as Error;
    if (err.name === 'TimeoutError')
      return {
        status: -1,
        json: undefined,
        text: `no answer within ${opts.timeoutMs ?? 30_000} ms`,
        ms: performance.now() - t0,
      };
    return {
      status: 0,
      json: undefined,
      text: `${err.message} (${(err.cause as Error | undefined)?.message ?? ''})`,
      ms: performance.now() - t0,
    };
  }
}

/** Runs `work` over `items` with at most `concurrency` at once. */
export async function pool<T, R>(
  items: readonly T[],
  concurrency: number,
  work: (item: T, i: number) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await work(items[i]!, i);
      }
    }),
  );
  return out;
}

export function workRequest(id: string, content = `job ${id}`) {
  return { id, performative: 'request', protocol: 'fipa-request', sender: 'loader', capability: 'work', content };
}

/** The `worker` agent the traffic asks for (max_concurrency 16). */
export const WORKER = `name = "worker"
description = "does the work; its answer names the node that ran it"
capabilities = ["work"]
system_prompt = "You are worker."

[messaging]
max_concurrency = 16
`;

export function statusCounts(rs: readonly Submitted[]): Record<string, number> {
  const c: Record<string, number> = {};
  for (const r of rs) c[r.status] = (c[r.status] ?? 0) + 1;
  return c;
}

export const accepted = (rs: readonly Submitted[]) => rs.filter((r) => r.status === 202).map((r) => r.id);

/** The traffic and checks bound to one cluster (`label` prefixes the lines they print). */
export function trafficKit(getCluster: () => TestCluster, label: string) {
  let seq = 0;
  const tag = Date.now().toString(36);
  const running = new Set<{ stop(): Promise<Submitted[]> }>();

  function fail(what: string, res?: Res): never {
    throw new Error(
      `${what}${res ? `: HTTP ${res.status} ${res.text.slice(0, 600)}` : ''}\n${getCluster().logs(2500)}`,
    );
  }

  const newIds = (prefix: string, n: number) => Array.from({ length: n }, () => `${prefix}-${tag}-${++seq}`);

  /** POSTs a request message for `work`; a 429 (queue full) is retried, anything else is returned. */
  async function submit(node: ClusterNode, id: string, timeoutMs = 20_000): Promise<Submitted> {
    for (;;) {
      const at = Date.now();
      const r = await call(node, 'POST', '/api/v1/messages', workRequest(id), { timeoutMs });
      if (r.status === 429) {
        await sleep(200);
        continue;
      }
      return {
        id,
        node: node.name,
        status: r.status,
        ms: r.ms,
        at,
        code: r.json?.error?.code,
        message: r.json?.error?.message ?? (r.status <= 0 ? r.text : undefined),
        dependency: r.json?.error?.details?.dependency,
      };
    }
  }

  /** Polls GET /ready on `n` until it answers `want`; fails with the nodes' logs if `n` exits or time runs out. */
  async function readyIs(
    n: ClusterNode,
    want: 200 | 503,
    timeoutMs: number,
    what: string,
    intervalMs = 100,
  ): Promise<Res> {
    const t0 = performance.now();
    for (;;) {
      if (!n.alive) fail(`${what}: ${n.name} exited (${JSON.stringify(await n.serve?.exited)})`);
      const r = await call(n, 'GET', '/ready', undefined, { timeoutMs: 5000 });
      if (r.status === want) return r;
      if (performance.now() - t0 > timeoutMs)
        fail(`${what}: ${n.name} GET /ready did not answer ${want} within ${timeoutMs} ms`, r);
      await sleep(intervalMs);
    }
  }

  /**
   * Keeps submitting (`concurrency` loops, round robin over `nodes()`) until stop() is called; a
   * loop pauses `refusedPauseMs` after a refusal (no busy loop against a refusing node).
   */
  function traffic(nodes: () => readonly ClusterNode[], prefix: string, concurrency = 4, refusedPauseMs = 50) {
    const results: Submitted[] = [];
    let stopped = false;
    let turn = 0;
    const loops = Array.from({ length: concurrency }, async () => {
      while (!stopped) {
        const ns = nodes();
        const node = ns[turn++ % ns.length]!;
        const [id] = newIds(prefix, 1);
        const s = await submit(node, id!);
        results.push(s);
        if (s.status !== 202) await sleep(refusedPauseMs);
      }
    });
    const t = {
      results,
      async stop(): Promise<Submitted[]> {
        stopped = true;
        await Promise.all(loops);
        running.delete(t);
        return results;
      },
    };
    running.add(t);
    return t;
  }

  /** Stops every traffic loop still running (afterEach: a failed test leaves none behind). */
  async function stopTraffic(): Promise<void> {
    for (const t of [...running]) await t.stop();
  }

  /** Waits until every message in `ids` has all its deliveries done (asking `via`); returns the ms it took. */
  async function waitDelivered(via: () => ClusterNode, ids: readonly string[], timeoutMs: number): Promise<number> {
    const t0 = performance.now();
    const open = new Set(ids);
    const last = new Map<string, unknown>();
    for (;;) {
      await pool([...open], 8, async (id) => {
        const r = await call(via(), 'GET', `/api/v1/messages/${encodeURIComponent(id)}`, undefined, {
          timeoutMs: 10_000,
        });
        last.set(id, r.status === 200 ? r.json.deliveries : `HTTP ${r.status} ${r.text.slice(0, 200)}`);
        if (
          r.status === 200 &&
          r.json.deliveries.length > 0 &&
          r.json.deliveries.every((d: { state: string }) => d.state === 'done')
        )
          open.delete(id);
      });
      if (open.size === 0) return performance.now() - t0;
      if (performance.now() - t0 > timeoutMs) {
        const sample = [...open].slice(0, 5).map((id) => `${id}: ${JSON.stringify(last.get(id))}`);
        fail(
          `${open.size} of ${ids.length} accepted messages were not delivered within ${timeoutMs} ms, e.g.\n${sample.join('\n')}`,
        );
      }
      await sleep(300);
    }
  }

  /** Every stored message with this performative and sender (paged through GET /api/v1/messages). */
  async function listMessages(via: ClusterNode, performative: string, sender: string): Promise<Reply[]> {
    const out: Reply[] = [];
    for (let offset = 0; ; offset += 1000) {
      const r = await call(
        via,
        'GET',
        `/api/v1/messages?performative=${performative}&sender=${encodeURIComponent(sender)}&limit=1000&offset=${offset}`,
      );
      if (r.status !== 200) fail('GET /api/v1/messages', r);
      out.push(...(r.json.messages as Reply[]));
      if (offset + 1000 >= r.json.total) return out;
    }
  }

  /** Per message id of `ids`, the nodes whose `worker` answered it (one entry per stored inform). */
  async function answersOf(via: ClusterNode, ids: readonly string[]): Promise<Map<string, string[]>> {
    const wanted = new Set(ids);
    const by = new Map<string, string[]>(ids.map((id) => [id, []]));
    for (const m of await listMessages(via, 'inform', 'worker')) {
      if (m.in_reply_to !== undefined && wanted.has(m.in_reply_to))
        by.get(m.in_reply_to)!.push(nodeOf(m.content) ?? `unrecognised: ${String(m.content).slice(0, 80)}`);
    }
    return by;
  }

  /** Every id answered exactly once; returns how many each node answered. */
  function expectAnsweredOnce(answers: Map<string, string[]>, what: string): Record<string, number> {
    const missing = [...answers].filter(([, n]) => n.length === 0).map(([id]) => id);
    const twice = [...answers].filter(([, n]) => n.length > 1).map(([id, n]) => `${id} (${n.join(', ')})`);
    if (missing.length > 0 || twice.length > 0) {
      fail(
        `${what}: every accepted message answered exactly once; ${missing.length} unanswered (e.g. ${missing.slice(0, 5).join(', ')}), ${twice.length} answered more than once (e.g. ${twice.slice(0, 5).join(', ')})`,
      );
    }
    const perNode: Record<string, number> = {};
    for (const [, [n]] of answers) perNode[n!] = (perNode[n!] ?? 0) + 1;
    return perNode;
  }

  /**
   * Sends every refused (non-202) submission of `rs` again, same id and node: each must be accepted
   * now (202), or 200 with duplicate = true when the refused attempt had stored it. Returns the ids.
   */
  async function resendRefused(rs: readonly Submitted[], concurrency = 4): Promise<string[]> {
    const refused = rs.filter((r) => r.status !== 202);
    const again = await pool(refused, concurrency, async (r) => {
      const res = await call(getCluster().node(r.node), 'POST', '/api/v1/messages', workRequest(r.id), {
        timeoutMs: 20_000,
      });
      return {
        id: r.id,
        first: r.status,
        status: res.status,
        duplicate: res.json?.duplicate as boolean | undefined,
        text: res.text.slice(0, 300),
      };
    });
    const bad = again.filter((a) => !(a.status === 202 || (a.status === 200 && a.duplicate === true)));
    expect(bad, 'a refused message sent again is accepted (202, or 200 duplicate when it was stored)').toEqual([]);
    console.log(
      `[${label}] ${refused.length} refused messages sent again: ${again.filter((a) => a.status === 202).length} accepted, ${again.filter((a) => a.status === 200).length} duplicates`,
    );
    return again.map((a) => a.id);
  }

  return {
    fail,
    newIds,
    submit,
    readyIs,
    traffic,
    stopTraffic,
    waitDelivered,
    answersOf,
    expectAnsweredOnce,
    resendRefused,
  };
}
