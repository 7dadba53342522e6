/**
 * The access matrix: one entry per operation a caller can reach (every route of the live route
 * table, every MCP tool, resource template, prompt and list, and the paths a message takes), each
 * saying how to call it on an in-scope target and on an out-of-scope one, which scope dimension
 * governs it, and what three callers must get:
 *  - `scopedIn`: the scoped principal (SCOPED below) on the in-scope target;
 *  - `scopedOut`: the scoped principal on the out-of-scope target;
 *  - `unscoped`: a principal of the same role without scopes, on the out-of-scope target (so a
 *    refusal above is the scope's doing, not a missing target).
 * test/auth/access-matrix.test.ts enumerates the live surfaces and fails on an operation without an
 * entry here, or an entry for an operation that no longer exists. The WASM tool servers are among
 * them: like the tool tests, it needs them built (`npm run build:tools`, part of `npm run build`).
 *
 * The rules (docs/security.md): R1 a send names in-scope receivers and an in-scope capability, and
 * capability routing picks only in-scope providers; R2 an agent's sends act for the principal that
 * started the work; R3 a message, conversation or event is visible only when every agent it names is
 * in scope, lists are filtered and a single out-of-scope item is 404; `agent:NAME` memory needs NAME
 * in the agents scope; R4 deploys name in-scope agents and capabilities not provided outside the
 * scope; R5 the tools scope.
 */

/** The scope dimension deciding an operation: `role` when only the role's permission does. */
export type Dim = 'agents' | 'capabilities' | 'memory' | 'tools' | 'role';

/** The scopes of the scoped principal (an admin key, so only its scopes refuse). */
export const SCOPED = {
  agents: ['a-*'],
  capabilities: ['alpha*'],
  memory: ['workspace', 'agent:*'],
  tools: [
    'csv_parser.*',
    'calculator',
    'send_message',
    'read_graph',
    'search_nodes',
    'open_nodes',
    'create_entities',
    'create_relations',
    'add_observations',
    'delete_entities',
    'delete_observations',
    'delete_relations',
  ],
} as const;

/** One side's targets; ids made at run time (messages, conversations, responses) come from the test's fixtures. */
export interface Targets {
  agent: string;
  /** An agent the call may delete or replace. */
  spare: string;
  capability: string;
  memory: string;
  server: string;
  tool: string;
  message: string;
  conversation: string;
  response: string;
  /** An execution of `agent` (its record) and its trace. */
  execution: string;
  trace: string;
  /** A durable run of `agent` (a background run, recorded at once). */
  run: string;
}

export interface HttpCall {
  method: string;
  path: string;
  body?: unknown;
  /** Default application/json; TOML bodies are strings. */
  type?: string;
  /** More request headers (A2A's protocol version). */
  headers?: Record<string, string>;
  /** An event stream: read it until `until` appears (after the test's trigger: b-one then a-one invoked), else for a short while. */
  sse?: { until?: string };
}

export type McpCall =
  | { mcp: 'tool'; name: string; args: Record<string, unknown> }
  | { mcp: 'resource'; uri: string }
  | { mcp: 'prompt'; name: string; args: Record<string, string> }
  | { mcp: 'list'; what: 'tools' | 'resources' | 'templates' | 'prompts' };

/** An invocation of the message-relaying agent: its send to another agent is the message path under test. */
export interface RelayCall {
  relay: 'to' | 'capability';
  target: string;
}

/** A call of A2A's gRPC binding (`[a2a] grpc_listen`): the service's method, its request (the tenant names the agent). */
export interface GrpcCall {
  grpc: string;
  request: Record<string, unknown>;
}

export type Call = HttpCall | McpCall | RelayCall | GrpcCall;

/**
 * An HTTP status, or an MCP outcome: `ok` (a result without isError), `refused` (an isError result
 * saying the caller may not), `tool_error` (the tool ran and failed), `rpc <code>` (a JSON-RPC error),
 * `grpc <code>` (a gRPC call's status, 0 for an answer).
 */
export type Outcome = number | 'ok' | 'refused' | 'tool_error' | `rpc ${number}` | `grpc ${number}`;

export interface Expect {
  status: Outcome;
  /** The refusal's details.reason (HTTP 403). */
  reason?: string;
  /** Texts the answer must hold / must not hold. */
  has?: string[];
  lacks?: string[];
}

export interface Entry {
  /** `METHOD /route` as registered, `mcp tool NAME`, `mcp resource TEMPLATE`, `mcp prompt {agent}`, `mcp list WHAT`, `message ...`. */
  op: string;
  dim: Dim;
  /** The call on the targets of one side; `n` is unique per call (names that must not collide). */
  call: (t: Targets, n: string) => Call;
  scopedIn: Expect;
  scopedOut: Expect;
  unscoped: Expect;
  /**
   * Called by operator keys instead of the admin keys (one with SCOPED's agents scope, one
   * without scopes): for what an admin may do whoever owns it, such as reading another's thread.
   */
  peers?: true;
}

const ok = (status: Outcome = 200, more: Omit<Expect, 'status'> = {}): Expect => ({ status, ...more });
const forbidden = (reason: string): Expect => ({ status: 403, reason });
const refused: Expect = { status: 'refused' };
const notFound: Expect = { status: 404 };

const get = (path: string): HttpCall => ({ method: 'GET', path });
const post = (path: string, body: unknown = {}, type?: string): HttpCall => ({
  method: 'POST',
  path,
  body,
  ...(type !== undefined && { type }),
});
/** An A2A HTTP+JSON call, in the protocol version the cards name. */
const a2a = (c: HttpCall): HttpCall => ({ ...c, headers: { 'A2A-Version': '1.0' } });
const agentToml = (name: string, caps: string[] = []) =>
  `name = "${name}"\nsystem_prompt = "x"\ncapabilities = ${JSON.stringify(caps)}\n`;
