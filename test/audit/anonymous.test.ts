/**
 * Strangers cannot flush the audit trail: refusals of requests without a principal are counted
 * per source address into one row per interval (with the count), not one row each, so 3,000
 * anonymous POSTs against `[audit] max_rows = 1000` leave the administrator's key.create row in
 * place; they are counted in metrics by reason; past `[auth.limits.anonymous] requests_per_minute`
 * an address is answered 429 with Retry-After while a valid key from the same address is served.
 * Refusals of known principals are recorded on every route, reads included, as denied.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AnonymousRefusals, MemoryAuditSink, type AuditRecord } from '../../src/audit/index.js';
import { AnonymousLimiter } from '../../src/auth/index.js';
import { http } from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { waitUntil } from '../helpers/wait.js';

const servers: TestServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.close();
});

async function start(toml: string): Promise<{ ts: TestServer; admin: string }> {
  const ts = await startTestServer({ toml: `[auth]\nenabled = true\n\n${toml}` });
  servers.push(ts);
  return { ts, admin: readFileSync(join(ts.dataDir, 'admin.key'), 'utf8').trim() };
}

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

/** A GET with headers fetch will not send as given (Host). */
function rawStatus(base: string, path: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(base + path, { headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

async function audit(ts: TestServer, admin: string, query: string): Promise<AuditRecord[]> {
  const r = await http<{ records: AuditRecord[] }>(ts.url, 'GET', `/api/v1/audit${query}`, { headers: bearer(admin) });
  expect(r.status, r.text).toBe(200);
  return r.json.records;
}

const AGENT = 'name = "anon-target"\nsystem_prompt = "x"\n';

describe('anonymous refusals in the audit trail', () => {
  it("3,000 anonymous POSTs with max_rows = 1000 keep the administrator's key.create row; the aggregate row carries the count", async () => {
    const { ts, admin } = await start(
      '[audit]\nmax_rows = 1000\nanonymous_interval = "1s"\n\n[auth.limits.anonymous]\nrequests_per_minute = 1000000\n',
    );
    const created = await http(ts.url, 'POST', '/api/v1/keys', {
      body: JSON.stringify({ name: 'ci', role: 'developer' }),
      contentType: 'application/json',
      headers: bearer(admin),
    });
    expect(created.status, created.text).toBe(201);

    const N = 3000;
    for (let i = 0; i < N; i += 100) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(100, N - i) }, (_, j) =>
          http(ts.url, 'POST', '/api/v1/agents', {
            body: AGENT,
            contentType: 'application/toml',
            headers: j % 2 === 0 ? {} : { authorization: 'Bearer cxk_not_a_real_key_0000000000' },
          }),
        ),
      );
      for (const r of batch) expect(r.status).toBe(401);
    }
    const counted = async () =>
      (await audit(ts, admin, '?action=auth.anonymous_refusals&limit=1000')).reduce(
        (n, r) => n + Number((r.details as { count: number }).count),
        0,
      );
    await waitUntil(async () => (await counted()) === N, {
      timeoutMs: 15_000,
      what: 'the aggregate rows to count every refusal',
    });
    await ts.server.audit!.prune();

    const rows = await audit(ts, admin, '?limit=1000');
    expect(rows.length).toBeLessThan(100);
    expect(rows.find((r) => r.action === 'key.create' && r.target === 'ci')).toMatchObject({
      principal: 'key:admin',
      outcome: 'ok',
    });
    const agg = rows.filter((r) => r.action === 'auth.anonymous_refusals');
    expect(agg.length).toBeGreaterThan(0);
    for (const r of agg) expect(r).toMatchObject({ principal: null, source: '127.0.0.1', outcome: 'denied' });
    const reasons: Record<string, number> = {};
    for (const r of agg)
      for (const [k, v] of Object.entries((r.details as { reasons: Record<string, number> }).reasons))
        reasons[k] = (reasons[k] ?? 0) + v;
    expect(reasons).toEqual({ missing_credentials: N / 2, invalid_credentials: N / 2 });
    expect((agg[0]!.details as { routes: Record<string, number> }).routes).toHaveProperty(['POST /api/v1/agents']);

    const metrics = await (await fetch(ts.server.metricsUrl!)).text();
    expect(metrics).toMatch(
      new RegExp(`caxton_auth_anonymous_refusals_total\\{reason="missing_credentials"\\} ${N / 2}`),
    );
    expect(metrics).toMatch(
      new RegExp(`caxton_auth_anonymous_refusals_total\\{reason="invalid_credentials"\\} ${N / 2}`),
    );
  }, 120_000);

  it('answers 429 with Retry-After per source address past the anonymous limit; a valid key from that address is served', async () => {
    const { ts, admin } = await start(
      '[security]\ntrust_proxy = true\n\n[audit]\nanonymous_interval = "1s"\n\n[auth.limits.anonymous]\nrequests_per_minute = 5\n',
    );
    const from = (ip: string, extra: Record<string, string> = {}) =>
      http(ts.url, 'GET', '/api/v1/agents', { headers: { 'x-forwarded-for': ip, ...extra } });
    for (let i = 0; i < 5; i++) expect((await from('203.0.113.7')).status).toBe(401);
    const limited = await from('203.0.113.7');
    expect(limited.status, limited.text).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    const e = (limited.json as { error: { code: string; message: string; details: { reason: string } } }).error;
    expect(e.code).toBe('rate_limited');
    expect(e.details.reason).toBe('anonymous_rate');
    expect(e.message).toContain('[auth.limits.anonymous] requests_per_minute');
    // Another address has its own allowance; a valid key is never charged.
    expect((await from('203.0.113.8')).status).toBe(401);
    expect((await from('203.0.113.7', bearer(admin))).status).toBe(200);
    // A foreign Host is refused before anyone is known: counted the same way.
    expect(
      await rawStatus(ts.url, '/api/v1/agents', { host: 'rebound.example', 'x-forwarded-for': '203.0.113.9' }),
    ).toBe(403);

    // One row per address per interval: on a loaded machine the six requests can span two
    // intervals, so the rows of the address are added up.
    const summed = async () => {
      const rows = (await audit(ts, admin, '?action=auth.anonymous_refusals')).filter(
        (r) => r.source === '203.0.113.7',
      );
      const reasons: Record<string, number> = {};
      let count = 0;
      for (const r of rows) {
        const d = r.details as { count: number; reasons: Record<string, number> };
        count += d.count;
        for (const [k, v] of Object.entries(d.reasons)) reasons[k] = (reasons[k] ?? 0) + v;
      }
      return { count, reasons };
    };
    await waitUntil(async () => (await summed()).count >= 6, { timeoutMs: 10_000, what: 'the aggregate rows' });
    expect(await summed()).toEqual({ count: 6, reasons: { missing_credentials: 5, anonymous_rate: 1 } });
    await waitUntil(
      async () => (await audit(ts, admin, '?action=auth.anonymous_refusals')).some((r) => r.source === '203.0.113.9'),
      { what: 'the Host refusal row' },
    );
    const host = (await audit(ts, admin, '?action=auth.anonymous_refusals')).find((r) => r.source === '203.0.113.9')!;
    expect(host.details).toMatchObject({ count: 1, reasons: { host_not_allowed: 1 } });
  }, 60_000);

  it('records refusals of known principals on reads and event streams as denied, one row each', async () => {
    const { ts, admin } = await start('');
    const made = await http<{ secret: string }>(ts.url, 'POST', '/api/v1/keys', {
      body: JSON.stringify({ name: 'scoped', role: 'invoker', agents: ['a-*'] }),
      contentType: 'application/json',
      headers: bearer(admin),
    });
    const scoped = made.json.secret;
    expect((await http(ts.url, 'GET', '/api/v1/agents/b-other', { headers: bearer(scoped) })).status).toBe(403);
    // An out-of-scope model reads as a missing one (not a refusal), so it writes no denied row.
    expect((await http(ts.url, 'GET', '/v1/models/b-other', { headers: bearer(scoped) })).status).toBe(404);
    expect((await http(ts.url, 'GET', '/api/v1/logs/stream', { headers: bearer(scoped) })).status).toBe(403);
    const rows = await audit(ts, admin, '?principal=key:scoped&outcome=denied');
    expect(rows.map((r) => `${r.method} ${r.route} ${String(r.details?.reason)}`).sort()).toEqual([
      'GET /api/v1/agents/:name agent_scope',
      'GET /api/v1/logs/stream permission',
    ]);
  });
});

