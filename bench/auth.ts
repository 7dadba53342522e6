/**
 * What the per-request checks cost (ADRs 0021, 0024, 0025; docs/security.md's scope rules), each
 * beside a same-run baseline that does the same call without the check:
 * - authentication on a fastify app built as createApi builds it, through `app.inject`: an API key
 *   and a cached JWT beside authentication off, in alternated rounds;
 * - a JWT against a JWKS on 127.0.0.1 per algorithm: cold (every token new: the signature check)
 *   and cached, beside an async function returning a fixed principal;
 * - the limiter (`admitRequest`, `beginExecution`) beside a no-op of the same shape, and its sweep;
 * - the scope checks for a principal with 20 agent, 10 capability and 10 tool globs beside an
 *   unscoped one.
 * Calls too short for one hrtime reading are timed in batches (bench/lib/stats.ts, perCallNs).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import {
  ApiKeyStore,
  assertAgentAllowed,
  checkSend,
  createJwtAuthenticator,
  inScope,
  installAuth,
  jwtConfigSchema,
  messageVisible,
  PrincipalLimiter,
  type Authenticators,
  type Principal,
  type PrincipalScope,
} from '../src/auth/index.js';
import type { LimitSet } from '../src/auth/caller-limits.js';
import { CaxtonError } from '../src/shared/errors.js';
import { openDatabase } from '../src/storage/index.js';
import { note } from './lib/progress.js';
import type { Row, Suite, SuiteReport } from './lib/report.js';
import { envNumber, fmt, perCallNs, summarize, type Summary } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';

const ROUNDS = envNumber('BENCH_ROUNDS', 20);
const TOKENS = envNumber('BENCH_JWT_TOKENS', 2000);
const ISSUER = 'https://issuer.bench/';
const ns = (v: number) => (v >= 1_000 ? `${fmt(v / 1000, 1)} µs` : `${fmt(v, 1)} ns`);
const pair = (s: Summary) => `${ns(s.p50)} / ${ns(s.p99)}`;
const row = (metric: string, s: Summary, base: Summary, baseName: string, target?: number): Row => ({
  metric: `${metric}: p50 / p99${target === undefined ? '' : ' (added p50)'}`,
  value: `${pair(s)}${target === undefined ? '' : ` (+${ns(Math.max(0, s.p50 - base.p50))})`}`,
  baseline: `${baseName}: ${pair(base)}`,
  ...(target !== undefined && {
    target: `added ≤ ${ns(target)} p50`,
    verdict: s.p50 - base.p50 <= target ? 'pass' : 'fail',
  }),
});

/** ns per call of `fn` over `inputs`, one awaited call after another. */
async function timeEach<T>(inputs: readonly T[], fn: (x: T) => Promise<unknown>): Promise<number[]> {
  const out = new Array<number>(inputs.length);
  for (let i = 0; i < inputs.length; i++) {
    const t0 = process.hrtime.bigint();
    await fn(inputs[i]!);
    out[i] = Number(process.hrtime.bigint() - t0);
  }
  return out;
}

/** Keycloak-like access tokens (600–900 characters signed), `n` distinct ones. */
async function mint(alg: string, key: CryptoKey, n: number): Promise<string[]> {
  const exp = Math.floor(Date.now() / 1000) + 3600;
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const payload = {
      iss: ISSUER,
      aud: ['caxton', 'account'],
      sub: `f3b1c2d4-0000-4000-8000-${String(i).padStart(12, '0')}`,
      exp,
      iat: exp - 3600,
      jti: `bench-${alg}-${i}`,
      azp: 'caxton-cli',
      scope: 'openid profile email',
      preferred_username: `user${i}`,
      email: `user${i}@example.com`,
      realm_access: { roles: ['offline_access', 'uma_authorization', 'caxton-devs'] },
      caxton_agents: ['support-*', 'triage'],
    };
    out.push(await new SignJWT(payload).setProtectedHeader({ alg, kid: `k-${alg}`, typ: 'JWT' }).sign(key));
  }
  return out;
}

