import type { FastifyReply, FastifyRequest } from 'fastify';

/**
 * The MCP tools that decide on a run's approval (src/mcp/run-tools.ts) and the audit action each
 * is recorded as: the same as the REST route's (POST /api/v1/runs/{id}/approve, /deny).
 */
export const RUN_DECISION_TOOLS: Readonly<Record<string, 'run.approve' | 'run.deny'>> = {
  approve_run: 'run.approve',
  deny_run: 'run.deny',
};

/**
 * Which action each state-changing route records, keyed by `METHOD route-url` exactly as the route
 * is registered (`req.routeOptions.url`). Every POST, PUT, PATCH and DELETE route under /api/v1,
 * /v1 and /mcp needs an entry (test/audit/routes.test.ts walks the route table of a started server
 * and fails on one without): an action, or `null` for a route that changes nothing although its
 * method says otherwise (a validation, a search). A state-changing route missing here is still
 * recorded, as `http.request` with `details.unmapped`, so nothing goes unrecorded meanwhile.
 *
 * Targets are read from the route's parameters, its query, a header of the reply (Location), or
 * one named short field of a parsed JSON body — never the body itself.
 */
export interface AuditRoute {
  action: string;
  /** What the request acted on, when known. */
  target?: (req: FastifyRequest, reply: FastifyReply) => string | undefined;
  /** Constant details (an API flavour). */
  details?: Record<string, string>;
  /**
   * For a route whose action depends on the request (POST /mcp: only `tools/call` changes
   * anything): the entries to record, none to record nothing. A denied request is recorded as
   * `action` whatever this says (its body was never read).
   */
  expand?: (req: FastifyRequest) => { action: string; target?: string }[];
}

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** POST/PUT/PATCH/DELETE under /api/v1, /v1, /mcp and /a2a: the requests the audit trail records. */
export function isStateChanging(method: string, url: string): boolean {
  return (
    STATE_CHANGING.has(method) &&
    (url.startsWith('/api/v1/') ||
      url.startsWith('/v1/') ||
      url === '/mcp' ||
      url.startsWith('/mcp/') ||
      url.startsWith('/a2a/'))
  );
}

const MAX_FIELD = 200;

const param = (name: string) => (req: FastifyRequest) => {
  const v = (req.params as Record<string, unknown> | undefined)?.[name];
  return typeof v === 'string' || typeof v === 'number' ? String(v) : undefined;
};

/** A short string field of a parsed JSON body (never the body). */
function bodyField(req: FastifyRequest, name: string): string | undefined {
  const b = req.body;
  if (typeof b !== 'object' || b === null || Array.isArray(b) || Buffer.isBuffer(b)) return undefined;
  const v = (b as Record<string, unknown>)[name];
  return typeof v === 'string' && v.length <= MAX_FIELD ? v : undefined;
}

/** The last segment of the Location header a create answered with (`/api/v1/agents/NAME`). */
const location = (_req: FastifyRequest, reply: FastifyReply) => {
  const loc = reply.getHeader('location');
  if (typeof loc !== 'string') return undefined;
  try {
    return decodeURIComponent(loc.slice(loc.lastIndexOf('/') + 1)) || undefined;
  } catch {
    return undefined;
  }
};

/** A memory write's scope: `?scope=`, else the body's `scope`, else the default (`workspace`). */
const memoryScope = (req: FastifyRequest) => {
  const q = (req.query as Record<string, unknown> | undefined)?.scope;
  if (typeof q === 'string' && q.length <= MAX_FIELD) return q;
  return bodyField(req, 'scope') ?? 'workspace';
};

/** `memory.import` without a scope keeps each record's own scope. */
const importScope = (req: FastifyRequest) => {
  const q = (req.query as Record<string, unknown> | undefined)?.scope;
  return typeof q === 'string' && q.length <= MAX_FIELD ? q : undefined;
};

/**
 * The `tools/call` requests of an MCP JSON-RPC message (or batch): the only ones that change
 * anything. A decision on a run's approval is recorded as the REST route records it (`run.approve`,
 * `run.deny`, the run as target).
 */