describe('bounded memory', () => {
  it('tells apart at most maxSources addresses per interval; the rest share one row without a source', () => {
    const sink = new MemoryAuditSink();
    const agg = new AnonymousRefusals(sink, { maxSources: 3, intervalMs: 3_600_000 });
    for (let i = 0; i < 10; i++) agg.note(`198.51.100.${i}`, 'missing_credentials', 'POST /api/v1/agents');
    agg.note('198.51.100.0', 'invalid_credentials', 'GET /api/v1/agents');
    agg.close();
    expect(sink.entries).toHaveLength(4);
    expect(sink.entries.filter((e) => e.source !== null).map((e) => e.details?.count)).toEqual([2, 1, 1]);
    expect(sink.entries.find((e) => e.source === null)?.details).toMatchObject({ count: 7, other_sources: '3+' });
  });

  it('keeps at most maxAddresses buckets; further addresses share one allowance', () => {
    let now = 0;
    const lim = new AnonymousLimiter({ requestsPerMinute: 2, maxAddresses: 2, now: () => now });
    expect(lim.charge('a')).toBe(0);
    expect(lim.charge('b')).toBe(0);
    expect(lim.charge('c')).toBe(0);
    expect(lim.charge('d')).toBe(0);
    expect(lim.charge('e')).toBeGreaterThan(0); // c, d and e share the third bucket
    expect(lim.size).toBe(3);
    now += 120_000; // every bucket refilled: swept to make room
    expect(lim.charge('f')).toBe(0);
    expect(lim.size).toBeLessThanOrEqual(3);
  });
});