const entity = (n: string) => ({ entities: [{ name: `M-${n}`, entityType: 't', observations: ['o'] }] });

/** A route decided by its role alone: both principals get `status`. */
function role(
  op: string,
  call: (t: Targets, n: string) => Call,
  status: Outcome,
  more: Omit<Expect, 'status'> = {},
): Entry {
  return { op, dim: 'role', call, scopedIn: ok(status, more), scopedOut: ok(status, more), unscoped: ok(status, more) };
}

/** A single item named by an agent: in scope it answers `status`; out of scope it is refused (or, for reads that must not reveal, 404). */
function agentItem(
  op: string,
  call: (t: Targets, n: string) => Call,
  status: Outcome,
  out: Expect = forbidden('agent_scope'),
  unscoped: Outcome = status,
): Entry {
  return { op, dim: 'agents', call, scopedIn: ok(status), scopedOut: out, unscoped: ok(unscoped) };
}

/** A list filtered by the agents scope: the scoped principal sees a-one and not b-one; the unscoped one sees both. */
function agentList(
  op: string,
  call: (t: Targets, n: string) => Call,
  status: Outcome = 200,
  inName = 'a-one',
  outName = 'b-one',
): Entry {
  return {
    op,
    dim: 'agents',
    call,
    scopedIn: ok(status, { has: [inName], lacks: [outName] }),
    scopedOut: ok(status, { has: [inName], lacks: [outName] }),
    unscoped: ok(status, { has: [inName, outName] }),
  };
}

/** A memory operation on the `scope` query: workspace in, global out. */
function memory(op: string, call: (t: Targets, n: string) => Call, status: Outcome = 200): Entry {
  return { op, dim: 'memory', call, scopedIn: ok(status), scopedOut: forbidden('memory_scope'), unscoped: ok(status) };
}

const q = (t: Targets) => `scope=${encodeURIComponent(t.memory)}`;

