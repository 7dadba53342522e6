import type { Brand } from '../shared/brand.js';
import type { WasmLimits } from '../shared/wasm-limits.js';

/**
 * Agent names: a letter or digit, then letters, digits, `-`, `_`, `.` or single inner spaces (Claude
 * Code files name agents "Code Reviewer" or "3d-modeler"); at most 64; never `..`; unique case-insensitively.
 */
export type AgentName = Brand<string, 'AgentName'>;
/** Capabilities: lower-case `a-z0-9` words joined by `-`, `_` or `.`. */
export type Capability = Brand<string, 'Capability'>;
/** Tool names as an agent refers to them: `http_client`, `server.tool`, `server.*`. */
export type ToolName = Brand<string, 'ToolName'>;

export const AGENT_NAME_RE = /^[A-Za-z0-9](?:[A-Za-z0-9_.-]| (?=[A-Za-z0-9_.-])){0,63}$/;
export const CAPABILITY_RE = /^[a-z0-9]+(?:[-_.][a-z0-9]+)*$/;
export const TOOL_NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.:*-]{0,127}$/;

export type AgentFormat = 'toml' | 'markdown' | 'json';
export type MemoryScope = 'agent' | 'workspace' | 'global';
export type IsolationMode = 'context' | 'worker' | 'process';
export const ISOLATION_MODES: readonly IsolationMode[] = ['context', 'worker', 'process'];

export interface LlmSettings {
  /** Provider name from `[llm.providers.NAME]` in caxton.toml; absent: the server default. */
  provider?: string;
  /** Model id; absent: the provider's default model. */
  model?: string;
  temperature?: number;
  max_tokens?: number;
  top_p?: number;
  stop?: string[];
  /** Providers tried, in order, when the primary one fails. Never implicit. */
  fallbacks?: string[];
}

export interface MemorySettings {
  enabled: boolean;
  scope: MemoryScope;
  auto_store: boolean;
  search_limit: number;
  min_similarity: number;
}

export interface Limits {
  max_turns: number;
  /** Total time allowed for one request, in milliseconds. */
  timeout_ms: number;
  /** Largest accepted request or message, in bytes. */
  max_message_size: number;
}

export interface ConversationSettings {
  /** How many earlier messages of a conversation are rendered into the prompt. */
  history_limit: number;
  /** Most turns (messages) a conversation may have before it is stopped. */
  max_turns: number;
  /** Conversation expiry after inactivity, in milliseconds. */
  ttl_ms: number;
}

/** The FIPA interaction protocols the platform runs (the messaging layer's `Protocol`). */
export const INTERACTION_PROTOCOLS = [
  'fipa-request',
  'fipa-query',
  'fipa-contract-net',
  'fipa-subscribe',
  'fipa-english-auction',
  'fipa-dutch-auction',
  'fipa-iterated-contract-net',
] as const;
export type InteractionProtocol = (typeof INTERACTION_PROTOCOLS)[number];

/** What the directory facilitator advertises for the agent, and how many messages it handles at once. */
export interface MessagingSettings {
  /** Protocols the agent takes part in; empty: every protocol. */
  protocols: InteractionProtocol[];
  /** Ontologies it understands; empty: any (messages naming none always match). */
  ontologies: string[];
  /** Content languages it understands; empty: any. */
  languages: string[];
  /** Messages handled at once; absent: `[messaging] agent_concurrency` of caxton.toml. */
  max_concurrency?: number;
  /**
   * The agents its `send_message` tool may address, by name (Claude Code's `Agent(a, b)` /
   * `Task(a, b)`); absent: any agent or capability.
   */
  send_to?: AgentName[];
  /**
   * Fields this agent's bids carry beyond `price`, `currency`, `terms` and `valid_until`: added to
   * the JSON schema of the `propose` act its model is offered, so a selection rule can rank on
   * them (`lowest price, then lowest delivery_days`).
   */
  bid_fields?: Record<string, BidField>;
}

/** `[messaging.bid_fields.NAME]`: one field of the agent's bids. */
export interface BidField {
  type: 'number' | 'integer' | 'string' | 'boolean';
  description?: string;
  /** The model must give it (default false). */
  required: boolean;
  minimum?: number;
  maximum?: number;
}

