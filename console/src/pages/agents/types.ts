/** The API's agent shapes the Agents page reads (src/api/schemas.ts). */
import type { Issue } from '../../components/issues';

export interface AgentSummary {
  name: string;
  version?: string;
  description?: string;
  capabilities: string[];
  tools: string[];
  format: 'toml' | 'markdown' | 'json';
  origin: { kind: 'file'; path: string } | { kind: 'api' } | { kind: 'a2a'; url: string };
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
  /** Canary only: the stages (percent of new conversations), hold per stage and rollback thresholds. */
  plan: {
    stages: number[];
    hold_ms: number;
    min_requests: number;
    max_error_rate_increase: number;
    max_latency_ratio: number;
  } | null;
  /** Canary only: the stage reached (0-based index into plan.stages). */
  stage: number;
  stage_started_at: string;
}

export interface WindowFigures {
  requests: number;
  errors: number;
  error_rate: number;
  p99_ms: number | null;
}

/** A running canary: its stage and weight, both versions' figures in the stage's window, what the stage waits for. */
export interface CanaryStatus {
  stage: number;
  weight: number;
  candidate: WindowFigures;
  stable: WindowFigures;
  waiting_for: string | null;
  hold_ends_at: string;
}

export interface ShadowSide {
  p50_ms: number | null;
  p99_ms: number | null;
  tokens: number;
}

/** A shadow rollout: live requests copied to the candidate, how often the answers agreed, latency and tokens. */
export interface ShadowReport {
  compared: number;
  agreements: number;
  agreement_rate: number | null;
  comparison: 'exact' | 'similarity' | 'judge';
  mean_similarity: number | null;
  candidate_errors: number;
  skipped: number;
  stable: ShadowSide;
  candidate: ShadowSide;
  disagreements: {
    request: string;
    stable_answer: string;
    candidate_answer: string | null;
    candidate_error: string | null;
  }[];
}

/** A node's rollout of an agent: running, or its last. */
export interface NodeRollout {
  running: boolean;
  rollout: Rollout | null;
  canary: CanaryStatus | null;
  shadow: ShadowReport | null;
}

export interface RolloutStatus extends NodeRollout {
  agent: string;
  live_version: number | null;
}

export interface ValidateResult {
  valid: boolean;
  format: string;
  name?: string;
  errors: Issue[];
  warnings: Issue[];
}

export const agentPath = (name: string, rest = ''): string => `/api/v1/agents/${encodeURIComponent(name)}${rest}`;

export interface VersionSource {
  version: number;
  source: string;
  format: 'toml' | 'markdown' | 'json';
}