function mcpToolCalls(req: FastifyRequest): { action: string; target?: string }[] {
  const msgs = Array.isArray(req.body) ? (req.body as unknown[]) : [req.body];
  const out: { action: string; target?: string }[] = [];
  for (const m of msgs.slice(0, 100)) {
    if (typeof m !== 'object' || m === null || (m as { method?: unknown }).method !== 'tools/call') continue;
    const params = (m as { params?: { name?: unknown; arguments?: unknown } }).params ?? {};
    const name = params.name;
    const decision =
      typeof name === 'string' && Object.hasOwn(RUN_DECISION_TOOLS, name) ? RUN_DECISION_TOOLS[name] : undefined;
    if (decision !== undefined) {
      const run = (params.arguments as { run_id?: unknown } | undefined)?.run_id;
      out.push({ action: decision, ...(typeof run === 'string' && run.length <= MAX_FIELD && { target: run }) });
      continue;
    }
    out.push({
      action: 'mcp.tool_call',
      ...(typeof name === 'string' && name.length <= MAX_FIELD && { target: name }),
    });
  }
  return out;
}

/**
 * An A2A JSON-RPC call (POST /a2a/{agent}): `a2a.<method>` (a2a.SendMessage, a2a.GetTask...), with
 * the agent and, when the call names one, the task as target; every call is recorded, reads too.
 */
function a2aCall(req: FastifyRequest): { action: string; target?: string }[] {
  const b = req.body;
  const method = typeof b === 'object' && b !== null ? (b as { method?: unknown }).method : undefined;
  const name = typeof method === 'string' && /^[A-Za-z]{1,64}$/.test(method) ? method : 'invalid';
  const params = (b as { params?: { id?: unknown; taskId?: unknown; message?: { taskId?: unknown } } } | null)?.params;
  // A push notification config names its task as taskId (its own id is the config's).
  const task = params?.taskId ?? params?.id ?? params?.message?.taskId;
  const agent = param('agent')(req);
  const target = typeof task === 'string' && task !== '' && task.length <= MAX_FIELD ? `${agent ?? ''}/${task}` : agent;
  return [{ action: `a2a.${name}`, ...(target !== undefined && { target }) }];
}

/**
 * An A2A HTTP+JSON call (/a2a/{agent}/message:send, /tasks/{id}...): recorded as the same method as
 * over JSON-RPC, with the agent (and the task it names) as target; a task path's verb (`ID:cancel`,
 * `ID:subscribe`) names the method, one it does not know is `a2a.invalid`.
 */
function a2aRest(method: string, verbs: Record<string, string> = {}): AuditRoute {
  const split = (req: FastifyRequest): { task?: string; verb: string } => {
    const seg = param('task')(req);
    if (seg === undefined) return { verb: '' };
    const at = seg.lastIndexOf(':');
    return at < 0 ? { task: seg, verb: '' } : { task: seg.slice(0, at), verb: seg.slice(at + 1) };
  };
  const target = (req: FastifyRequest): string | undefined => {
    const agent = param('agent')(req);
    const { task } = split(req);
    return task !== undefined && task !== '' && task.length <= MAX_FIELD ? `${agent ?? ''}/${task}` : agent;
  };
  return {
    action: `a2a.${method}`,
    target,
    expand: (req) => {
      const t = target(req);
      const verb = split(req).verb;
      const name = verb === '' ? (verbs[''] ?? method) : (verbs[verb] ?? 'invalid');
      return [{ action: `a2a.${name}`, ...(t !== undefined && { target: t }) }];
    },
  };
}

