/**
 * From a verified token's claims to a Principal: subject, role, agent scope (`[auth.jwt]`,
 * ADR 0021). Pure functions: src/auth/jwt.ts calls them only after the signature and the
 * registered claims (iss, aud, exp, nbf) are checked.
 */
import { CaxtonError } from '../shared/errors.js';
import { ROLES, isRole, type Role } from './permissions.js';
import type { Principal } from './principal.js';

export interface ClaimMapping {
  role_claim: string;
  roles: Record<string, Role>;
  default_role?: Role | undefined;
  subject_claim: string;
  agents_claim?: string | undefined;
}

/** At most this many characters of a claim value in an identifier or a message. */
const MAX_VALUE = 256;
const MAX_AGENT_GLOBS = 100;

const own = (o: unknown, k: string): unknown =>
  typeof o === 'object' && o !== null && !Array.isArray(o) && Object.hasOwn(o, k)
    ? (o as Record<string, unknown>)[k]
    : undefined;

/**
 * The claim at `path`: the whole path as one claim name first (namespaced claims such as
 * "https://caxton.example/roles" contain dots), then a dotted walk (`realm_access.roles`).
 * Own properties only, so "__proto__" or "constructor" never reach Object.prototype.
 */
export function claimAt(payload: Record<string, unknown>, path: string): unknown {
  const whole = own(payload, path);
  if (whole !== undefined || !path.includes('.')) return whole;
  let cur: unknown = payload;
  for (const part of path.split('.')) {
    cur = own(cur, part);
    if (cur === undefined) return undefined;
  }
  return cur;
}

/** A string claim is one value, a list keeps its strings; anything else holds none. */
function claimValues(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
  return [];
}

const short = (s: string) => JSON.stringify(s.length > 60 ? `${s.slice(0, 60)}…` : s);

/** The strongest role the claim's values map to (admin > operator > developer > invoker > viewer). */
export function mapRole(values: readonly string[], table: Record<string, Role>): Role | undefined {
  // An empty table maps a value that is a role's name to that role: the default claim
  // `caxton_role = "operator"` then works with no table. With a table, only its entries count, so
  // an IdP group that happens to be called "admin" grants nothing unless the operator says so.
  const useTable = Object.keys(table).length > 0;
  let best: number = ROLES.length;
  for (const v of values) {
    const r = useTable ? (Object.hasOwn(table, v) ? table[v] : undefined) : isRole(v) ? v : undefined;
    if (r !== undefined) best = Math.min(best, ROLES.indexOf(r));
  }
  return (ROLES as readonly Role[])[best];
}

/** The Principal for a verified token; throws `unauthenticated` without a subject, `forbidden` without a role. */
export function principalFromClaims(payload: Record<string, unknown>, m: ClaimMapping): Principal {
  const sub = claimAt(payload, m.subject_claim);
  if (typeof sub !== 'string' || sub.length === 0 || sub.length > MAX_VALUE) {
    throw new CaxtonError(
      'unauthenticated',
      `the token has no usable subject: claim "${m.subject_claim}" must be a non-empty string of at most ${MAX_VALUE} characters`,
      {
        reason: 'no_subject',
        claim: m.subject_claim,
      },
    );
  }
  const values = claimValues(claimAt(payload, m.role_claim));
  const role = mapRole(values, m.roles) ?? m.default_role;
  if (role === undefined) {
    const why =
      values.length === 0
        ? `claim "${m.role_claim}" is missing or holds no string`
        : `no value of claim "${m.role_claim}" (${values.slice(0, 5).map(short).join(', ')}${values.length > 5 ? ', …' : ''}) is ${Object.keys(m.roles).length > 0 ? 'listed in [auth.jwt.roles]' : 'a Caxton role name'}`;
    throw new CaxtonError(
      'forbidden',
      `the token for ${short(sub)} maps to no Caxton role: ${why}; an administrator can map it in [auth.jwt.roles] or set [auth.jwt] default_role`,
      {
        reason: 'no_role',
        claim: m.role_claim,
      },
    );
  }
  const scope: Principal['scope'] = {};
  if (m.agents_claim !== undefined) {
    const raw = claimAt(payload, m.agents_claim);
    // Fail closed: when the operator maps agents from a claim, a token without it may use no
    // agent, rather than every agent. An issuer grants all with ["*"].
    const agents =
      raw === undefined ? [] : Array.isArray(raw) || typeof raw === 'string' ? claimValues(raw) : undefined;
    if (
      agents === undefined ||
      (Array.isArray(raw) && agents.length !== raw.length) ||
      agents.length > MAX_AGENT_GLOBS ||
      agents.some((a) => a.length === 0 || a.length > MAX_VALUE)
    ) {
      throw new CaxtonError(
        'forbidden',
        `the token's claim "${m.agents_claim}" must be an agent name or a list of at most ${MAX_AGENT_GLOBS} agent names or globs such as "support-*"`,
        {
          reason: 'bad_agents_claim',
          claim: m.agents_claim,
        },
      );
    }
    scope.agents = Object.freeze(agents);
  }
  const username = payload.preferred_username;
  const name = typeof username === 'string' && username.length > 0 && username.length <= MAX_VALUE ? username : sub;
  // Frozen: the token cache hands the same Principal to every request carrying this token.
  // exp is in seconds; the principal's expiry ends the event streams the token opened.
  const expiresAt = typeof payload.exp === 'number' ? payload.exp * 1000 : undefined;
  return Object.freeze({
    id: `oidc:${sub}`,
    kind: 'jwt',
    name,
    role,
    scope: Object.freeze(scope),
    ...(expiresAt !== undefined && { expiresAt }),
  });
}