export const ROUTES: Entry[] = [
  // Public: probes, the console's files (an empty console folder here: its 503 page) and its
  // sign-on (not configured here).
  role('GET /health', () => get('/health'), 200),
  role('GET /ready', () => get('/ready'), 200),
  role('GET /', () => get('/'), 302),
  role('GET /ui', () => get('/ui'), 503),
  role('GET /ui/*', () => get('/ui/index.html'), 503),
  role('GET /api/v1/auth/sso', () => get('/api/v1/auth/sso'), 200, { has: ['"enabled":false'] }),
  role(
    'POST /api/v1/auth/sso/token',
    () =>
      post('/api/v1/auth/sso/token', {
        code: 'x',
        code_verifier: 'y'.repeat(43),
        redirect_uri: 'http://127.0.0.1:1/ui',
      }),
    404,
  ),
  role('GET /api/v1/openapi.json', () => get('/api/v1/openapi.json'), 200),
  role('GET /api/v1/whoami', () => get('/api/v1/whoami'), 200),

  // Observation: the role decides, except events about agents (R3).
  role('GET /api/v1/status', () => get('/api/v1/status'), 200),
  role('GET /api/v1/status/overview', () => get('/api/v1/status/overview'), 200),
  role('GET /api/v1/stats/history', () => get('/api/v1/stats/history?range=15m'), 200),
  role('GET /api/v1/cluster', () => get('/api/v1/cluster'), 200),
  role('GET /api/v1/config', () => get('/api/v1/config'), 200),
  role('GET /api/v1/logs', () => get('/api/v1/logs'), 200),
  role('GET /api/v1/logs/stream', () => ({ ...get('/api/v1/logs/stream'), sse: {} }), 200),
  role('GET /api/v1/messaging/stats', () => get('/api/v1/messaging/stats'), 200),
  role('GET /api/v1/audit', () => get('/api/v1/audit'), 200),
  agentList('GET /api/v1/events', () => get('/api/v1/events?limit=1000')),
  agentList('GET /api/v1/executions', () => get('/api/v1/executions?limit=1000')),
  agentItem('GET /api/v1/executions/:id', (t) => get(`/api/v1/executions/${t.execution}`), 200, notFound),
  agentItem('GET /api/v1/traces/:id', (t) => get(`/api/v1/traces/${t.trace}`), 200, notFound),
  agentList('GET /api/v1/events/stream', () => ({ ...get('/api/v1/events/stream'), sse: { until: 'a-one' } })),

  // Agents.
  agentList('GET /api/v1/agents', () => get('/api/v1/agents')),
  agentItem('GET /api/v1/agents/:name', (t) => get(`/api/v1/agents/${t.agent}`), 200),
  agentItem('GET /api/v1/agents/:name/source', (t) => get(`/api/v1/agents/${t.spare}/source`), 200),
  agentItem('GET /api/v1/agents/:name/versions', (t) => get(`/api/v1/agents/${t.agent}/versions`), 200),
  agentItem('GET /api/v1/agents/:name/versions/:version', (t) => get(`/api/v1/agents/${t.agent}/versions/1`), 200),
  agentItem('GET /api/v1/agents/:name/diff', (t) => get(`/api/v1/agents/${t.agent}/diff?from=1&to=1`), 200),
  agentItem('GET /api/v1/agents/:name/rollout', (t) => get(`/api/v1/agents/${t.agent}/rollout`), 200),
  agentItem('POST /api/v1/agents/:name/rollback', (t) => post(`/api/v1/agents/${t.agent}/rollback`, {}), 409),
  agentItem('POST /api/v1/agents/:name/promote', (t) => post(`/api/v1/agents/${t.agent}/promote`, {}), 409),
  agentItem(
    'PUT /api/v1/agents/:name',
    (t) => ({ method: 'PUT', path: `/api/v1/agents/${t.spare}`, body: agentToml(t.spare), type: 'application/toml' }),
    200,
  ),
  agentItem('DELETE /api/v1/agents/:name', (t) => ({ method: 'DELETE', path: `/api/v1/agents/${t.spare}` }), 204),
  // R4: the deployed name in scope, each capability in scope and not provided outside the scope.
  agentItem(
    'POST /api/v1/agents',
    (t, n) => post('/api/v1/agents', agentToml(`${t.agent.slice(0, 2)}new-${n}`), 'application/toml'),
    201,
  ),
  role(
    'POST /api/v1/agents/validate',
    (t) => post('/api/v1/agents/validate', agentToml(t.agent), 'application/toml'),
    200,
  ),
  agentList('GET /api/v1/capabilities', () => get('/api/v1/capabilities'), 200, 'alpha', 'beta'),
  agentList('GET /api/v1/directory', () => get('/api/v1/directory')),
  agentList(
    'GET /api/v1/directory/events',
    () => ({ ...get('/api/v1/directory/events'), sse: { until: 'a-evt' } }),
    200,
    'a-evt',
    'b-evt',
  ),

  // Execution.
  agentItem(
    'POST /api/v1/agents/:name/invoke',
    (t) => post(`/api/v1/agents/${t.agent}/invoke`, { request: 'hi' }),
    200,
  ),
  // Durable runs: started as an invoke; read, cancelled and decided on in the agent scope (out of it: 404).
  agentItem('POST /api/v1/agents/:name/runs', (t) => post(`/api/v1/agents/${t.agent}/runs`, { request: 'hi' }), 202),
  agentList('GET /api/v1/runs', () => get('/api/v1/runs?limit=500')),
  agentItem('GET /api/v1/runs/:id', (t) => get(`/api/v1/runs/${t.run}`), 200, notFound),
  agentItem('GET /api/v1/runs/:id/events', (t) => ({ ...get(`/api/v1/runs/${t.run}/events`), sse: {} }), 200, notFound),
  agentItem('POST /api/v1/runs/:id/cancel', (t) => post(`/api/v1/runs/${t.run}/cancel`), 200, notFound),
  // Nothing in the run waits for a person: in scope that is the conflict; out of scope, no such run.
  agentItem('POST /api/v1/runs/:id/approve', (t) => post(`/api/v1/runs/${t.run}/approve`), 409, notFound),
  agentItem('POST /api/v1/runs/:id/deny', (t) => post(`/api/v1/runs/${t.run}/deny`), 409, notFound),
  // Chat threads: the agent scope is the route's; the thread is the admin's, which an admin role reads.
  agentItem('GET /api/v1/agents/:name/threads', (t) => get(`/api/v1/agents/${t.agent}/threads?principal=*`), 200),
  agentItem(
    'GET /api/v1/agents/:name/threads/:id',
    (t) => get(`/api/v1/agents/${t.agent}/threads/thread-${t.agent}`),
    200,
  ),
  agentList('GET /v1/models', () => get('/v1/models')),
  // Out of scope reads as a model that does not exist, in OpenAI's error shape.
  agentItem('GET /v1/models/:model', (t) => get(`/v1/models/${t.agent}`), 200, notFound),
  agentItem(
    'POST /v1/chat/completions',
    (t) => post('/v1/chat/completions', { model: t.agent, messages: [{ role: 'user', content: 'hi' }] }),
    200,
  ),
  agentItem('POST /v1/responses', (t) => post('/v1/responses', { model: t.agent, input: 'hi', store: false }), 200),
  // A stored response is found only by the principal that made it: the out-of-scope one is the unscoped caller's.
  agentItem('GET /v1/responses/:id', (t) => get(`/v1/responses/${t.response}`), 200, notFound),
  // Not a background response: refused in scope; another principal's or out of scope: not found.
  agentItem('POST /v1/responses/:id/cancel', (t) => post(`/v1/responses/${t.response}/cancel`), 400, notFound),
  agentItem(
    'DELETE /v1/responses/:id',
    (t) => ({ method: 'DELETE', path: `/v1/responses/${t.response}` }),
    200,
    notFound,
  ),
  // A2A (docs/a2a.md): an agent's card and its endpoints (both bindings) are the agent's (out of scope:
  // refused by the route); the catalogue lists the agents in scope; a task is a run of the agent.
  agentItem(
    'GET /a2a/:agent/.well-known/agent-card.json',
    (t) => get(`/a2a/${t.agent}/.well-known/agent-card.json`),
    200,
  ),
  agentList('GET /a2a/agents', () => get('/a2a/agents')),
  agentItem(
    'POST /a2a/:agent',
    (t) => post(`/a2a/${t.agent}`, { jsonrpc: '2.0', id: 1, method: 'GetTask', params: { id: t.run } }),
    200,
  ),
  // The HTTP+JSON binding (with the protocol version it speaks): the same policy on every route.
  // Calls that would start, cancel or follow work are sent malformed (400 in scope), and push
  // notifications are off here (400).
  agentItem('POST /a2a/:agent/message::send', (t) => a2a(post(`/a2a/${t.agent}/message:send`, {})), 400),
  agentItem('POST /a2a/:agent/message::stream', (t) => a2a(post(`/a2a/${t.agent}/message:stream`, {})), 400),
  agentItem('GET /a2a/:agent/tasks', (t) => a2a(get(`/a2a/${t.agent}/tasks`)), 200),
  agentItem('GET /a2a/:agent/tasks/:task', (t) => a2a(get(`/a2a/${t.agent}/tasks/${t.run}`)), 200),
  agentItem('POST /a2a/:agent/tasks/:task', (t) => a2a(post(`/a2a/${t.agent}/tasks/${t.run}`)), 400),
  agentItem(
    'POST /a2a/:agent/tasks/:task/pushNotificationConfigs',
    (t) => a2a(post(`/a2a/${t.agent}/tasks/${t.run}/pushNotificationConfigs`, { url: 'https://example.com/hook' })),
    400,
  ),
  agentItem(
    'GET /a2a/:agent/tasks/:task/pushNotificationConfigs',
    (t) => a2a(get(`/a2a/${t.agent}/tasks/${t.run}/pushNotificationConfigs`)),
    400,
  ),
  agentItem(
    'GET /a2a/:agent/tasks/:task/pushNotificationConfigs/:config',
    (t) => a2a(get(`/a2a/${t.agent}/tasks/${t.run}/pushNotificationConfigs/c1`)),
    400,
  ),
  agentItem(
    'DELETE /a2a/:agent/tasks/:task/pushNotificationConfigs/:config',
    (t) => a2a({ method: 'DELETE', path: `/a2a/${t.agent}/tasks/${t.run}/pushNotificationConfigs/c1` }),
    400,
  ),
  agentItem('GET /a2a/:agent/extendedAgentCard', (t) => a2a(get(`/a2a/${t.agent}/extendedAgentCard`)), 200),
  // The MCP endpoint itself; what it offers has entries of its own below.
  role('POST /mcp', () => post('/mcp', { jsonrpc: '2.0', id: 1, method: 'ping' }), 406),
  role('GET /mcp', () => get('/mcp'), 405),
  role('DELETE /mcp', () => ({ method: 'DELETE', path: '/mcp' }), 405),
  role('GET /api/v1/mcp/servers', () => get('/api/v1/mcp/servers'), 200),
  role(
    'POST /api/v1/mcp/servers/:name/login',
    () => post('/api/v1/mcp/servers/none/login', { redirect_uri: 'http://127.0.0.1:1/callback' }),
    404,
  ),
  role(
    'POST /api/v1/mcp/servers/:name/login/callback',
    () => post('/api/v1/mcp/servers/none/login/callback', { code: 'x', state: 'y' }),
    404,
  ),

  // Messaging (R1 sends, R3 reads).
  {
    op: 'POST /api/v1/messages',
    dim: 'agents',
    call: (t) => post('/api/v1/messages', { performative: 'inform', receiver: t.agent, content: 'hi' }),
    scopedIn: ok(202),
    scopedOut: forbidden('agent_scope'),
    unscoped: ok(202),
  },
  agentList('GET /api/v1/messages', () => get('/api/v1/messages?limit=1000'), 200, 'MSG-IN', 'MSG-OUT'),
  agentItem('GET /api/v1/messages/:id', (t) => get(`/api/v1/messages/${t.message}`), 200, notFound),
  agentList('GET /api/v1/conversations', () => get('/api/v1/conversations?limit=1000'), 200, 'CONV-IN', 'CONV-OUT'),
  agentItem('GET /api/v1/conversations/:id', (t) => get(`/api/v1/conversations/${t.conversation}`), 200, notFound),
  agentItem(
    'GET /api/v1/conversations/:id/events',
    (t) => ({ ...get(`/api/v1/conversations/${t.conversation}/events`), sse: {} }),
    200,
    notFound,
  ),
  // Dead letters: the rules give them no scope of their own, so the role decides (replay needs dead_letters:replay).
  role('GET /api/v1/dead-letters', () => get('/api/v1/dead-letters'), 200),
  role('GET /api/v1/dead-letters/:id', () => get('/api/v1/dead-letters/999999'), 404),
  role('POST /api/v1/dead-letters/:id/replay', () => post('/api/v1/dead-letters/999999/replay'), 404),
  // A bulk replay takes only the dead letters the caller may read (the same rule as one replay).
  role(
    'POST /api/v1/dead-letters/replay',
    () => post('/api/v1/dead-letters/replay', { all: true, dry_run: true }),
    200,
  ),
  role(
    'POST /api/v1/dead-letters/discard',
    () => post('/api/v1/dead-letters/discard', { all: true, dry_run: true }),
    200,
  ),
  role('POST /api/v1/dead-letters/purge', () => post('/api/v1/dead-letters/purge', { all: true, dry_run: true }), 200),

  // Tools (R5).
  {
    op: 'GET /api/v1/tools',
    dim: 'tools',
    call: () => get('/api/v1/tools'),
    scopedIn: ok(200, { has: ['csv_parser'] }),
    scopedOut: ok(200, { has: ['csv_parser'] }),
    unscoped: ok(200, { has: ['csv_parser', 'json_query'] }),
  },
  {
    op: 'GET /api/v1/tools/:name',
    dim: 'tools',
    call: (t) => get(`/api/v1/tools/${t.server}`),
    scopedIn: ok(200),
    scopedOut: ok(200),
    unscoped: ok(200),
  },
  role('POST /api/v1/tools', () => post('/api/v1/tools', {}), 400),
  role('DELETE /api/v1/tools/:name', () => ({ method: 'DELETE', path: '/api/v1/tools/none' }), 404),
  role('GET /api/v1/tools/audit', () => get('/api/v1/tools/audit'), 200),
  {
    op: 'POST /api/v1/tools/:server/:tool/call',
    dim: 'tools',
    call: (t) =>
      post(`/api/v1/tools/${t.server}/${t.tool}/call`, {
        args: t.server === 'csv_parser' ? { text: 'a,b\n1,2' } : { json: '{"a":1}', query: 'a' },
      }),
    scopedIn: ok(200),
    scopedOut: forbidden('tool_scope'),
    unscoped: ok(200),
  },

  // Memory (the scope query; R3 for agent:NAME is a red-team case below).
  memory('POST /api/v1/memory/search', (t) => post(`/api/v1/memory/search?${q(t)}`, { query: 'o' })),
  memory('GET /api/v1/memory/entities', (t) => get(`/api/v1/memory/entities?${q(t)}`)),
  memory('GET /api/v1/memory/entities/:name', (t) => get(`/api/v1/memory/entities/E?${q(t)}`)),
  memory('POST /api/v1/memory/entities', (t, n) => post(`/api/v1/memory/entities?${q(t)}`, entity(n)), 201),
  memory(
    'DELETE /api/v1/memory/entities/:name',
    (t, n) => ({ method: 'DELETE', path: `/api/v1/memory/entities/M-${n}?${q(t)}` }),
    404,
  ),
  memory('POST /api/v1/memory/entities/:name/observations', (t) =>
    post(`/api/v1/memory/entities/E/observations?${q(t)}`, { contents: ['more'] }),
  ),
  memory('POST /api/v1/memory/observations/add', (t) =>
    post(`/api/v1/memory/observations/add?${q(t)}`, { observations: [{ entityName: 'E', contents: ['more'] }] }),
  ),
  memory('POST /api/v1/memory/observations/delete', (t) =>
    post(`/api/v1/memory/observations/delete?${q(t)}`, { deletions: [{ entityName: 'E', observations: ['none'] }] }),
  ),
  memory('GET /api/v1/memory/relations', (t) => get(`/api/v1/memory/relations?${q(t)}`)),
  memory(
    'POST /api/v1/memory/relations',
    (t) => post(`/api/v1/memory/relations?${q(t)}`, { relations: [{ from: 'E', to: 'E', relationType: 'self' }] }),
    201,
  ),
  memory('POST /api/v1/memory/relations/delete', (t) =>
    post(`/api/v1/memory/relations/delete?${q(t)}`, { relations: [{ from: 'E', to: 'E', relationType: 'none' }] }),
  ),
  memory('POST /api/v1/memory/entities/delete', (t, n) =>
    post(`/api/v1/memory/entities/delete?${q(t)}`, { entityNames: [`none-${n}`] }),
  ),
  memory('GET /api/v1/memory/export', (t) => get(`/api/v1/memory/export?${q(t)}`)),
  memory('POST /api/v1/memory/import', (t, n) =>
    post(
      `/api/v1/memory/import?${q(t)}`,
      `{"type":"entity","name":"I-${n}","entityType":"t","observations":[]}\n`,
      'application/x-ndjson',
    ),
  ),
  memory('GET /api/v1/memory/stats', (t) => get(`/api/v1/memory/stats?${q(t)}`)),
  memory('GET /api/v1/memory/traverse', (t) => get(`/api/v1/memory/traverse?${q(t)}&from=E`)),

  // API keys: keys:manage is the operator's (the key's own scopes do not narrow it).
  role('GET /api/v1/keys', () => get('/api/v1/keys'), 200),
  role('POST /api/v1/keys', (_t, n) => post('/api/v1/keys', { name: `made-${n}`, role: 'viewer' }), 201),
  role('GET /api/v1/keys/:key', () => get('/api/v1/keys/spare'), 200),
  role('DELETE /api/v1/keys/:key', (_t, n) => ({ method: 'DELETE', path: `/api/v1/keys/none-${n}` }), 404),
  role('POST /api/v1/keys/:key/rotate', (_t, n) => post(`/api/v1/keys/none-${n}/rotate`), 404),
  role('GET /api/v1/signing-keys', () => get('/api/v1/signing-keys'), 200),
  // Not an owner: a caller allowed to rotate gets the 400 naming the owner, and nothing is made.
  role('POST /api/v1/signing-keys/:owner/rotate', () => post('/api/v1/signing-keys/agent:-x/rotate'), 400),
  // Not a public key: a caller allowed to register gets the 400 naming the field, and nothing is made.
  role(
    'POST /api/v1/signing-keys/principals',
    () => post('/api/v1/signing-keys/principals', { principal: 'key:nobody', public_key: 'AAAA' }),
    400,
  ),
];

