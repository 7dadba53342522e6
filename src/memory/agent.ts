/**
 * Agent integration: for an agent with `[memory] enabled`, the memories most relevant to the
 * request (its own, the workspace's and global ones; `search_limit`, `min_similarity`) are
 * rendered for `{{memory_context}}`; with `auto_store`, each successful execution is stored as an
 * observation in the agent's configured scope — on the entity `conversation:<id>` when the request
 * belongs to a conversation, else `interaction:<execution id>` (type `interaction`).
 */
import type { AgentDefinition } from '../agents/definition.js';
import type { AgentResponse, ExecutionMemory, InvokeRequest } from '../execution/types.js';
import { agentScope, visibleScopes } from './scope.js';
import type { MemoryBackend } from './backend.js';
import type { SearchHit } from './types.js';

export interface AgentMemoryOptions {
  /** Told about failures (memory never fails an execution). */
  onError?: (e: unknown, what: 'recall' | 'remember', agent: string) => void;
  /** Longest rendered memory context, in characters (default 4,000). */
  max_context_chars?: number;
  /** Called when a background store finishes (tests wait on it). */
  onStored?: (agent: string, entity: string) => void;
}

const MAX_OBS_PER_ENTITY = 8;

/** Memories as the model reads them in its prompt. */
export function renderMemories(hits: readonly SearchHit[], own: string, maxChars = 4000): string {
  if (hits.length === 0) return '';
  const lines = ['Relevant memories:'];
  let size = lines[0]!.length;
  for (const h of hits) {
    const e = h.entity;
    const scope = e.scope === own ? 'agent' : e.scope;
    const obs = e.observations.slice(-MAX_OBS_PER_ENTITY).map((o) => `  - ${o.replace(/\s+/g, ' ')}`);
    const block = [`- ${e.name} (${e.entityType}; ${scope}; relevance ${h.score.toFixed(2)})`, ...obs].join('\n');
    if (size + block.length + 1 > maxChars) break;
    lines.push(block);
    size += block.length + 1;
  }
  return lines.length > 1 ? lines.join('\n') : '';
}

function clip(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n - 1)}…`;
}

export function executionMemory(store: MemoryBackend, opts: AgentMemoryOptions = {}): ExecutionMemory {
  const report = opts.onError ?? (() => {});
  // Background stores still running: settled() waits for them (shutdown, tests).
  const pending = new Set<Promise<void>>();
  return {
    async recall(def: AgentDefinition, req: InvokeRequest): Promise<string> {
      try {
        const query = req.request.slice(0, 2000);
        if (query.trim() === '') return '';
        const hits = await store.search({
          query,
          scopes: visibleScopes(def.name),
          limit: def.memory.search_limit,
          min_similarity: def.memory.min_similarity,
        });
        return renderMemories(hits, agentScope(def.name), opts.max_context_chars);
      } catch (e) {
        report(e, 'recall', def.name);
        return '';
      }
    },
    remember(def: AgentDefinition, req: InvokeRequest, res: AgentResponse): void {
      if (res.finish_reason !== 'stop' || res.content.trim() === '') return;
      const scope = def.memory.scope === 'agent' ? agentScope(def.name) : def.memory.scope;
      const name =
        req.conversation_id !== undefined ? `conversation:${req.conversation_id}` : `interaction:${res.execution_id}`;
      const max = store.limits.max_observation_chars;
      const budget = Math.max(64, Math.floor((max - 20) / 3));
      const observation = clip(
        `User: ${clip(req.request.trim(), budget)}\nAssistant: ${clip(res.content.trim(), 2 * budget)}`,
        max,
      );
      const write = store
        .merge(
          [
            {
              scope,
              name,
              entityType: 'interaction',
              observations: [observation],
              metadata: {
                agent: def.name,
                ...(req.conversation_id !== undefined && { conversation_id: req.conversation_id }),
              },
            },
          ],
          [],
        )
        .then(
          () => opts.onStored?.(def.name, name),
          (e: unknown) => report(e, 'remember', def.name),
        )
        .finally(() => pending.delete(write));
      pending.add(write);
    },
    async settled(): Promise<void> {
      while (pending.size > 0) await Promise.all([...pending]);
    },
  };
}
