/**
 * Claude Code subagent compatibility: how Claude's tool names and model aliases map onto
 * Caxton's. Community files load unchanged; the original values are kept in `metadata`.
 * The table is documented in docs/agent-format.md — keep the two in step.
 */
import { AGENT_NAME_RE } from './definition.js';

export const CLAUDE_TOOL_MAP: Readonly<Record<string, string | null>> = {
  // The workspace tools keep Claude Code's arguments and results; the operator grants the
  // directory (read, and separately write) and Bash in caxton.toml (docs/agent-format.md).
  Read: 'workspace.read',
  NotebookRead: 'workspace.read',
  Write: 'workspace.write',
  Edit: 'workspace.edit',
  MultiEdit: 'workspace.multi_edit',
  Glob: 'workspace.glob',
  Grep: 'workspace.grep',
  LS: 'workspace.ls',
  Bash: 'workspace.bash',
  WebFetch: 'web.fetch',
  WebSearch: 'web.search',
  TodoWrite: 'todo.write',
  // Delegation: `Task` was renamed `Agent` (Claude Code 2.1.x); `SendMessage` messages a teammate.
  Task: 'send_message',
  Agent: 'send_message',
  SendMessage: 'send_message',
  // Agent teams: a team and its shared task list, kept by the server for the team's members.
  TeamCreate: 'team.create',
  TeamDelete: 'team.delete',
  TaskCreate: 'team.task_create',
  TaskList: 'team.task_list',
  TaskGet: 'team.task_get',
  TaskUpdate: 'team.task_update',
  // Claude Code's own scratch-pad, planning and session tools have no Caxton counterpart; they are dropped.
  TodoRead: null,
  TaskOutput: null,
  TaskStop: null,
  ExitPlanMode: null,
  EnterPlanMode: null,
  AskUserQuestion: null,
  Skill: null,
  SlashCommand: null,
  ToolSearch: null,
  ListMcpResourcesTool: null,
  ReadMcpResourceTool: null,
  EnterWorktree: null,
  ExitWorktree: null,
  // Refused by name (CLAUDE_TOOLS_REFUSED says why): dropped with a warning.
  NotebookEdit: null,
  BashOutput: null,
  KillBash: null,
  KillShell: null,
};

/** Claude tools Caxton does not offer, with the reason the load warning gives. */
export const CLAUDE_TOOLS_REFUSED: Readonly<Record<string, string>> = {
  NotebookEdit: 'notebooks are not edited cell by cell; Edit changes a notebook file as text',
  BashOutput: 'background shells are not supported: Bash runs each command to its end',
  KillBash: 'background shells are not supported: Bash runs each command to its end',
  KillShell: 'background shells are not supported: Bash runs each command to its end',
};

/** The Claude tools whose `Name(a, b)` form lists the agents it may delegate to. */
const DELEGATION_TOOLS = new Set(['Task', 'Agent']);

/** The Claude tools whose permission rules judge each call by a specifier (a command, a path, a domain). */
const SPECIFIER_TOOLS = new Set(['Bash', 'Read', 'Edit', 'Write', 'MultiEdit', 'Glob', 'Grep', 'LS', 'WebFetch']);

/**
 * Whether a disallowed entry refuses only some calls: a rule such as `Bash(git push:*)` is judged
 * in the run (ADR 0124) and leaves the tool granted; a bare name, or another tool's parentheses
 * (`Agent(worker)`), removes the tool.
 */
function narrowsCalls(e: ToolEntry): boolean {
  return SPECIFIER_TOOLS.has(e.name) && e.specifier !== undefined && e.specifier !== '' && e.specifier !== '*';
}

/** Claude model aliases; resolved to a provider and model by `[llm.model_aliases]` at execution time. */
export const CLAUDE_MODEL_ALIASES = ['sonnet', 'opus', 'haiku'] as const;

/** `mcp__server__tool` → `server.tool`, `mcp__server` → `server.*`, Claude built-ins by the table, others unchanged. */
export function mapClaudeTool(name: string): string | null {
  if (Object.hasOwn(CLAUDE_TOOL_MAP, name)) return CLAUDE_TOOL_MAP[name] ?? null;
  if (name.startsWith('mcp__')) {
    // Split by hand (no regex backtracking on hostile input): server, then the rest after the next `__`.
    const rest = name.slice(5);
    const sep = rest.indexOf('__');
    const server = sep < 0 ? rest : rest.slice(0, sep);
    const tool = sep < 0 ? '' : rest.slice(sep + 2);
    if (server !== '' && !server.startsWith('_'))
      return tool === '' || tool === '*' ? `${server}.*` : `${server}.${tool}`;
  }
  return name;
}

/**
 * Splits Claude's comma-separated tool string (`Read, Task(explorer), Agent(worker, reviewer)`):
 * commas inside parentheses belong to the entry. Lists are returned unchanged.
 */
export function splitToolList(v: unknown): unknown {
  if (typeof v !== 'string') return v;
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i <= v.length; i++) {
    const c = v[i];
    if (c === '(') depth++;
    else if (c === ')') depth = Math.max(0, depth - 1);
    else if (i === v.length || (c === ',' && depth === 0)) {
      const entry = v.slice(start, i).trim();
      if (entry.length > 0) out.push(entry);
      start = i + 1;
    }
  }
  return out;
}

/** One entry of a tool list: `Name` or `Name(specifier)`. */
export interface ToolEntry {
  name: string;
  /** The text between the parentheses, when there are any. */
  specifier?: string;
}