const ungranted = ok('tool_error', { has: ['not granted to this tool server'] });

/** Tools offered over MCP outside the tools scope; the unscoped caller gets the tool's own answer. */
const OUT_OF_SCOPE_TOOLS: Record<string, { args: Record<string, unknown>; unscoped?: Expect }> = {
  current_time: { args: {} },
  'chart_generator.render': { args: { type: 'bar', labels: ['a'], series: [{ name: 's', values: [1] }] } },
  // Tools whose own grants are not configured here answer so: past the access check, refused by the tool server's grant.
  'filesystem.list': { args: { path: '/data' }, unscoped: ungranted },
  'filesystem.read': { args: { path: '/data/none.txt' }, unscoped: ungranted },
  'filesystem.write': { args: { path: '/data/fs.txt', content: 'x' }, unscoped: ungranted },
  'http_client.get': { args: { url: 'http://127.0.0.1:1/' }, unscoped: ungranted },
  'http_client.request': { args: { method: 'GET', url: 'http://127.0.0.1:1/' }, unscoped: ungranted },
  'json_query.query': { args: { json: '{"a":1}', query: 'a' } },
  'sqlite_query.query': { args: { database: '/db/none.db', sql: 'SELECT 1' }, unscoped: ungranted },
  'sqlite_query.tables': { args: { database: '/db/none.db' }, unscoped: ungranted },
  'todo.write': { args: { todos: [{ content: 'x', status: 'pending', activeForm: 'doing x' }] } },
  // The team tools answer a caller in no team from a list of its own: nothing of another team's is reachable.
  'team.create': { args: { team_name: 'matrix' } },
  'team.delete': { args: {}, unscoped: ok('tool_error', { has: ['No team to delete'] }) },
  'team.task_create': { args: { subject: 's', description: 'd' } },
  'team.task_list': { args: {} },
  'team.task_get': { args: { taskId: '1' }, unscoped: ok('tool_error', { has: ['Task not found'] }) },
  'team.task_update': {
    args: { taskId: '1', status: 'completed' },
    unscoped: ok('tool_error', { has: ['Task not found'] }),
  },
  'web.fetch': { args: { url: 'http://127.0.0.1:1/' }, unscoped: ok('tool_error', { has: ['reaches no host'] }) },
  'web.search': { args: { query: 'x' }, unscoped: ok('tool_error', { has: ['no search backend'] }) },
  'workspace.bash': {
    args: { command: 'true' },
    unscoped: ok('tool_error', { has: ['workspace.bash is not granted'] }),
  },
  'workspace.edit': { args: { file_path: 'seed.txt', old_string: 'alpha', new_string: 'ALPHA' } },
  'workspace.glob': { args: { pattern: '*' } },
  'workspace.grep': { args: { pattern: 'gamma' } },
  'workspace.ls': { args: { path: '.' } },
  'workspace.multi_edit': { args: { file_path: 'seed.txt', edits: [{ old_string: 'beta', new_string: 'BETA' }] } },
  'workspace.read': { args: { file_path: 'seed.txt' } },
  'workspace.write': { args: { file_path: 'w.txt', content: 'x' } },
};

