/**
 * What authentication and authorization cost per request (ADR 0025).
 *
 * One fastify app per variant, built the way createApi builds the real one (installAuth on the
 * root, a route with a permission policy), requests sent with `app.inject` (in process, no
 * sockets, so the per-request difference is the hook's work, not the network's):
 * - baseline: authentication off (the local principal), same Host/Origin checks and route;
 * - an API key (SHA-256 of the secret, map lookups, role check, request limiter);
 * - a cached JWT (SHA-256 of the token, cache lookup, role check).
 * Variants are interleaved in rounds so machine noise hits each alike; the cost is the variant's
 * p50 minus the baseline's p50 from the same run. Targets: ≤ 20 µs (key), ≤ 50 µs (cached JWT).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import {
  ApiKeyStore,
  createJwtAuthenticator,
  installAuth,
  PrincipalLimiter,
  jwtConfigSchema,
  type Authenticators,
} from '../src/auth/index.js';
import { CaxtonError } from '../src/shared/errors.js';
import { openDatabase } from '../src/storage/index.js';
import type { Row, Suite, SuiteReport } from './lib/report.js';
import { fmt, summarize, type Summary } from './lib/stats.js';

const ROUNDS = 20;
const PER_ROUND = 1_000;

async function appWith(
  enabled: boolean,
  authenticators: Authenticators,
  limiter?: PrincipalLimiter,
): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  installAuth(app, {
    enabled,
    authenticators,
    allowedHosts: [],
    allowedOrigins: [],
    ...(limiter && { limiter, limitsOf: () => ({ requests_per_minute: 1e12 }) }),
  });
  app.setErrorHandler((e: unknown, _req, reply) =>
    reply.code(e instanceof CaxtonError ? e.status : 500).send({ error: e instanceof Error ? e.message : String(e) }),
  );
  app.get('/api/v1/agents', { config: { access: { permission: 'agents:read' } } }, async () => ({ agents: [] }));
  await app.ready();
  return app;
}

async function timeRequests(
  app: FastifyInstance,
  headers: Record<string, string>,
  n: number,
  out: number[],
): Promise<void> {
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    const res = await app.inject({
      method: 'GET',
      url: '/api/v1/agents',
      headers: { host: '127.0.0.1:8080', ...headers },
    });
    out.push(Number(process.hrtime.bigint() - t0) / 1000);
    if (res.statusCode !== 200) throw new Error(`bench request failed: ${res.statusCode} ${res.body}`);
  }
}

const us = (v: number) => `${fmt(v, 1)} µs`;

export const authSuite: Suite = {
  name: 'auth',
  description:
    'authentication + authorization cost per request: API key and cached JWT beside authentication off (ADR 0025)',
  async run(): Promise<SuiteReport> {
    const dir = mkdtempSync(join(tmpdir(), 'caxton-bench-auth-'));
    const db = openDatabase(dir, 'bench.db');
    const keys = new ApiKeyStore(db);
    const { secret } = keys.create({ name: 'bench', role: 'viewer' });
    const pair = await generateKeyPair('ES256', { extractable: true });
    const jwk = { ...(await exportJWK(pair.publicKey)), alg: 'ES256', kid: 'k1' };
    const jwtCfg = jwtConfigSchema.parse({
      issuer: 'https://issuer.bench',
      audience: 'caxton',
      jwk: JSON.stringify(jwk),
      default_role: 'viewer',
    });
    const jwt = createJwtAuthenticator(jwtCfg);
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer('https://issuer.bench')
      .setAudience('caxton')
      .setSubject('bench')
      .setExpirationTime('1h')
      .sign(pair.privateKey);

    const off = await appWith(false, {});
    const withKey = await appWith(true, { keys }, new PrincipalLimiter());
    const withJwt = await appWith(true, { keys, jwt }, new PrincipalLimiter());
    const variants: [string, FastifyInstance, Record<string, string>, number[]][] = [
      ['off', off, {}, []],
      ['key', withKey, { authorization: `Bearer ${secret}` }, []],
      ['jwt', withJwt, { authorization: `Bearer ${token}` }, []],
    ];
    for (const [, app, headers] of variants) await timeRequests(app, headers, 2_000, []); // warm up (JIT, JWT cache)
    for (let r = 0; r < ROUNDS; r++)
      for (const [, app, headers, out] of variants) await timeRequests(app, headers, PER_ROUND, out);
    const s: Record<string, Summary> = {};
    for (const [name, , , out] of variants) s[name] = summarize(out);
    for (const [, app] of variants) await app.close();
    jwt.close();
    db.close();
    rmSync(dir, { recursive: true, force: true });

    const base = s.off!;
    const cost = (name: string) => s[name]!.p50 - base.p50;
    const row = (metric: string, name: string, target: number): Row => ({
      metric,
      value: `${us(cost(name))} (request p50 ${us(s[name]!.p50)}, p99 ${us(s[name]!.p99)})`,
      baseline: `authentication off: p50 ${us(base.p50)}, p99 ${us(base.p99)}`,
      target: `≤ ${target} µs p50`,
      verdict: cost(name) <= target ? 'pass' : 'fail',
    });
    return {
      rows: [
        row('API key: added cost per request, p50', 'key', 20),
        row('cached JWT (ES256): added cost per request, p50', 'jwt', 50),
      ],
      notes: [
        `${ROUNDS} interleaved rounds of ${PER_ROUND} requests per variant (fastify inject, in process). The added cost is the variant's p50 minus the baseline's.`,
      ],
      raw: { rounds: ROUNDS, per_round: PER_ROUND, summaries: s },
    };
  },
};
