/**
 * Agents as MCP prompts (`prompts/list`, `prompts/get`): a client's own model can take on a
 * Caxton agent's role. The prompt is named after the agent; its arguments are `request` (required)
 * and the agent's declared `[parameters]` (optional, the declared value is the default).
 *
 * MCP prompt messages have no system role, so the agent's system prompt comes first as a user
 * message of its own, then the agent's user prompt template rendered with the arguments (the same
 * renderTemplate the executor uses, so the client sees what the agent would have been sent).
 * Reading a prompt needs agents:read and the agent in the caller's scope, as GET /api/v1/agents/{name}.
 */
import { ErrorCode, type GetPromptResult, type Prompt, type PromptArgument } from '@modelcontextprotocol/sdk/types.js';
import type { AgentDefinition, AgentRegistry } from '../agents/index.js';
import { renderTemplate } from '../execution/index.js';
import { scrubSecrets } from '../shared/secrets.js';
import type { McpGateway } from './gateway.js';
import { allowed, decodeCursor, encodeCursor, offeredAgent, rpcError, visibleAgents, type McpCaller } from './offer.js';

/** Bounds one prompts/list page; clients follow nextCursor. */
export const PROMPT_PAGE = 100;

function promptArguments(def: AgentDefinition): PromptArgument[] {
  const args: PromptArgument[] = [{ name: 'request', description: 'What to ask the agent', required: true }];
  for (const [key, value] of Object.entries(def.parameters)) {
    // `request` is the template's own placeholder; a parameter of that name could never be set apart from it.
    if (key === 'request') continue;
    args.push({
      name: key,
      description: `Agent parameter {{parameters.${key}}} (default: ${JSON.stringify(value)})`,
      required: false,
    });
  }
  return args;
}

/** The agent's description, or a stand-in for an agent without one (clients and the conformance suite expect one). */
function descriptionOf(def: AgentDefinition): string {
  return (
    def.description || `The Caxton agent "${def.name}": its system prompt, then the request in its user prompt template`
  );
}

function describe(def: AgentDefinition): Prompt {
  return {
    name: def.name,
    title: `Caxton agent ${def.name}`,
    description: descriptionOf(def),
    arguments: promptArguments(def),
  };
}

export class CaxtonMcpPrompts {
  constructor(
    readonly agents: AgentRegistry,
    readonly patterns: readonly string[],
    /** Gateway servers' prompts, listed after the agents' (an agent's name wins a collision). */
    readonly gateway?: McpGateway,
  ) {}

  list(caller: McpCaller, cursor?: string): { prompts: Prompt[]; nextCursor?: string } {
    const own = allowed(caller.principal, 'agents:read')
      ? visibleAgents(this.agents, this.patterns, caller).map((a) => describe(a.definition))
      : [];
    const all = [...own, ...(this.gateway?.prompts(caller, new Set(own.map((p) => p.name))) ?? [])];
    const start = decodeCursor(cursor);
    const prompts = all.slice(start, start + PROMPT_PAGE);
    return start + PROMPT_PAGE < all.length ? { prompts, nextCursor: encodeCursor(start + PROMPT_PAGE) } : { prompts };
  }

  /** Whether `name` is one of Caxton's own prompts for this caller (else a gateway server's may be). */
  offers(name: string, caller: McpCaller): boolean {
    return (
      allowed(caller.principal, 'agents:read') && offeredAgent(this.agents, this.patterns, caller, name) !== undefined
    );
  }

  get(name: string, args: Record<string, string>, caller: McpCaller): GetPromptResult {
    const p = caller.principal;
    if (!allowed(p, 'agents:read'))
      throw rpcError(
        ErrorCode.InvalidParams,
        `${p!.id} (role ${p!.role}) may not read prompts: it needs the agents:read permission`,
      );
    // Not offered and out of scope look the same: an agent's existence is not told to those who may not see it.
    const agent = offeredAgent(this.agents, this.patterns, caller, name);
    if (!agent)
      throw rpcError(
        ErrorCode.InvalidParams,
        `prompt "${name}" is not offered by this Caxton server (prompts/list names the ones that are)`,
      );
    const def = agent.definition;
    const request = args.request;
    if (typeof request !== 'string' || request === '')
      throw rpcError(ErrorCode.InvalidParams, `argument "request" is required: what to ask the agent "${def.name}"`);
    const known = new Set(Object.keys(def.parameters));
    const parameters: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(args)) {
      if (k === 'request') continue;
      if (!known.has(k))
        throw rpcError(
          ErrorCode.InvalidParams,
          `argument "${k}" is not a parameter of the agent "${def.name}" (it takes: request${known.size ? `, ${[...known].join(', ')}` : ''})`,
        );
      parameters[k] = v;
    }
    const user = renderTemplate(def.user_prompt_template, def, { request, parameters });
    return {
      description: descriptionOf(def),
      messages: [
        { role: 'user', content: { type: 'text', text: scrubSecrets(def.system_prompt) } },
        { role: 'user', content: { type: 'text', text: scrubSecrets(user) } },
      ],
    };
  }
}