/** The memory tools, in the tools scope: the memory scope decides (workspace in, global out). */
const MEMORY_TOOLS: Record<string, (scope: string, n: string) => Record<string, unknown>> = {
  read_graph: (scope) => ({ scope }),
  search_nodes: (scope) => ({ scope, query: 'o' }),
  open_nodes: (scope) => ({ scope, names: ['E'] }),
  create_entities: (scope, n) => ({ scope, entities: [{ name: `T-${n}`, entityType: 't', observations: ['o'] }] }),
  create_relations: (scope) => ({ scope, relations: [{ from: 'E', to: 'E', relationType: 'mcp-self' }] }),
  add_observations: (scope) => ({ scope, observations: [{ entityName: 'E', contents: ['mcp'] }] }),
  delete_entities: (scope, n) => ({ scope, entityNames: [`none-${n}`] }),
  delete_observations: (scope) => ({ scope, deletions: [{ entityName: 'E', observations: ['none'] }] }),
  delete_relations: (scope) => ({ scope, relations: [{ from: 'E', to: 'E', relationType: 'none' }] }),
};

export const MCP: Entry[] = [
  ...Object.entries(OUT_OF_SCOPE_TOOLS).map(([name, c]): Entry => ({
    op: `mcp tool ${name}`,
    dim: 'tools',
    call: () => ({ mcp: 'tool', name, args: c.args }),
    scopedIn: refused,
    scopedOut: refused,
    unscoped: c.unscoped ?? ok('ok'),
  })),
  {
    op: 'mcp tool calculator',
    dim: 'tools',
    call: () => ({ mcp: 'tool', name: 'calculator', args: { expression: '1+2' } }),
    scopedIn: ok('ok'),
    scopedOut: ok('ok'),
    unscoped: ok('ok'),
  },
  {
    op: 'mcp tool csv_parser.parse',
    dim: 'tools',
    call: () => ({ mcp: 'tool', name: 'csv_parser.parse', args: { text: 'a,b\n1,2' } }),
    scopedIn: ok('ok'),
    scopedOut: ok('ok'),
    unscoped: ok('ok'),
  },
  ...Object.entries(MEMORY_TOOLS).map(([name, args]): Entry => ({
    op: `mcp tool ${name}`,
    dim: 'memory',
    call: (t, n) => ({ mcp: 'tool', name, args: args(t.memory, n) }),
    scopedIn: ok('ok'),
    scopedOut: ok('refused', { has: ['global'] }),
    unscoped: ok('ok'),
  })),
  // R1: a message sent through MCP names in-scope receivers.
  {
    op: 'mcp tool send_message',
    dim: 'agents',
    call: (t) => ({ mcp: 'tool', name: 'send_message', args: { to: t.agent, performative: 'inform', content: 'hi' } }),
    scopedIn: ok('ok'),
    scopedOut: ok('refused', { has: ['b-one'] }),
    unscoped: ok('ok'),
  },
  {
    op: 'mcp tool ask_{agent}',
    dim: 'agents',
    call: (t) => ({ mcp: 'tool', name: `ask_${t.agent}`, args: { request: 'hi' } }),
    scopedIn: ok('ok'),
    // Out of scope answers as a name nothing offers (the red-team case below): it does not tell the agent exists.
    scopedOut: ok('rpc -32602', { has: ['Unknown tool: "ask_b-one" is not offered by this Caxton server'] }),
    unscoped: ok('ok'),
  },
  // Durable runs ([mcp] run_tools): the REST routes' rules (a run out of scope is not found).
  {
    op: 'mcp tool list_waiting_runs',
    dim: 'agents',
    call: () => ({ mcp: 'tool', name: 'list_waiting_runs', args: { limit: 100 } }),
    scopedIn: ok('ok', { has: ['WAIT-IN'], lacks: ['WAIT-OUT'] }),
    scopedOut: ok('ok', { has: ['WAIT-IN'], lacks: ['WAIT-OUT'] }),
    unscoped: ok('ok', { has: ['WAIT-IN', 'WAIT-OUT'] }),
  },
  {
    op: 'mcp tool read_run',
    dim: 'agents',
    call: (t) => ({ mcp: 'tool', name: 'read_run', args: { run_id: t.run } }),
    scopedIn: ok('ok'),
    scopedOut: ok('tool_error', { has: ['no run'] }),
    unscoped: ok('ok'),
  },
  // Nothing in the run waits for a person: in scope that is the conflict; out of scope, no such run.
  ...(['approve_run', 'deny_run'] as const).map((name): Entry => ({
    op: `mcp tool ${name}`,
    dim: 'agents',
    call: (t) => ({ mcp: 'tool', name, args: { run_id: t.run } }),
    scopedIn: ok('tool_error', { has: ['nothing in it waits for approval'] }),
    scopedOut: ok('tool_error', { has: ['no run'] }),
    unscoped: ok('tool_error', { has: ['nothing in it waits for approval'] }),
  })),
  {
    op: 'mcp resource caxton://agents/{name}',
    dim: 'agents',
    call: (t) => ({ mcp: 'resource', uri: `caxton://agents/${t.agent}` }),
    scopedIn: ok('ok'),
    scopedOut: ok('rpc -32002'),
    unscoped: ok('ok'),
  },
  {
    op: 'mcp resource caxton://conversations/{id}',
    dim: 'agents',
    call: (t) => ({ mcp: 'resource', uri: `caxton://conversations/${t.conversation}` }),
    scopedIn: ok('ok'),
    scopedOut: ok('rpc -32002'),
    unscoped: ok('ok'),
  },
  {
    op: 'mcp resource caxton://memory/{scope}/{name}',
    dim: 'memory',
    call: (t) => ({ mcp: 'resource', uri: `caxton://memory/${t.memory}/E` }),
    scopedIn: ok('ok'),
    scopedOut: ok('rpc -32002'),
    unscoped: ok('ok'),
  },
  {
    op: 'mcp prompt {agent}',
    dim: 'agents',
    call: (t) => ({ mcp: 'prompt', name: t.agent, args: { request: 'hi' } }),
    scopedIn: ok('ok'),
    scopedOut: ok('rpc -32602'),
    unscoped: ok('ok'),
  },
  {
    op: 'mcp list tools',
    dim: 'tools',
    call: () => ({ mcp: 'list', what: 'tools' }),
    scopedIn: ok('ok', { has: ['ask_a-one', 'csv_parser.parse'], lacks: ['ask_b-one', 'json_query.query'] }),
    scopedOut: ok('ok', { has: ['ask_a-one'], lacks: ['ask_b-one', 'json_query.query'] }),
    unscoped: ok('ok', { has: ['ask_a-one', 'ask_b-one', 'json_query.query'] }),
  },
  {
    op: 'mcp list resources',
    dim: 'agents',
    call: () => ({ mcp: 'list', what: 'resources' }),
    scopedIn: ok('ok', { has: ['caxton://agents/a-one', 'CONV-IN'], lacks: ['caxton://agents/b-one', 'CONV-OUT'] }),
    scopedOut: ok('ok', { has: ['caxton://agents/a-one', 'CONV-IN'], lacks: ['caxton://agents/b-one', 'CONV-OUT'] }),
    unscoped: ok('ok', { has: ['caxton://agents/a-one', 'caxton://agents/b-one', 'CONV-IN', 'CONV-OUT'] }),
  },
  role('mcp list templates', () => ({ mcp: 'list', what: 'templates' }), 'ok', {
    has: ['caxton://agents/{name}', 'caxton://conversations/{id}', 'caxton://memory/{scope}/{name}'],
  }),
  {
    op: 'mcp list prompts',
    dim: 'agents',
    call: () => ({ mcp: 'list', what: 'prompts' }),
    scopedIn: ok('ok', { has: ['"a-one"'], lacks: ['"b-one"'] }),
    scopedOut: ok('ok', { has: ['"a-one"'], lacks: ['"b-one"'] }),
    unscoped: ok('ok', { has: ['"a-one"', '"b-one"'] }),
  },
];