export const AUDIT_ROUTES: Readonly<Record<string, AuditRoute | null>> = {
  'POST /a2a/:agent': { action: 'a2a.call', target: param('agent'), expand: a2aCall },
  'POST /a2a/:agent/message::send': a2aRest('SendMessage'),
  'POST /a2a/:agent/message::stream': a2aRest('SendStreamingMessage'),
  'GET /a2a/:agent/tasks': a2aRest('ListTasks'),
  'GET /a2a/:agent/tasks/:task': a2aRest('GetTask', { subscribe: 'SubscribeToTask' }),
  'POST /a2a/:agent/tasks/:task': a2aRest('CancelTask', {
    '': 'invalid',
    cancel: 'CancelTask',
    subscribe: 'SubscribeToTask',
  }),
  'POST /a2a/:agent/tasks/:task/pushNotificationConfigs': a2aRest('CreateTaskPushNotificationConfig'),
  'GET /a2a/:agent/tasks/:task/pushNotificationConfigs': a2aRest('ListTaskPushNotificationConfigs'),
  'GET /a2a/:agent/tasks/:task/pushNotificationConfigs/:config': a2aRest('GetTaskPushNotificationConfig'),
  'DELETE /a2a/:agent/tasks/:task/pushNotificationConfigs/:config': a2aRest('DeleteTaskPushNotificationConfig'),
  'GET /a2a/:agent/extendedAgentCard': a2aRest('GetExtendedAgentCard'),
  // Agents
  'POST /api/v1/agents': { action: 'agent.deploy', target: location },
  'POST /api/v1/agents/validate': null, // checks a definition, deploys nothing
  'POST /api/v1/auth/sso/token': null, // the console's sign-in: nothing changes here, and what the token then does is audited with its principal
  'PUT /api/v1/agents/:name': { action: 'agent.update', target: param('name') },
  'DELETE /api/v1/agents/:name': { action: 'agent.remove', target: param('name') },
  // Versions and rollouts: each changes which definition runs.
  'POST /api/v1/agents/:name/rollback': { action: 'agent.rollback', target: param('name') },
  'POST /api/v1/agents/:name/promote': { action: 'agent.promote', target: param('name') },
  // Executions (they spend the operator's LLM budget)
  'POST /api/v1/agents/:name/invoke': { action: 'agent.invoke', target: param('name') },
  // Durable runs: starting one spends the budget as an invoke; a decision on an approval is who let a call run.
  'POST /api/v1/agents/:name/runs': { action: 'agent.run', target: param('name') },
  'POST /api/v1/runs/:id/cancel': { action: 'run.cancel', target: param('id') },
  'POST /api/v1/runs/:id/approve': { action: 'run.approve', target: param('id') },
  'POST /api/v1/runs/:id/deny': { action: 'run.deny', target: param('id') },
  'POST /v1/chat/completions': {
    action: 'agent.invoke',
    target: (req) => bodyField(req, 'model'),
    details: { api: 'openai' },
  },
  'POST /v1/responses': {
    action: 'agent.invoke',
    target: (req) => bodyField(req, 'model'),
    details: { api: 'openai-responses' },
  },
  // A stored response holds the conversation's text: deleting it is worth a row.
  'DELETE /v1/responses/:id': { action: 'response.delete', target: param('id') },
  'POST /v1/responses/:id/cancel': { action: 'response.cancel', target: param('id') },
  // Messaging. The route marks a send as another party `message.send_as` (annotateAudit).
  'POST /api/v1/messages': { action: 'message.send', target: location },
  'POST /api/v1/dead-letters/:id/replay': { action: 'dead_letter.replay', target: param('id') },
  // A dry run changes nothing but is recorded too: the same route, the same permission.
  'POST /api/v1/dead-letters/replay': {
    action: 'dead_letter.replay_bulk',
    target: (req) => bodyField(req, 'receiver'),
  },
  'POST /api/v1/dead-letters/discard': {
    action: 'dead_letter.discard_bulk',
    target: (req) => bodyField(req, 'receiver'),
  },
  'POST /api/v1/dead-letters/purge': {
    action: 'dead_letter.purge_bulk',
    target: (req) => bodyField(req, 'receiver'),
  },
  // Memory
  'POST /api/v1/memory/entities': { action: 'memory.write', target: memoryScope, details: { op: 'create_entities' } },
  'DELETE /api/v1/memory/entities/:name': {
    action: 'memory.delete',
    target: memoryScope,
    details: { op: 'delete_entities' },
  },
  'POST /api/v1/memory/entities/delete': {
    action: 'memory.delete',
    target: memoryScope,
    details: { op: 'delete_entities' },
  },
  'POST /api/v1/memory/entities/:name/observations': {
    action: 'memory.write',
    target: memoryScope,
    details: { op: 'add_observations' },
  },
  'POST /api/v1/memory/observations/add': {
    action: 'memory.write',
    target: memoryScope,
    details: { op: 'add_observations' },
  },
  'POST /api/v1/memory/observations/delete': {
    action: 'memory.delete',
    target: memoryScope,
    details: { op: 'delete_observations' },
  },
  'POST /api/v1/memory/relations': { action: 'memory.write', target: memoryScope, details: { op: 'create_relations' } },
  'POST /api/v1/memory/relations/delete': {
    action: 'memory.delete',
    target: memoryScope,
    details: { op: 'delete_relations' },
  },
  'POST /api/v1/memory/import': { action: 'memory.import', target: importScope },
  'POST /api/v1/memory/search': null, // a read with a body
  // Tool servers
  'POST /api/v1/tools': { action: 'tool.deploy', target: location },
  'DELETE /api/v1/tools/:name': { action: 'tool.remove', target: param('name') },
  'POST /api/v1/tools/:server/:tool/call': {
    action: 'tool.call',
    target: (req) => `${param('server')(req) ?? ''}.${param('tool')(req) ?? ''}`,
  },
  // MCP: one row per tools/call (initialize, tools/list... change nothing)
  'POST /mcp': { action: 'mcp.request', expand: mcpToolCalls },
  'DELETE /mcp': null, // stateless endpoint: always 405
  // OAuth login of a mounted MCP server (caxton mcp login): who authorized Caxton where; the code is not recorded
  'POST /api/v1/mcp/servers/:name/login': { action: 'mcp.login', target: param('name') },
  'POST /api/v1/mcp/servers/:name/login/callback': { action: 'mcp.login_complete', target: param('name') },
  // Reads worth recording: the configuration (secrets redacted, but it maps the deployment)
  'GET /api/v1/config': { action: 'config.read' },
  // API keys (the secret is in the answer, never in the row)
  'POST /api/v1/keys': { action: 'key.create', target: (req) => bodyField(req, 'name') },
  'DELETE /api/v1/keys/:key': { action: 'key.revoke', target: param('key') },
  'POST /api/v1/keys/:key/rotate': { action: 'key.rotate', target: param('key') },
  'POST /api/v1/signing-keys/:owner/rotate': { action: 'signing_key.rotate', target: param('owner') },
  'POST /api/v1/signing-keys/principals': {
    action: 'signing_key.register',
    target: (req) => bodyField(req, 'principal'),
  },
};