/** The hook on a fastify app built as createApi builds it: an API key and a cached JWT beside authentication off. */
async function perRequest(): Promise<Row[]> {
  const dir = tempDir('caxton-bench-auth-');
  const db = openDatabase(dir.path, 'bench.db');
  const keys = new ApiKeyStore(db);
  const { secret } = keys.create({ name: 'bench', role: 'viewer' });
  const kp = await generateKeyPair('ES256', { extractable: true });
  const jwk = JSON.stringify({ ...(await exportJWK(kp.publicKey)), alg: 'ES256', kid: 'k-ES256' });
  const jwt = createJwtAuthenticator(
    jwtConfigSchema.parse({ issuer: ISSUER, audience: 'caxton', jwk, default_role: 'viewer' }),
  );
  const [token] = await mint('ES256', kp.privateKey, 1);
  const app = async (enabled: boolean, authenticators: Authenticators): Promise<FastifyInstance> => {
    const a = Fastify({ logger: false });
    const limiter = { limiter: new PrincipalLimiter(), limitsOf: () => ({ requests_per_minute: 1e12 }) };
    installAuth(a, { enabled, authenticators, allowedHosts: [], allowedOrigins: [], ...(enabled && limiter) });
    a.setErrorHandler((e: unknown, _req, reply) =>
      reply.code(e instanceof CaxtonError ? e.status : 500).send({ error: String(e) }),
    );
    a.get('/api/v1/agents', { config: { access: { permission: 'agents:read' } } }, async () => ({ agents: [] }));
    await a.ready();
    return a;
  };
  const variants = [
    { app: await app(false, {}), auth: '', out: [] as number[] },
    { app: await app(true, { keys }), auth: `Bearer ${secret}`, out: [] as number[] },
    { app: await app(true, { keys, jwt }), auth: `Bearer ${token}`, out: [] as number[] },
  ];
  const send = (v: (typeof variants)[number], n: number) =>
    timeEach(Array.from({ length: n }), async () => {
      const headers = { host: '127.0.0.1:8080', ...(v.auth && { authorization: v.auth }) };
      const res = await v.app.inject({ method: 'GET', url: '/api/v1/agents', headers });
      if (res.statusCode !== 200) throw new Error(`bench request failed: ${res.statusCode} ${res.body}`);
    });
  for (const v of variants) await send(v, 2_000); // warm up (JIT, JWT cache)
  for (let r = 0; r < ROUNDS; r++) for (const v of variants) v.out.push(...(await send(v, 1_000)));
  for (const v of variants) await v.app.close();
  jwt.close();
  db.close();
  dir.remove();
  const [off, key, cached] = variants.map((v) => summarize(v.out));
  return [
    row('API key (Bearer cxk_…), role check, request limiter: a request', key!, off!, 'authentication off', 20_000),
    row('cached JWT (ES256), role check, request limiter: a request', cached!, off!, 'authentication off', 50_000),
  ];
}