/** The other way a message travels: an agent's own send_message while it works for a caller (R1 under R2). */
export const MESSAGE_PATHS: Entry[] = [
  {
    op: 'message agent send_message to',
    dim: 'agents',
    call: (t) => ({ relay: 'to', target: t.agent }),
    scopedIn: ok(200, { has: ['sent inform'] }),
    scopedOut: ok(200, { lacks: ['sent inform'] }),
    unscoped: ok(200, { has: ['sent inform'] }),
  },
  {
    op: 'message agent send_message capability',
    dim: 'capabilities',
    call: (t) => ({ relay: 'capability', target: t.capability }),
    scopedIn: ok(200, { has: ['sent inform'] }),
    scopedOut: ok(200, { lacks: ['sent inform'] }),
    unscoped: ok(200, { has: ['sent inform'] }),
  },
];

/**
 * A2A's gRPC binding: one entry per method of `lf.a2a.v1.A2AService`, each refused
 * PERMISSION_DENIED (7) on an agent outside the key's scope, by the same admission as the HTTP
 * routes. In scope: calls that would start or cancel work are sent without their message or on a
 * task that does not exist, and push notifications are off here.
 */
const grpcItem = (method: string, request: (t: Targets) => Record<string, unknown>, code: number): Entry => ({
  op: `grpc ${method}`,
  dim: 'agents',
  call: (t) => ({ grpc: method, request: { tenant: t.agent, ...request(t) } }),
  scopedIn: ok(`grpc ${code}`),
  scopedOut: ok('grpc 7'),
  unscoped: ok(`grpc ${code}`),
});