/** The known action names (for `caxton audit --action` help and the docs). */
export const AUDIT_ACTIONS: readonly string[] = [
  ...new Set([
    ...Object.values(AUDIT_ROUTES).flatMap((r) => (r ? [r.action] : [])),
    'mcp.tool_call',
    // An A2A call is recorded as its method, by either binding (a2aCall, a2aRest).
    ...[
      'SendMessage',
      'SendStreamingMessage',
      'GetTask',
      'ListTasks',
      'CancelTask',
      'SubscribeToTask',
      'GetExtendedAgentCard',
      'CreateTaskPushNotificationConfig',
      'GetTaskPushNotificationConfig',
      'ListTaskPushNotificationConfigs',
      'DeleteTaskPushNotificationConfig',
    ].map((m) => `a2a.${m}`),
    'message.send_as',
    'message.signature_invalid',
    'message.replay_refused',
    'conversation.participant_failed',
    'key.create',
    'key.revoke',
    'key.rotate',
    'auth.anonymous_refusals',
    'http.request',
  ]),
].sort();

/**
 * The actions whose target names an agent, and what comes before the name in it: an agent
 * reader's scope hides the rows about agents outside it (AuditStore.query). MCP's `ask_<agent>`
 * tools name their agent; its other tools do not.
 */
export const AGENT_TARGETS: readonly { action: string; prefix: string }[] = [
  ...AUDIT_ACTIONS.filter((a) => a.startsWith('agent.')).map((action) => ({ action, prefix: '' })),
  { action: 'mcp.tool_call', prefix: 'ask_' },
];
