import type { Access } from './route-access.js';
import { RUN_PERMISSIONS, type Permission } from './permissions.js';

/**
 * The access policy of every route, keyed `METHOD url` as fastify registers it (HEAD routes take
 * their GET's). One table so a review sees every route's policy at once; a route may instead
 * carry `config.access` itself (plugins added later do). A route with neither is refused when it
 * is registered, and test/auth/route-policies.test.ts walks the route table.
 */
const P = (permission: Permission, agentParam?: string): Access => ({
  permission,
  ...(agentParam !== undefined && { agentParam }),
});

export const ROUTE_POLICIES: Readonly<Record<string, Access>> = {
  // Probes: load balancers and orchestrators call them without credentials.
  'GET /health': { public: true },
  'GET /ready': { public: true },
  // CORS preflights carry no credentials by design (only registered when CORS is configured).
  'OPTIONS *': { public: true },
  // The web console's files (src/api/routes/console-routes.ts, ADR 0042): they hold no data; the page
  // asks the API for everything with the caller's own credential.
  'GET /': { public: true }, // a redirect to /ui
  'GET /ui': { public: true },
  'GET /ui/*': { public: true },

  'GET /api/v1/openapi.json': { authenticated: true },
  'GET /api/v1/whoami': { authenticated: true },
  // The console's single sign-on runs before any credential exists (src/auth/sso.ts bounds it).
  'GET /api/v1/auth/sso': { public: true },
  'POST /api/v1/auth/sso/token': { public: true },
  'GET /api/v1/status': P('observe:read'),
  'GET /api/v1/status/overview': P('observe:read'),
  'GET /api/v1/stats/history': P('observe:read'),
  'GET /api/v1/cluster': P('observe:read'),
  'GET /api/v1/config': P('config:read'),
  'GET /api/v1/logs': P('observe:read'),
  'GET /api/v1/logs/stream': P('observe:read'),
  'GET /api/v1/events': P('observe:read'),
  'GET /api/v1/events/stream': P('observe:read'),
  'GET /api/v1/executions': P('observe:read'),
  'GET /api/v1/executions/:id': P('observe:read'),
  'GET /api/v1/traces/:id': P('observe:read'),

  // Agents
  'GET /api/v1/agents': P('agents:read'),
  'GET /api/v1/agents/:name': P('agents:read', 'name'),
  'GET /api/v1/agents/:name/source': P('agents:read', 'name'),
  'POST /api/v1/agents': P('agents:write'),
  'POST /api/v1/agents/validate': P('agents:read'),
  'PUT /api/v1/agents/:name': P('agents:write', 'name'),
  'DELETE /api/v1/agents/:name': P('agents:write', 'name'),
  'GET /api/v1/agents/:name/versions': P('agents:read', 'name'),
  'GET /api/v1/agents/:name/versions/:version': P('agents:read', 'name'),
  'GET /api/v1/agents/:name/diff': P('agents:read', 'name'),
  'POST /api/v1/agents/:name/rollback': P('agents:write', 'name'),
  'POST /api/v1/agents/:name/promote': P('agents:write', 'name'),
  'GET /api/v1/agents/:name/rollout': P('agents:read', 'name'),
  'GET /api/v1/capabilities': P('agents:read'),
  'GET /api/v1/directory': P('agents:read'),
  'GET /api/v1/directory/events': P('agents:read'),

  // Execution
  'POST /api/v1/agents/:name/invoke': P('agents:invoke', 'name'),
  // Durable runs: starting one is an invoke; reading them is observing (each filtered by the key's
  // agent scope in the handler); cancelling needs invoke, on an agent in the scope.
  'POST /api/v1/agents/:name/runs': P('agents:invoke', 'name'),
  'GET /api/v1/runs': P(RUN_PERMISSIONS.read),
  'GET /api/v1/runs/:id': P(RUN_PERMISSIONS.read),
  'GET /api/v1/runs/:id/events': P(RUN_PERMISSIONS.read),
  'POST /api/v1/runs/:id/cancel': P('agents:invoke'),
  // A decision lets a call run (or not) on the agent's behalf: as invoking it, on an agent in the
  // scope (the same rule as MCP's approve_run, src/execution/runs/run-access.ts).
  'POST /api/v1/runs/:id/approve': P(RUN_PERMISSIONS.decide),
  'POST /api/v1/runs/:id/deny': P(RUN_PERMISSIONS.decide),
  // Chat threads: whoever may chat with the agent reads them; whose threads is ChatThreads' rule (src/execution/thread-access.ts).
  'GET /api/v1/agents/:name/threads': P('agents:invoke', 'name'),
  'GET /api/v1/agents/:name/threads/:id': P('agents:invoke', 'name'),
  'GET /v1/models': P('agents:read'),
  // Not checked against the agent scope here: an agent outside it answers 404, as a missing model (src/api/openai/chat-completions.ts).
  'GET /v1/models/:model': P('agents:read'),
  'POST /v1/chat/completions': P('agents:invoke'),
  // The agent scope is checked by the handlers (the body's model; a stored response's agent), as
  // for chat completions; a stored response is only found by the principal that created it.
  'POST /v1/responses': P('agents:invoke'),
  'GET /v1/responses/:id': P('agents:invoke'),
  'DELETE /v1/responses/:id': P('agents:invoke'),
  'POST /v1/responses/:id/cancel': P('agents:invoke'),
  'POST /mcp': P('agents:invoke'),
  'GET /mcp': P('agents:invoke'),
  'DELETE /mcp': P('agents:invoke'),
  'GET /api/v1/mcp/servers': P('tools:read'),
  // OAuth login of a mounted MCP server: the tokens let Caxton act with that server's authority.
  'POST /api/v1/mcp/servers/:name/login': P('mcp:authorize'),
  'POST /api/v1/mcp/servers/:name/login/callback': P('mcp:authorize'),

  // Messaging
  'POST /api/v1/messages': P('messages:send'),
  'GET /api/v1/messages': P('messages:read'),
  'GET /api/v1/messages/:id': P('messages:read'),
  'GET /api/v1/conversations': P('messages:read'),
  'GET /api/v1/conversations/:id': P('messages:read'),
  'GET /api/v1/conversations/:id/events': P('messages:read'),
  'GET /api/v1/messaging/stats': P('observe:read'),
  'GET /api/v1/dead-letters': P('messages:read'),
  'GET /api/v1/dead-letters/:id': P('messages:read'),
  'POST /api/v1/dead-letters/:id/replay': P('dead_letters:replay'),
  'POST /api/v1/dead-letters/replay': P('dead_letters:replay'),
  'POST /api/v1/dead-letters/discard': P('dead_letters:replay'),
  'POST /api/v1/dead-letters/purge': P('dead_letters:replay'),

  // Tools
  'GET /api/v1/tools': P('tools:read'),
  'GET /api/v1/tools/:name': P('tools:read'),
  'POST /api/v1/tools': P('tools:write'),
  'DELETE /api/v1/tools/:name': P('tools:write'),
  'GET /api/v1/tools/audit': P('tools:read'),
  'POST /api/v1/tools/:server/:tool/call': { permission: 'tools:call', toolParams: ['server', 'tool'] },

  // Memory
  'POST /api/v1/memory/search': P('memory:read'),
  'GET /api/v1/memory/entities': P('memory:read'),
  'GET /api/v1/memory/entities/:name': P('memory:read'),
  'POST /api/v1/memory/entities': P('memory:write'),
  'DELETE /api/v1/memory/entities/:name': P('memory:write'),
  'POST /api/v1/memory/entities/:name/observations': P('memory:write'),
  'POST /api/v1/memory/observations/add': P('memory:write'),
  'POST /api/v1/memory/observations/delete': P('memory:write'),
  'GET /api/v1/memory/relations': P('memory:read'),
  'POST /api/v1/memory/relations': P('memory:write'),
  'POST /api/v1/memory/relations/delete': P('memory:write'),
  'POST /api/v1/memory/entities/delete': P('memory:write'),
  'GET /api/v1/memory/export': P('memory:read'),
  'POST /api/v1/memory/import': P('memory:write'),
  'GET /api/v1/memory/stats': P('memory:read'),
  'GET /api/v1/memory/traverse': P('memory:read'),

  // API keys
  'GET /api/v1/keys': P('keys:manage'),
  'POST /api/v1/keys': P('keys:manage'),
  'GET /api/v1/keys/:key': P('keys:manage'),
  'DELETE /api/v1/keys/:key': P('keys:manage'),
  'POST /api/v1/keys/:key/rotate': P('keys:manage'),
  // Message signing keys: public halves, and rotation on this node (ADR 0059)
  'GET /api/v1/signing-keys': P('keys:manage'),
  'POST /api/v1/signing-keys/:owner/rotate': P('keys:manage'),
  // A caller's own public key, so the messages it signs are taken as its (ADR 0115)
  'POST /api/v1/signing-keys/principals': P('keys:manage'),
};

/** The policy of a route: its own `config.access`, else the table's (HEAD as GET). */
export function policyFor(method: string, url: string, own: Access | undefined): Access | undefined {
  return own ?? ROUTE_POLICIES[`${method === 'HEAD' ? 'GET' : method} ${url}`];
}