export const GRPC: Entry[] = [
  grpcItem('SendMessage', () => ({}), 3),
  grpcItem('SendStreamingMessage', () => ({}), 3),
  grpcItem('GetTask', (t) => ({ id: t.run }), 0),
  grpcItem('ListTasks', () => ({ contextId: '', status: 0, pageSize: 10, pageToken: '' }), 0),
  grpcItem('CancelTask', () => ({ id: 'exec_none' }), 5),
  grpcItem('SubscribeToTask', () => ({ id: 'exec_none' }), 5),
  grpcItem('CreateTaskPushNotificationConfig', (t) => ({ taskId: t.run, url: 'https://example.com/hook' }), 9),
  grpcItem('GetTaskPushNotificationConfig', (t) => ({ taskId: t.run, id: 'c1' }), 9),
  grpcItem('ListTaskPushNotificationConfigs', (t) => ({ taskId: t.run, pageSize: 10, pageToken: '' }), 9),
  grpcItem('DeleteTaskPushNotificationConfig', (t) => ({ taskId: t.run, id: 'c1' }), 9),
  grpcItem('GetExtendedAgentCard', () => ({}), 0),
];

/**
 * Attacks that once worked or nearly did, kept as regression cases (the same three callers; the
 * in-scope side is the harmless twin of the attack).
 */
