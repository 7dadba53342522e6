/**
 * An exposed agent's Agent Card: who it is (name, description, version), its skills (one per
 * capability, described by the agent's description and documentation), where and how it is
 * reached (the JSON-RPC and HTTP+JSON interfaces under /a2a/NAME, and gRPC when its listener is on) and the credentials Caxton takes there (the
 * security schemes follow [auth]: API key header, bearer key or OIDC JWT, client certificate).
 */
import { AgentCard as AgentCardCodec, A2A_PROTOCOL_VERSION } from '@a2a-js/sdk';
import type { AgentCard, AgentSkill, SecurityRequirement, SecurityScheme } from '@a2a-js/sdk';
import type { AgentDefinition } from '../agents/index.js';
import type { A2aConfig, ServerConfig } from '../config/index.js';

/** Where an agent's A2A endpoint is, under the server's URL. */
export const A2A_BASE = '/a2a';
export const agentPath = (name: string): string => `${A2A_BASE}/${encodeURIComponent(name)}`;
/** The gRPC binding's name in cards and version checks. */
export const GRPC_BINDING = 'GRPC';

export interface CardSettings {
  a2a: A2aConfig;
  auth: Pick<ServerConfig['auth'], 'enabled' | 'jwt' | 'client_certs'>;
  /** The gRPC listener's address (`host:port`), when it is on: the cards name a third interface. */
  grpc?: string | undefined;
}

/** A skill's description: the agent's description, then the first paragraph of its documentation. */
function skillDescription(def: AgentDefinition): string {
  const doc =
    (def.documentation ?? '')
      .trim()
      .split(/\n\s*\n/)[0]
      ?.trim() ?? '';
  const text = [def.description.trim(), doc].filter((s) => s !== '').join('\n\n');
  return (text || `the agent ${def.name}`).slice(0, 2_000);
}

function skillsOf(def: AgentDefinition): AgentSkill[] {
  const description = skillDescription(def);
  const skill = (id: string): AgentSkill => ({
    id,
    name: id,
    description,
    tags: [id],
    examples: [],
    inputModes: [],
    outputModes: [],
    securityRequirements: [],
  });
  return def.capabilities.length > 0 ? def.capabilities.map((c) => skill(c as string)) : [skill(def.name as string)];
}

/** The schemes Caxton's authentication accepts; none with authentication off. */
export function securitySchemesOf(auth: CardSettings['auth']): Record<string, SecurityScheme> {
  if (!auth.enabled) return {};
  const schemes: Record<string, SecurityScheme> = {
    apiKey: {
      scheme: {
        $case: 'apiKeySecurityScheme',
        value: { description: 'a Caxton API key (cxk_...)', location: 'header', name: 'X-API-Key' },
      },
    },
    bearer: {
      scheme: {
        $case: 'httpAuthSecurityScheme',
        value: {
          description: auth.jwt
            ? 'a Caxton API key, or a JWT from the configured OpenID Connect issuer'
            : 'a Caxton API key (cxk_...)',
          scheme: 'Bearer',
          bearerFormat: auth.jwt ? 'JWT' : '',
        },
      },
    },
  };
  if (auth.jwt)
    schemes.oidc = {
      scheme: {
        $case: 'openIdConnectSecurityScheme',
        value: {
          description: 'a bearer JWT from this issuer',
          openIdConnectUrl: `${auth.jwt.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`,
        },
      },
    };
  if (auth.client_certs.length > 0)
    schemes.mtls = {
      scheme: {
        $case: 'mtlsSecurityScheme',
        value: { description: 'a client certificate Caxton maps to a principal' },
      },
    };
  return schemes;
}

/** Any one of the schemes will do. */
const requirementsOf = (schemes: Record<string, SecurityScheme>): SecurityRequirement[] =>
  Object.keys(schemes).map((k) => ({ schemes: { [k]: { list: [] } } }));

/** The card of `def`, reached at `baseUrl` (the server's URL, no trailing slash). */
export function agentCardOf(def: AgentDefinition, baseUrl: string, s: CardSettings): AgentCard {
  const schemes = securitySchemesOf(s.auth);
  const provider = s.a2a.provider;
  return {
    name: def.name as string,
    description: def.description || `the Caxton agent ${def.name}`,
    // Both HTTP bindings at the same base path: JSON-RPC posts to it, HTTP+JSON adds the method's
    // path. gRPC has one listener for every agent: the tenant names the agent, and the SDK's
    // client sends the interface's tenant with each request.
    supportedInterfaces: [
      ...['JSONRPC', 'HTTP+JSON'].map((protocolBinding) => ({
        url: `${baseUrl}${agentPath(def.name as string)}`,
        protocolBinding,
        tenant: '',
        protocolVersion: A2A_PROTOCOL_VERSION,
      })),
      ...(s.grpc !== undefined
        ? [
            {
              url: s.grpc,
              protocolBinding: GRPC_BINDING,
              tenant: def.name as string,
              protocolVersion: A2A_PROTOCOL_VERSION,
            },
          ]
        : []),
    ],
    provider: provider && { organization: provider.organization, url: provider.url ?? '' },
    version: def.version,
    capabilities: {
      streaming: true,
      pushNotifications: s.a2a.push_notifications,
      extensions: [],
      extendedAgentCard: true,
    },
    securitySchemes: schemes,
    securityRequirements: requirementsOf(schemes),
    defaultInputModes: ['text/plain', 'application/json'],
    defaultOutputModes: ['text/plain'],
    skills: skillsOf(def),
    signatures: [],
  };
}

/** The card as JSON on the wire (the protocol's JSON form). */
export const cardJson = (card: AgentCard): unknown => AgentCardCodec.toJSON(card);
