/**
 * What an invoke request must hold before any work starts, against the agent it names: one place
 * for every surface (REST, /v1, MCP, messages), so a bad request is refused in the same words
 * wherever it came from, naming its field.
 */
import type { AgentDefinition } from '../agents/index.js';
import { CaxtonError } from '../shared/errors.js';
import type { InvokeRequest } from './types.js';

/** What the checks need from the executor: the names of the agent's own tools, and whether a default provider exists. */
export interface RequestCheckContext {
  hasDefaultProvider: boolean;
  /** Called only when the request brings tools, acts or a tool_choice. */
  ownToolNames: () => Set<string>;
}

/** Throws the CaxtonError naming the first field of `req` that `def` cannot take. */
export function checkRequest(def: AgentDefinition, req: InvokeRequest, ctx: RequestCheckContext): void {
  if (typeof req.request !== 'string' || req.request.length === 0)
    throw new CaxtonError('invalid_request', '"request" must be a non-empty string', { field: 'request' });
  const size =
    Buffer.byteLength(req.request) +
    (req.context === undefined
      ? 0
      : Buffer.byteLength(typeof req.context === 'string' ? req.context : JSON.stringify(req.context)));
  if (size > def.limits.max_message_size) {
    throw new CaxtonError(
      'payload_too_large',
      `the request is ${size} bytes; agent "${def.name}" accepts at most ${def.limits.max_message_size} (limits.max_message_size)`,
      { size, limit: def.limits.max_message_size },
    );
  }
  if (req.capability !== undefined && !def.capabilities.includes(req.capability as never)) {
    throw new CaxtonError(
      'invalid_request',
      `agent "${def.name}" does not provide capability "${req.capability}"; it provides ${def.capabilities.join(', ')}`,
      { field: 'capability' },
    );
  }
  if (req.chain !== undefined && !(Array.isArray(req.chain) && req.chain.every((a) => typeof a === 'string'))) {
    throw new CaxtonError('invalid_request', '"chain" must be an array of agent names', { field: 'chain' });
  }
  if (req.traceparent !== undefined && typeof req.traceparent !== 'string') {
    throw new CaxtonError('invalid_request', '"traceparent" must be a string', { field: 'traceparent' });
  }
  if (req.principal !== undefined && typeof req.principal !== 'string') {
    throw new CaxtonError('invalid_request', '"principal" must be a string', { field: 'principal' });
  }
  if (req.client_tools !== undefined || req.tool_choice !== undefined || req.acts !== undefined)
    checkClientTools(def, req, ctx.ownToolNames());
  if (def.wasm === undefined && !def.llm.provider && !ctx.hasDefaultProvider) {
    throw new CaxtonError(
      'invalid_config',
      `agent "${def.name}" names no LLM provider and the server has no default: set [llm] default_provider in caxton.toml or llm.provider in the agent`,
    );
  }
}

/**
 * The caller's tools (OpenAI `tools`) must not shadow the agent's own — the model would see two
 * tools of one name, and Caxton could not tell whose a call is — and a named `tool_choice`
 * must name a tool the model is offered.
 */
function checkClientTools(def: AgentDefinition, req: InvokeRequest, own: Set<string>): void {
  for (const act of req.acts ?? []) {
    if (own.has(act.name))
      throw new CaxtonError(
        'configuration_error',
        `agent "${def.name}" has a tool named "${act.name}", the name of the protocol act its model is offered to answer this message; give the tool another name`,
        { agent: def.name, field: 'tools', tool: act.name },
      );
  }
  const client = [...(req.client_tools ?? []), ...(req.acts ?? [])];
  (req.client_tools ?? []).forEach((t, i) => {
    if (own.has(t.name)) {
      throw new CaxtonError(
        'invalid_request',
        `tools[${i}].function.name: "${t.name}" is the name of one of agent "${def.name}"'s own tools; give the client tool another name`,
        { param: `tools[${i}].function.name` },
      );
    }
  });
  const choice = req.tool_choice;
  if (choice === 'required' && own.size === 0 && client.length === 0) {
    throw new CaxtonError(
      'invalid_request',
      `tool_choice: "required" needs a tool, and neither the request (tools) nor agent "${def.name}" has one`,
      { param: 'tool_choice' },
    );
  }
  if (typeof choice === 'object' && !own.has(choice.name) && !client.some((t) => t.name === choice.name)) {
    throw new CaxtonError(
      'invalid_request',
      `tool_choice.function.name: "${choice.name}" is neither in tools nor one of agent "${def.name}"'s own tools`,
      { param: 'tool_choice.function.name' },
    );
  }
}
