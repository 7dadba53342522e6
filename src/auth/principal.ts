import { z } from 'zod';
import { ROLE_PERMISSIONS, type Permission, type Role } from './permissions.js';

/**
 * Who is calling. Every request past authentication carries one (`req.principal`); the audit
 * trail, the tool audit, per-principal limits and the ACL `sender` of messages from outside all
 * name it by `id`.
 */
export interface Principal {
  /** Stable and unique: `key:<name>`, `oidc:<subject>`, `cert:<subject CN>`, `local:admin`. */
  readonly id: string;
  /** How it authenticated. */
  readonly kind: 'key' | 'jwt' | 'cert' | 'local';
  /** A human-readable name (key name, token subject, certificate CN). */
  readonly name: string;
  readonly role: Role;
  /** What it may use beyond its role's permissions: absent lists mean "any". */
  readonly scope: PrincipalScope;
  /** The API key's id, when kind is 'key' (for last-used and limits). */
  readonly keyId?: string;
  /** When a bearer token (kind 'jwt') stops being valid, epoch ms: the event streams it opened end then. */
  readonly expiresAt?: number;
}

const globList = z.array(z.string()).readonly().optional();

/** Glob lists (`*` matches any run of characters): absent means no restriction. */
export const principalScopeSchema = z.object({
  agents: globList,
  capabilities: globList,
  /** Memory scopes (`agent:NAME`, `shared`, ...). */
  memory: globList,
  /** Host tool names (`SERVER.tool`, `SERVER.*`). */
  tools: globList,
});
export type PrincipalScope = z.output<typeof principalScopeSchema>;

export function can(p: Principal, permission: Permission): boolean {
  return ROLE_PERMISSIONS[p.role].has(permission);
}

const globCache = new Map<string, RegExp>();

/** `support-*` style match; case-sensitive; patterns are short operator-written strings. */
export function globMatch(pattern: string, value: string): boolean {
  if (pattern === '*') return true;
  if (!pattern.includes('*')) return pattern === value;
  let re = globCache.get(pattern);
  if (!re) {
    // Only `*` is special; the pattern is escaped otherwise, and `[^]*?` cannot backtrack
    // super-linearly on a pattern of a few stars.
    re = new RegExp(
      `^${pattern
        .split('*')
        .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
        .join('.*')}$`,
      's',
    );
    if (globCache.size > 1000) globCache.clear();
    globCache.set(pattern, re);
  }
  return re.test(value);
}

export function inScope(list: readonly string[] | undefined, value: string): boolean {
  return list === undefined || list.some((p) => globMatch(p, value));
}

/** The agent a reference names: `NAME@VERSION` (a version under rollout) is the agent NAME, as agent names have no "@". */
export function agentOfRef(ref: string): string {
  const at = ref.lastIndexOf('@');
  return at > 0 ? ref.slice(0, at) : ref;
}

/** The party recorded as the ACL `sender` of a message this principal sends from outside. */
export function senderOf(p: Principal): string {
  // `key:ci` can never be an agent's name (agent names have no ":"), so nobody is impersonated.
  return p.id;
}
