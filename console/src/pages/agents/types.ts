/** The API's agent shapes the Agents page reads (src/api/schemas.ts). */
import type { Issue } from '../../components/issues';

export interface AgentSummary {
  name: string;
  version?: string;
  description?: string;
  capabilities: string[];
  tools: string[];
  format: 'toml' | 'markdown' | 'json';
  origin: { kind: 'file'; path: string } | { kind: 'api' };
  revision: number;
  deployed_at: string;
  updated_at: string;
}

export interface AgentDetail extends AgentSummary {
  definition: Record<string, unknown>;
}

export interface AgentVersion {
  agent: string;
  version: number;
  semver: string | null;
  hash: string;
  format: 'toml' | 'markdown' | 'json';
  how: 'api' | 'file' | 'rollback' | 'promotion';
  origin: 'api' | 'file';
  path: string | null;
  deployed_by: string | null;
  deployed_at: string;
  restored_from: number | null;
}

export interface Versions {
  agent: string;
  current: number | null;
  versions: AgentVersion[];
  total: number;
}

export interface Rollout {
  id: number;
  agent: string;
  strategy: 'blue-green' | 'canary' | 'shadow';
  stable_version: number;
  candidate_version: number;
  state: 'running' | 'promoted' | 'rolled_back';
  started_at: string;
  started_by: string | null;
  ended_at: string | null;
  ended_by: string | null;
  reason: string | null;
}

/** A node's rollout of an agent: running, or its last. */
export interface NodeRollout {
  running: boolean;
  rollout: Rollout | null;
  canary: Record<string, unknown> | null;
  shadow: Record<string, unknown> | null;
}

export interface RolloutStatus extends NodeRollout {
  agent: string;
  live_version: number | null;
  /** A cluster node: the rollout another node runs of this agent, and its status as that node reports it (null: it did not answer). */
  elsewhere?: { node: string; candidate_version: number; status: NodeRollout | null } | null;
}

export interface ValidateResult {
  valid: boolean;
  format: string;
  name?: string;
  errors: Issue[];
  warnings: Issue[];
}

export const agentPath = (name: string, rest = ''): string => `/api/v1/agents/${encodeURIComponent(name)}${rest}`;
