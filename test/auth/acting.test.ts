/**
 * The acting-principal directory (src/auth/acting.ts): a message's `on_behalf_of` back to a
 * principal. Keys come from a real key store (revoked or expired: nothing), `local:*` is the local
 * principal, token and certificate principals are remembered from authentication in a bounded
 * memory; executions acting for an unknown key are refused, for an unseen token charged against
 * the default limits; a principal out of tokens is refused at submit with 429.
 */
import { afterAll, describe, expect, it } from 'vitest';
import {
  ApiKeyStore,
  LOCAL_PRINCIPAL,
  PrincipalDirectory,
  PrincipalLimiter,
  type Principal,
} from '../../src/auth/index.js';
import { CaxtonError } from '../../src/shared/errors.js';
import { openDatabase, type Db } from '../../src/storage/index.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

const dbs: Db[] = [];
afterAll(() => {
  for (const db of dbs) db.close();
  removeTempDirs();
});

function store(now?: () => number): ApiKeyStore {
  const db = openDatabase(makeTempDir('caxton-acting-'));
  dbs.push(db);
  return new ApiKeyStore(db, now ? { now } : {});
}

const jwt = (sub: string, expiresAt?: number): Principal => ({
  id: `oidc:${sub}`,
  kind: 'jwt',
  name: sub,
  role: 'invoker',
  scope: { agents: ['a-*'] },
  ...(expiresAt !== undefined && { expiresAt }),
});

describe('PrincipalDirectory', () => {
  it('resolves a key by name with its current scope, and nothing once it is revoked', () => {
    const keys = store();
    const dir = new PrincipalDirectory({ keys });
    keys.create({ name: 'ci', role: 'invoker', scope: { agents: ['a-*'] } });
    expect(dir.resolve('key:ci')).toMatchObject({ id: 'key:ci', kind: 'key', scope: { agents: ['a-*'] } });
    keys.revoke('ci');
    expect(dir.resolve('key:ci')).toBeUndefined();
    expect(dir.resolve('key:never-made')).toBeUndefined();
  });

  it('resolves nothing for an expired key', () => {
    let t = Date.UTC(2030, 0, 1);
    const keys = store(() => t);
    const dir = new PrincipalDirectory({ keys });
    keys.create({ name: 'short', role: 'invoker', ttlMs: 1000 });
    expect(dir.resolve('key:short')).toBeDefined();
    t += 1001;
    expect(dir.resolve('key:short')).toBeUndefined();
  });

  it('resolves local:* to the local principal, and token principals only once seen and until their exp', () => {
    const dir = new PrincipalDirectory({ max: 2 });
    expect(dir.resolve('local:anonymous')).toBe(LOCAL_PRINCIPAL);
    expect(dir.resolve('oidc:alice')).toBeUndefined();
    dir.remember(jwt('alice'));
    expect(dir.resolve('oidc:alice')?.scope).toEqual({ agents: ['a-*'] });
    dir.remember(jwt('old', Date.now() - 1));
    expect(dir.resolve('oidc:old')).toBeUndefined();
    // Bounded: the least recently authenticated goes first.
    dir.remember(jwt('alice'));
    dir.remember(jwt('bob'));
    dir.remember(jwt('carol'));
    expect(dir.resolve('oidc:alice')).toBeUndefined();
    expect(dir.resolve('oidc:carol')).toBeDefined();
    // Keys are never remembered from authentication: their store is the truth.
    dir.remember({ id: 'key:x', kind: 'key', name: 'x', role: 'admin', scope: {} });
    expect(dir.resolve('key:x')).toBeUndefined();
  });

  it('refuses executions for a key it cannot resolve; charges an unseen token principal the default limits', () => {
    const dir = new PrincipalDirectory({ keys: store(), defaultLimits: { concurrent_executions: 3 } });
    const e = (() => {
      try {
        dir.executionLimits('key:revoked');
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(e).toBeInstanceOf(CaxtonError);
    expect((e as CaxtonError).details).toMatchObject({ reason: 'principal_unknown', on_behalf_of: 'key:revoked' });
    expect(dir.executionLimits('oidc:someone')).toEqual({ concurrent_executions: 3 });
    expect(dir.executionLimits('local:anonymous')).toBeUndefined();
  });

  it('refuses a send with 429 once the principal has used its tokens for the window', () => {
    const limiter = new PrincipalLimiter();
    const p = jwt('spender');
    const dir = new PrincipalDirectory({ limiter, limitsOf: () => ({ tokens: 30, tokens_period_ms: 60_000 }) });
    expect(() => dir.admitSend(p)).not.toThrow();
    limiter.recordTokens(p.id, undefined, 30);
    let err: unknown;
    try {
      dir.admitSend(p);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CaxtonError);
    expect((err as CaxtonError).code).toBe('rate_limited');
    expect((err as CaxtonError).details).toMatchObject({ limit: 'tokens', scope: 'principal', used: 30, value: 30 });
    // The local principal (authentication off) has no limits.
    expect(() => dir.admitSend(LOCAL_PRINCIPAL)).not.toThrow();
  });
});
