/**
 * Caxton data as MCP resources: agent definitions at `caxton://agents/{name}` (JSON), listed in
 * pages and described by a resource template. Reading needs agents:read and the agent in the
 * caller's scope, as GET /api/v1/agents/{name}; an agent the caller may not see is "not found"
 * (-32002), like one that does not exist.
 */
import { ErrorCode, McpError, type ReadResourceResult, type Resource, type ResourceTemplate } from '@modelcontextprotocol/sdk/types.js';
import type { AgentRegistry, DeployedAgent } from '../agents/index.js';
import { scrubSecrets } from '../shared/secrets.js';
import { allowed, offeredAgent, offeredAgents, type McpCaller } from './offer.js';

/** Bounds one resources/list page; clients follow nextCursor. */
export const RESOURCE_PAGE = 100;
/** The specification's code for an unknown resource (not in the SDK's ErrorCode enum). */
export const RESOURCE_NOT_FOUND = -32002;

const AGENT_PREFIX = 'caxton://agents/';
const JSON_TYPE = 'application/json';

const agentUri = (name: string) => `${AGENT_PREFIX}${encodeURIComponent(name)}`;

function agentResource(a: DeployedAgent): Resource {
  const name = a.definition.name as string;
  return { uri: agentUri(name), name: `agent ${name}`, title: `Agent definition: ${name}`, description: a.definition.description, mimeType: JSON_TYPE };
}

export class CaxtonMcpResources {
  constructor(
    readonly agents: AgentRegistry,
    readonly patterns: readonly string[],
  ) {}

  templates(caller: McpCaller): ResourceTemplate[] {
    if (!allowed(caller.principal, 'agents:read')) return [];
    return [
      {
        uriTemplate: `${AGENT_PREFIX}{name}`,
        name: 'agent',
        title: 'Agent definition',
        description: 'A deployed agent: its definition as JSON (the parsed form of its TOML or Markdown file)',
        mimeType: JSON_TYPE,
      },
    ];
  }

  list(caller: McpCaller, cursor?: string): { resources: Resource[]; nextCursor?: string } {
    if (!allowed(caller.principal, 'agents:read')) return { resources: [] };
    const { page, nextCursor } = offeredAgents(this.agents, this.patterns, caller, cursor, RESOURCE_PAGE);
    return { resources: page.map(agentResource), ...(nextCursor !== undefined && { nextCursor }) };
  }

  read(uri: string, caller: McpCaller): ReadResourceResult {
    const p = caller.principal;
    if (uri.startsWith(AGENT_PREFIX)) {
      if (!allowed(p, 'agents:read')) throw new McpError(ErrorCode.InvalidParams, `${p!.id} (role ${p!.role}) may not read agent definitions: it needs the agents:read permission`);
      let name: string;
      try {
        name = decodeURIComponent(uri.slice(AGENT_PREFIX.length));
      } catch {
        throw new McpError(ErrorCode.InvalidParams, `resource URI "${uri}" is not well formed: expected ${AGENT_PREFIX}{name}`);
      }
      const a = offeredAgent(this.agents, this.patterns, caller, name);
      if (!a) throw new McpError(RESOURCE_NOT_FOUND, `resource not found: ${uri} (no such agent offered)`, { uri });
      const body = { definition: a.definition, format: a.format, revision: a.revision, deployed_at: a.deployed_at, updated_at: a.updated_at };
      return { contents: [{ uri: agentUri(a.definition.name as string), mimeType: JSON_TYPE, text: scrubSecrets(JSON.stringify(body, null, 2)) }] };
    }
    throw new McpError(RESOURCE_NOT_FOUND, `resource not found: ${uri} (this server offers ${AGENT_PREFIX}{name})`, { uri });
  }
}