/** `Agent(worker, reviewer)` → { name: 'Agent', specifier: 'worker, reviewer' }; undefined when the parentheses do not match. */
export function parseToolEntry(entry: string): ToolEntry | undefined {
  const open = entry.indexOf('(');
  if (open < 0) return entry.includes(')') ? undefined : { name: entry.trim() };
  if (!entry.endsWith(')')) return undefined;
  return { name: entry.slice(0, open).trim(), specifier: entry.slice(open + 1, -1).trim() };
}

export interface MappedTools {
  tools: string[];
  /** Claude names with no counterpart (recorded in metadata). */
  dropped: string[];
  /** Agents `send_message` may address (from `Task(a, b)` / `Agent(a, b)`); undefined: any. */
  sendTo?: string[];
  /** Entries that could not be read, with why (an error naming the value). */
  invalid: { entry: string; reason: string }[];
  /** Permission specifiers (`Bash(git:*)`) Caxton does not enforce: the whole tool is granted. */
  unenforced: string[];
}

/**
 * Maps a Claude tool list (minus `disallowedTools`) to Caxton tools. A disallowed entry removes
 * the Claude tool it names before mapping (so `Write` disallowed still leaves `Read` →
 * `filesystem`), and a disallowed Caxton or MCP name removes the mapped tool.
 */
export function mapClaudeTools(list: readonly string[], disallowed: readonly string[] = []): MappedTools {
  const denied = new Set<string>();
  for (const d of disallowed) {
    const e = parseToolEntry(d);
    if (e && !narrowsCalls(e)) denied.add(e.name);
  }
  const deniedMapped = new Set(
    [...denied]
      .filter((d) => !Object.hasOwn(CLAUDE_TOOL_MAP, d))
      .map((d) => mapClaudeTool(d))
      .filter((m): m is string => m !== null),
  );
  const tools: string[] = [];
  const dropped: string[] = [];
  const invalid: MappedTools['invalid'] = [];
  const unenforced: string[] = [];
  let sendTo: Set<string> | undefined;
  let sendToAny = false;
  for (const raw of list) {
    const entry = parseToolEntry(raw);
    if (!entry || entry.name === '') {
      invalid.push({ entry: raw, reason: 'unbalanced parentheses; expected Name or Name(agent-a, agent-b)' });
      continue;
    }
    if (denied.has(entry.name)) continue;
    const mapped = mapClaudeTool(entry.name);
    if (mapped === null) {
      dropped.push(raw);
      continue;
    }
    if (
      deniedMapped.has(mapped) ||
      [...deniedMapped].some((d) => d.endsWith('.*') && mapped.startsWith(d.slice(0, -1)))
    )
      continue;
    if (DELEGATION_TOOLS.has(entry.name) || (mapped === 'send_message' && entry.specifier === undefined)) {
      if (entry.specifier === undefined || entry.specifier === '' || entry.specifier === '*') sendToAny = true;
      else {
        const names = entry.specifier
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s.length > 0);
        const bad = names.filter((n) => !AGENT_NAME_RE.test(n));
        if (bad.length > 0) {
          invalid.push({
            entry: raw,
            reason: `${bad.map((b) => `"${b}"`).join(', ')} is not an agent name (letters, digits, "-", "_", "."; starting with a letter)`,
          });
          continue;
        }
        sendTo ??= new Set();
        for (const n of names) sendTo.add(n);
      }
    } else if (entry.specifier !== undefined) unenforced.push(raw);
    if (!tools.includes(mapped)) tools.push(mapped);
  }
  const out: MappedTools = { tools, dropped, invalid, unenforced };
  if (sendTo && !sendToAny) out.sendTo = [...sendTo];
  return out;
}

/** Claude Code's `memory` field: the persistent-memory directory scope of the subagent. */
export const CLAUDE_MEMORY_SCOPES = ['user', 'project', 'local'] as const;

/**
 * The metadata key a Markdown agent without a `tools` key (or with `tools: *`) carries: Claude
 * Code gives such an agent every tool, so Caxton gives it what the operator granted to Claude
 * Code agents (`[agents.claude] unlisted_tools`). Only the Markdown reader sets it.
 */
export const UNLISTED_TOOLS_KEY = 'claude_tools_unlisted';

/** Whether `def` is a Claude Code agent that lists no tools (not `tools: []`, which grants none). */
export function listsNoTools(def: { tools: readonly string[]; metadata: Record<string, unknown> }): boolean {
  return def.tools.length === 0 && def.metadata[UNLISTED_TOOLS_KEY] === true;
}

/**
 * What an agent that lists no tools gets out of `granted` (the tools granted to Claude Code
 * agents): all of them but those its `disallowedTools` names, Claude names mapped as in a tool
 * list, `SERVER.*` and `mcp__server` removing a whole server.
 */
export function unlistedToolsOf(
  def: { metadata: Record<string, unknown> },
  granted: readonly string[],
): readonly string[] {
  const raw = def.metadata.claude_disallowed_tools;
  if (!Array.isArray(raw) || raw.length === 0) return granted;
  const denied = new Set<string>();
  for (const d of raw) {
    if (typeof d !== 'string') continue;
    const e = parseToolEntry(d);
    if (e && narrowsCalls(e)) continue;
    const mapped = e ? mapClaudeTool(e.name) : null;
    if (mapped !== null) denied.add(mapped);
  }
  return granted.filter(
    (t) =>
      !denied.has(t) &&
      ![...denied].some((d) => (d.endsWith('.*') ? t.startsWith(d.slice(0, -1)) : t.startsWith(`${d}.`))),
  );
}
