/**
 * What a principal may do: permissions, and the roles that bundle them (docs/security.md).
 * One table: the route policies (route-policies.ts), the CLI's `caxton key` help and the docs are
 * all read from it.
 */

export const PERMISSIONS = [
  'agents:read', // list, show, validate agents; capabilities; the directory
  'agents:write', // deploy, update, remove agents
  'agents:invoke', // run an agent: invoke, /v1/chat/completions, MCP ask_*
  'messages:send', // POST /api/v1/messages (as itself)
  'messages:read', // messages, conversations, dead letters
  'dead_letters:replay', // replay or discard dead letters
  'memory:read', // search and read the knowledge graph
  'memory:write', // create, change, delete, import memory
  'tools:read', // list tool servers, their tools and the tool audit
  'tools:write', // deploy and remove tool servers
  'tools:call', // call host tools directly (MCP tools/call of a host tool)
  'observe:read', // status, logs, events, metrics
  'config:read', // the effective configuration (secrets redacted)
  'audit:read', // the audit trail
  'keys:manage', // create, list, revoke, rotate API keys
  'mcp:authorize', // log in to a mounted MCP server with OAuth (caxton mcp login): admin only
  'impersonate', // send messages as another party (system integrations; audited)
] as const;

export type Permission = (typeof PERMISSIONS)[number];

/**
 * What a durable run asks of its caller, on every surface (REST, its event stream, MCP): reading
 * one is observing; deciding on a call it waits on lets the call run on the agent's behalf, as
 * invoking it. The agent scope applies besides (src/execution/runs/run-access.ts).
 */
export const RUN_PERMISSIONS = { read: 'observe:read', decide: 'agents:invoke' } as const satisfies Record<
  string,
  Permission
>;

export const ROLES = ['admin', 'operator', 'developer', 'invoker', 'viewer'] as const;
export type Role = (typeof ROLES)[number];

const VIEWER: readonly Permission[] = ['agents:read', 'messages:read', 'memory:read', 'tools:read', 'observe:read'];
const INVOKER: readonly Permission[] = [
  'agents:read',
  'agents:invoke',
  'messages:send',
  'messages:read',
  'memory:read',
];
const DEVELOPER: readonly Permission[] = [
  ...new Set([...VIEWER, ...INVOKER, 'agents:write', 'memory:write', 'tools:call'] as Permission[]),
];
const OPERATOR: readonly Permission[] = [
  ...DEVELOPER,
  'tools:write',
  'dead_letters:replay',
  'config:read',
  'audit:read',
];

/** Role → its permissions. Each role is documented in docs/security.md. */
export const ROLE_PERMISSIONS: Readonly<Record<Role, ReadonlySet<Permission>>> = {
  /** Everything, including API keys and impersonation. */
  admin: new Set(PERMISSIONS),
  /** Runs the server: everything but keys and impersonation. */
  operator: new Set(OPERATOR),
  /** Builds agents: deploys agents, writes memory, calls tools; no tool deploys, keys, config or audit. */
  developer: new Set(DEVELOPER),
  /** A service that uses agents: reads them, runs them, sends them messages. */
  invoker: new Set(INVOKER),
  /** Reads everything but configuration and the audit trail; changes nothing. */
  viewer: new Set(VIEWER),
};

export const ROLE_SUMMARY: Readonly<Record<Role, string>> = {
  admin: 'everything, including API keys and sending as another party',
  operator: 'runs the server: agents, tools, dead letters, configuration and audit; no keys',
  developer: 'deploys agents, writes memory, calls tools; no tool deploys, configuration or audit',
  invoker: 'a service using agents: reads, runs and messages them',
  viewer: 'reads agents, messages, memory, tools and status; changes nothing',
};

export function isRole(s: string): s is Role {
  return (ROLES as readonly string[]).includes(s);
}