/** The authenticator per algorithm against a JWKS served on 127.0.0.1 (fetched once, then cached by jose). */
async function jwtVerify(): Promise<Row[]> {
  const algs = ['RS256', 'ES256', 'EdDSA'] as const;
  const keys: JWK[] = [];
  const signers = new Map<string, CryptoKey>();
  for (const alg of algs) {
    const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
    keys.push({ ...(await exportJWK(publicKey)), kid: `k-${alg}`, alg, use: 'sig' });
    signers.set(alg, privateKey);
  }
  const server = createServer((_req, res) => res.end(JSON.stringify({ keys })));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const config = jwtConfigSchema.parse({
    issuer: ISSUER,
    audience: 'caxton',
    jwks_url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`,
    role_claim: 'realm_access.roles',
    roles: { 'caxton-devs': 'developer' },
    agents_claim: 'caxton_agents',
    cache_ttl: '5m',
  });
  const rows: Row[] = [];
  try {
    const fixed: Principal = Object.freeze({ id: 'oidc:x', kind: 'jwt', name: 'x', role: 'developer', scope: {} });
    const none = async (_t: string): Promise<Principal> => fixed;
    const rounds = (t: string[]) => Array.from({ length: TOKENS * ROUNDS }, (_, i) => t[i % t.length]!);
    const warm = await mint('ES256', signers.get('ES256')!, 200);
    await timeEach(warm, none);
    const base = summarize(await timeEach(rounds(warm), none));
    for (const alg of algs) {
      note(`auth: minting ${TOKENS} ${alg} tokens`);
      const tokens = await mint(alg, signers.get(alg)!, TOKENS + 200);
      const auth = createJwtAuthenticator(config);
      await timeEach(tokens.slice(TOKENS), (t) => auth.authenticate(t)); // JWKS fetch, key import, JIT
      const measured = tokens.slice(0, TOKENS);
      const cold = summarize(await timeEach(measured, (t) => auth.authenticate(t)));
      const cached = summarize(await timeEach(rounds(measured), (t) => auth.authenticate(t)));
      auth.close();
      const name = `${alg}, ${measured[0]!.length} chars`;
      rows.push(row(`JWT ${name}: a new token verified`, cold, base, 'no authentication'));
      rows.push(row(`JWT ${name}: the same token again (${TOKENS} cached)`, cached, base, 'no authentication', 50_000));
    }
  } finally {
    await new Promise((r) => server.close(r));
  }
  return rows;
}

/** The limiter beside a no-op of the same shape, alternated; then the sweep of 100,000 idle states. */
function limits(): Row[] {
  const n = 10_000;
  const ids = Array.from({ length: n }, (_, i) => `key:bench-${i}`);
  const high: LimitSet = {
    requests_per_minute: 1e12,
    concurrent_executions: 1e6,
    tokens: 1e15,
    tokens_period_ms: 60_000,
  };
  const ok = { ok: true } as const;
  const noop = (_id: string, _l: LimitSet | undefined) => ok;
  const limiter = new PrincipalLimiter();
  limiter.admitRequest('key:refused', { requests_per_minute: 1 });
  const [base, one, many, refused, free, exec] = perCallNs(
    [
      (i) => noop(ids[i % n]!, high),
      () => limiter.admitRequest('key:busy', high),
      (i) => limiter.admitRequest(ids[i % n]!, high),
      () => limiter.admitRequest('key:refused', { requests_per_minute: 1 }),
      () => limiter.admitRequest('key:free', undefined),
      (i) => {
        const s = limiter.beginExecution({
          principalId: ids[i % n]!,
          principalLimits: high,
          agent: 'a',
          agentLimits: high,
        });
        if (s.ok) s.release({ tokens: 100 });
        return s;
      },
    ],
    { batch: 1_000, rounds: ROUNDS, samples: 100 },
  );
  let t = Date.now();
  const swept = new PrincipalLimiter({ now: () => t, sweepIntervalMs: 3_600_000 });
  for (let i = 0; i < 100_000; i++) swept.admitRequest(`key:s${i}`, { requests_per_minute: 100 });
  t += 60_000; // every bucket has refilled
  const s0 = process.hrtime.bigint();
  swept.sweep();
  const sweepMs = Number(process.hrtime.bigint() - s0) / 1e6;
  const r = (m: string, s: Summary, target?: number) => row(`limits: ${m}`, s, base!, 'no-op', target);
  return [
    r('admitRequest, one principal under its limit', one!, 1_000),
    r('admitRequest, 10,000 principals in turn', many!, 1_000),
    r('admitRequest, refused (bucket empty)', refused!, 1_000),
    r('admitRequest, principal without limits', free!),
    r('beginExecution + release, principal and agent limits, 10,000 principals', exec!),
    {
      metric: 'limits: sweep of 100,000 idle states, ms (at most once a minute)',
      value: fmt(sweepMs),
      baseline: '-',
      ...(swept.size !== 0 && { verdict: 'fail' as const, target: '0 left' }),
    },
  ];
}

const TEAMS = 'support sales billing search ops legal hr marketing research data web mobile infra security finance';
const teams = TEAMS.split(' ');
const principal = (scope: PrincipalScope): Principal => ({
  id: 'key:b',
  kind: 'key',
  name: 'b',
  role: 'developer',
  scope,
});
const SCOPED = principal({
  agents: [...teams.map((t) => `${t}-*`), 'triage', 'router', 'summarizer', 'translator', 'reviewer'],
  capabilities: teams.slice(0, 10).map((t) => `${t}.*`),
  memory: ['workspace', 'agent:support-*', 'agent:sales-*'],
  tools:
    'csv_parser.* json_query.* calculator current_time read_graph search_nodes open_nodes create_entities send_message web.fetch'.split(
      ' ',
    ),
});
/** In-scope agent names matched late in the glob list (the scan's worst case among allowed names). */
const NAMES = Array.from({ length: 1_000 }, (_, i) => `${teams[10 + (i % 5)]}-agent-${i}`);
/** Providers of one capability, one in five outside the scope. */
const PROVIDERS = Array.from({ length: 50 }, (_, i) => (i % 5 === 4 ? `partner-${i}` : `${teams[i % 15]}-worker-${i}`));
/** A page of 100 stored messages: some from outside parties, a few naming an agent outside the scope. */
const PAGE = Array.from({ length: 100 }, (_, i) => {
  const b = i % 10 === 9 ? `partner-${i}` : NAMES[(i * 7) % NAMES.length]!;
  return { message: { sender: i % 3 === 0 ? 'key:ci' : NAMES[i]!, receivers: [b] }, routed_to: [b] };
});
/** Capability routing as the router applies the send rule: the filter checkSend returns. */
function routed(p: Principal): readonly string[] {
  const scope = checkSend(p, { receivers: [] });
  return scope === undefined ? PROVIDERS : PROVIDERS.filter((a) => scope.allows(a));
}

/** The central scope checks, scoped beside unscoped principal, alternated. */
function scope(): Row[] {
  const inRoute = routed(SCOPED).length;
  const visible = PAGE.filter((m) => messageVisible(SCOPED, m)).length;
  if (inRoute % 50 === 0 || visible % 100 === 0) throw new Error('scope bench fixtures are not mixed');
  const checks: [string, number, number, (p: Principal, i: number) => unknown][] = [
    ['agent scope of one request (assertAgentAllowed)', 100, 1_000, (p, i) => assertAgentAllowed(p, NAMES[i % 1000]!)],
    [
      'tool scope of one call (inScope, 10 globs)',
      100,
      1_000,
      (p, i) => inScope(p.scope.tools, i % 2 ? 'web.fetch' : 'json_query.query'),
    ],
    [`capability routing over 50 providers, ${inRoute} in scope`, 2, 50_000, (p) => routed(p).length],
    [
      `message visibility over a page of 100, ${visible} in scope`,
      1,
      1e6,
      (p) => PAGE.filter((m) => messageVisible(p, m)).length,
    ],
  ];
  return checks.map(([name, batch, target, call]) => {
    const unscoped = principal({});
    const [u, s] = perCallNs([(i) => call(unscoped, i), (i) => call(SCOPED, i)], {
      batch,
      rounds: ROUNDS,
      samples: 200,
    });
    return row(`scope: ${name}`, s!, u!, 'unscoped', target);
  });
}

export const authSuite: Suite = {
  name: 'auth',
  description:
    'per-request checks: authentication (API key, JWT), limits per principal, scope checks, each beside its baseline',
  async run(): Promise<SuiteReport> {
    const rows = [...(await perRequest()), ...(await jwtVerify()), ...limits(), ...scope()];
    return {
      rows,
      notes: [
        `${ROUNDS} alternated rounds per part; batched samples are the mean of a batch of calls, p50/p99 over the samples.`,
      ],
      raw: { rounds: ROUNDS, tokens: TOKENS },
    };
  },
};