export const RED_TEAM: Entry[] = [
  // A capability inside the capabilities scope whose only provider is outside the agents scope: the
  // same refusal as a direct send to that agent (R1), not a delivery to it.
  {
    op: 'red-team send by capability to an out-of-scope provider',
    dim: 'capabilities',
    call: (t) =>
      post('/api/v1/messages', {
        performative: 'inform',
        capability: t.capability === 'alpha' ? 'alpha' : 'alpha-b',
        content: 'hi',
      }),
    scopedIn: ok(202),
    scopedOut: forbidden('agent_scope'),
    unscoped: ok(202),
  },
  {
    op: 'red-team send to a capability outside the capabilities scope',
    dim: 'capabilities',
    call: (t) => post('/api/v1/messages', { performative: 'inform', capability: t.capability, content: 'hi' }),
    scopedIn: ok(202),
    scopedOut: { status: 403 },
    unscoped: ok(202),
  },
  // Memory of another agent through the agent:* memory scope (R3: NAME must be in the agents scope).
  {
    op: 'red-team export agent:NAME memory of an out-of-scope agent',
    dim: 'memory',
    call: (t) => get(`/api/v1/memory/export?scope=agent:${t.agent}`),
    scopedIn: ok(200),
    scopedOut: forbidden('agent_scope'),
    unscoped: ok(200),
  },
  {
    op: 'red-team MCP read of agent:NAME memory of an out-of-scope agent',
    dim: 'memory',
    call: (t) => ({ mcp: 'resource', uri: `caxton://memory/agent:${t.agent}/E` }),
    scopedIn: ok('ok'),
    scopedOut: ok('rpc -32002'),
    unscoped: ok('ok'),
  },
  // R4: deploying a capability already provided outside the scope takes it over; refused.
  {
    op: 'red-team deploy a capability provided outside the scope',
    dim: 'capabilities',
    call: (t, n) =>
      post(
        '/api/v1/agents',
        agentToml(`a-cap-${n}`, [t.capability === 'alpha' ? 'alpha-new' : 'alpha-b']),
        'application/toml',
      ),
    scopedIn: ok(201),
    // The provider (b-two) is outside the scope: the refusal does not name it.
    scopedOut: { ...forbidden('capability_taken'), lacks: ['b-two'] },
    unscoped: ok(201),
  },
  // A chat turn's record is as private as its thread (`thread-NAME`, the admin's): an operator with
  // the same agent scope lists its own thread's executions (`own-NAME`), never another's, and an
  // execution of another's thread is not found.
  {
    op: 'executions filtered by thread ownership',
    dim: 'agents',
    peers: true,
    call: (t) => get(`/api/v1/executions?agent=${t.agent}&limit=1000`),
    scopedIn: ok(200, { has: ['"own-a-one"'], lacks: ['"thread-a-one"'] }),
    scopedOut: ok(200, { lacks: ['"thread-b-one"', '"own-b-one"'] }),
    unscoped: ok(200, { has: ['"own-b-one"'], lacks: ['"thread-b-one"'] }),
  },
  {
    op: "execution of another principal's thread",
    dim: 'agents',
    peers: true,
    call: (t) => get(`/api/v1/executions/${t.execution}`),
    scopedIn: notFound,
    scopedOut: notFound,
    unscoped: notFound,
  },
  // The trace of another's thread turn: neither its execution nor the spans of that execution
  // (their ids, the conversation they name) reach an operator, in scope or not.
  {
    op: "trace of another principal's thread",
    dim: 'agents',
    peers: true,
    call: (t) => get(`/api/v1/traces/${t.trace}`),
    scopedIn: { ...notFound, lacks: ['"thread-a-one"'] },
    scopedOut: { ...notFound, lacks: ['"thread-b-one"'] },
    unscoped: { ...notFound, lacks: ['"thread-b-one"'] },
  },
  // Asking an agent that does not exist: the same answer as asking one out of scope (above).
  {
    op: 'red-team MCP ask of an agent that does not exist',
    dim: 'agents',
    call: (t) => ({ mcp: 'tool', name: `ask_${t.agent}-none`, args: { request: 'hi' } }),
    scopedIn: ok('rpc -32602', { has: ['Unknown tool: "ask_a-one-none" is not offered by this Caxton server'] }),
    scopedOut: ok('rpc -32602', { has: ['Unknown tool: "ask_b-one-none" is not offered by this Caxton server'] }),
    unscoped: ok('rpc -32602', { has: ['Unknown tool: "ask_b-one-none" is not offered by this Caxton server'] }),
  },
  // A version suffix names the same agent: `b-one@1` is b-one.
  agentItem(
    'red-team versioned model name',
    (t) => post('/v1/chat/completions', { model: `${t.agent}@1`, messages: [{ role: 'user', content: 'hi' }] }),
    200,
  ),
];

/**
 * Cases that fail until another change lands, `op|caller` → why (the rule). The test skips them
 * with the reason printed, and fails when one passes (so the entry is removed once it does).
 */
export const PENDING: Record<string, string> = {};
