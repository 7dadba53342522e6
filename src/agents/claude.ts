/**
 * Claude Code subagent compatibility: how Claude's tool names and model aliases map onto
 * Caxton's. Community files load unchanged; the original values are kept in `metadata`.
 * The table is documented in docs/agent-format.md — keep the two in step.
 */

export const CLAUDE_TOOL_MAP: Readonly<Record<string, string | null>> = {
  Read: 'filesystem',
  Write: 'filesystem',
  Edit: 'filesystem',
  MultiEdit: 'filesystem',
  Glob: 'filesystem',
  Grep: 'filesystem',
  LS: 'filesystem',
  NotebookRead: 'filesystem',
  NotebookEdit: 'filesystem',
  WebFetch: 'http_client',
  WebSearch: 'web_search',
  Bash: 'shell',
  BashOutput: 'shell',
  KillBash: 'shell',
  KillShell: 'shell',
  Task: 'send_message',
  // Claude Code's own scratch-pad tools have no Caxton counterpart; they are dropped.
  TodoWrite: null,
  ExitPlanMode: null,
};

/** Claude model aliases; resolved to a provider and model by `[llm.model_aliases]` at execution time. */
export const CLAUDE_MODEL_ALIASES = ['sonnet', 'opus', 'haiku'] as const;

export interface MappedTools {
  tools: string[];
  dropped: string[];
}

/** `mcp__server__tool` → `server.tool`, `mcp__server` → `server.*`, Claude built-ins by the table, others unchanged. */
export function mapClaudeTool(name: string): string | null {
  if (Object.hasOwn(CLAUDE_TOOL_MAP, name)) return CLAUDE_TOOL_MAP[name] ?? null;
  const mcp = /^mcp__([^_](?:[^_]|_(?!_))*)(?:__(.+))?$/.exec(name);
  if (mcp) return mcp[2] ? `${mcp[1]}.${mcp[2]}` : `${mcp[1]}.*`;
  return name;
}

export function splitToolList(v: unknown): unknown {
  if (typeof v !== 'string') return v;
  return v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

export function mapClaudeTools(list: readonly string[]): MappedTools {
  const tools: string[] = [];
  const dropped: string[] = [];
  for (const t of list) {
    const m = mapClaudeTool(t);
    if (m === null) dropped.push(t);
    else if (!tools.includes(m)) tools.push(m);
  }
  return { tools, dropped };
}