/** The fields every bid has; an agent's own bid fields may not take these names. */
export const STANDARD_BID_FIELDS = ['price', 'currency', 'terms', 'valid_until'] as const;

export interface ExecutionSettings {
  /** Overrides the server-wide isolation mode for this agent. */
  isolation?: IsolationMode;
  /** Tools (names or `server.*` patterns) whose every call waits for a person's approval (docs/runs.md). */
  require_approval?: string[];
}

/** A check a new version must pass before its canary's first stage: a request, and what the answer must hold. */
export interface RolloutCheck {
  name?: string;
  request: string;
  /** A regular expression (case-insensitive) the answer must match. */
  expect?: string;
  /** Fields the answer, parsed as JSON, must hold (a deep subset). */
  expect_json?: Record<string, unknown>;
}

/**
 * `[rollout]`: how a new version of this agent is rolled out when the deploy does not say
 * (docs/rollouts.md). A deploy's own options win field by field.
 */
export interface RolloutSettings {
  strategy?: 'direct' | 'blue-green' | 'canary' | 'shadow';
  stages?: number[];
  hold_ms?: number;
  min_requests?: number;
  max_error_rate_increase?: number;
  max_latency_ratio?: number;
  checks: RolloutCheck[];
  /** Shadow: an agent asked whether two answers agree (it answers yes or no); else text and similarity decide. */
  judge?: string;
  /** Shadow: answers that differ in text agree at this cosine similarity or more (default 0.9). */
  similarity?: number;
}

/** Limits of one call of a WebAssembly agent's module: the tool sandbox's names, units and defaults. */
/** The sandbox limits of one call of a WebAssembly agent's module (a tool server's too). */
export type { WasmLimits };

/**
 * `[wasm]`: the agent's logic is a WebAssembly module, run in the tool sandbox instead of asking a
 * model (docs/agent-format.md, ADR 0058). `path` and `digest` are filled when the definition is
 * checked (deploy or file load): the module's bytes are part of the version through the digest.
 */
export interface WasmSettings {
  /** The module as written: relative to the agent file (API agents: to agents_dir). */
  module: string;
  /** The exported function called for each request or message (default "handle"). */
  entry: string;
  limits: WasmLimits;
  /** The module's absolute path, resolved at the check. */
  path?: string;
  /** SHA-256 of the module's bytes at the check, hex. */
  digest?: string;
}

/** The one typed form both agent file formats (and JSON) are parsed into. */
export interface AgentDefinition {
  name: AgentName;
  version: string;
  description: string;
  capabilities: Capability[];
  tools: ToolName[];
  system_prompt: string;
  user_prompt_template: string;
  documentation?: string;
  llm: LlmSettings;
  memory: MemorySettings;
  parameters: Record<string, unknown>;
  limits: Limits;
  conversation: ConversationSettings;
  execution: ExecutionSettings;
  messaging: MessagingSettings;
  /** Provenance notes, e.g. the original Claude Code tool list and model alias. */
  metadata: Record<string, unknown>;
  /** `[rollout]`: the default strategy and options for new versions, and the checks before a canary. */
  rollout?: RolloutSettings;
  /** `[wasm]`: a WebAssembly module answers instead of a model. */
  wasm?: WasmSettings;
}

export const DEFAULT_USER_PROMPT_TEMPLATE = '{{request}}';

/** Agent names are unique regardless of case; this is the key they are stored under. */
export function agentKey(name: string): string {
  return name.toLowerCase();
}

/**
 * The metadata key of a remote A2A agent's definition (`[a2a_agents.NAME]`, src/a2a): its base
 * URL. Such an agent is answered by that server, never by a model here.
 */
export const A2A_REMOTE_KEY = 'a2a_remote';

/** The base URL of a remote A2A agent, else undefined. */
export function remoteA2aUrl(def: Pick<AgentDefinition, 'metadata'>): string | undefined {
  const v = def.metadata[A2A_REMOTE_KEY];
  return typeof v === 'string' ? v : undefined;
}
