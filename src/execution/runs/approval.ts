/**
 * Approval: which tool calls wait for a person before they run (docs/runs.md). The rules come from
 * the operator (`[[approvals.rules]]` in caxton.toml: tools, optionally agents and argument
 * patterns) and from the agent file (`[execution] require_approval`); a job carries the rules that
 * apply to its agent as plain data, so the same check runs in every isolation mode.
 *
 * Imported by the task module: keep it free of server-only dependencies.
 */
import { CaxtonError } from '../../shared/errors.js';
import { allowsTool } from '../../tools/tool-registry.js';
import {
  decide,
  deniedMessage,
  subjectOf,
  effectiveMode,
  parseRule,
  type PermissionMode,
  type PermissionRule,
  type PermissionSet,
  type WorkspacePermissions,
} from '../../tools/permissions/index.js';

/** A rule as a job carries it: the tools it covers and, per argument, a pattern its value must match. */
export interface ApprovalRule {
  tools: string[];
  /** Claude Code permission rules and the agent's mode (ADR 0124): ask and the mode wait for a person, deny refuses. */
  permissions?: { set: PermissionSet; mode?: PermissionMode };
  /** Argument name → regular expression source; every one must match for the rule to apply. */
  arguments?: Record<string, string>;
}

/** The operator's rule as caxton.toml has it. */
export interface ApprovalConfigRule extends ApprovalRule {
  /** Agent names (or "*"); absent: every agent. */
  agents?: string[];
}

/** Whether an entry of a rule's `tools` is a Claude Code permission rule (`Bash(git push:*)`) rather than a tool name or pattern. */
export const isRuleEntry = (entry: string): boolean => entry.includes('(');

/**
 * The rules that apply to `agent`: the operator's for it, then the agent file's own list. An
 * operator's entry written as a Claude Code rule (`Bash(git push:*)`, `Read(./secrets/**)`) is an
 * ask rule, judged as the workspace's are (relative paths from `root`); its `arguments` patterns
 * apply to the tool names beside it only.
 */
export function approvalRulesFor(
  agent: string,
  operator: readonly ApprovalConfigRule[],
  own: readonly string[] | undefined,
  root?: string,
): ApprovalRule[] {
  const rules: ApprovalRule[] = [];
  const ask: PermissionRule[] = [];
  for (const r of operator) {
    if (r.agents !== undefined && !r.agents.includes('*') && !r.agents.includes(agent)) continue;
    const tools = r.tools.filter((t) => !isRuleEntry(t));
    for (const t of r.tools)
      if (isRuleEntry(t)) ask.push({ rule: t.trim(), source: 'caxton.toml [[approvals.rules]] tools' });
    if (tools.length === 0) continue;
    rules.push(r.arguments === undefined ? { tools } : { tools, arguments: r.arguments });
  }
  if (ask.length > 0)
    rules.unshift({
      tools: [],
      permissions: { set: { allow: [], deny: [], ask, ...(root !== undefined && { root }) } },
    });
  if (own !== undefined && own.length > 0) rules.push({ tools: [...own] });
  return rules;
}

/**
 * Where an agent's own rules are kept in its metadata, the key its file wrote them under, and
 * whether a bare tool name there is a rule too (a Caxton file's `disallowed_tools` refuses the
 * tool it names, `mcp__github__delete_repo` within `mcp__github`; in a Claude Code list a bare
 * name only adds or removes the tool).
 */
const OWN_RULES = {
  allow: [
    ['claude_tools', 'tools', false],
    ['tool_rules', 'tools', false],
  ],
  deny: [
    ['claude_disallowed_tools', 'disallowedTools', false],
    ['disallowed_tools', 'disallowed_tools', true],
  ],
  ask: [['approval_rules', 'execution.require_approval', false]],
} as const;

/**
 * The permission rules an agent's calls are judged by: the workspace's, plus the rules its file
 * wrote (src/agents/tool-lists.ts): those with a specifier in `tools` (allow), `disallowedTools` /
 * `disallowed_tools` (deny) and `[execution] require_approval` (ask), and its mode
 * (`permissionMode` / `permission_mode`, else the settings file's `defaultMode`). Undefined when
 * nothing applies.
 */
export function agentPermissions(
  def: { name: string; metadata?: Record<string, unknown> },
  ws: WorkspacePermissions,
): ApprovalRule['permissions'] {
  const meta = def.metadata ?? {};
  const own = (keys: readonly (readonly [string, string, boolean])[]): PermissionRule[] =>
    keys.flatMap(([key, written, bare]) => {
      const list = meta[key];
      if (!Array.isArray(list)) return [];
      return list
        .filter((r): r is string => typeof r === 'string')
        .filter((r) => {
          const p = parseRule(r);
          return !('error' in p) && (bare || p.specifier !== undefined);
        })
        .map((rule) => ({ rule: rule.trim(), source: `agent ${def.name} ${written}` }));
    });
  const mode = effectiveMode(meta.permissionMode ?? meta.permission_mode, ws);
  const set: PermissionSet = {
    allow: [...ws.allow, ...own(OWN_RULES.allow)],
    deny: [...ws.deny, ...own(OWN_RULES.deny)],
    ask: [...ws.ask, ...own(OWN_RULES.ask)],
    ...(ws.root !== undefined && { root: ws.root }),
  };
  // Allow rules alone change nothing: without a mode, a call no rule denies or asks about runs.
  if (mode === undefined && set.deny.length + set.ask.length === 0) return undefined;
  return mode === undefined ? { set } : { set, mode };
}

/**
 * What the permission rules say of a call: `ask` (it waits for a person), a refusal's text (deny,
 * or plan mode), or undefined (the other rules decide). Async: a Bash line is parsed off-thread.
 */
export async function permissionGate(
  rules: readonly ApprovalRule[],
  tool: string,
  args: Record<string, unknown>,
): Promise<'ask' | { denied: string } | undefined> {
  for (const r of rules) {
    if (r.permissions === undefined) continue;
    const { set, mode } = r.permissions;
    const d = decide(set, tool, await subjectOf(tool, args, set.root), mode);
    if (d.decision === 'deny') return { denied: deniedMessage(tool, d) };
    if (d.decision === 'ask') return 'ask';
  }
  return undefined;
}

/**
 * The refusal a task reports for a call its permission rules refused (TOOL_REFUSED_METHOD), judged
 * again by the job's rules: a task cannot file a refusal its rules do not make.
 */
export async function ruleRefusal(
  rules: readonly ApprovalRule[],
  tool: string,
  args: Record<string, unknown>,
): Promise<string> {
  const gate = await permissionGate(rules, tool, args);
  if (gate === undefined || gate === 'ask')
    throw new CaxtonError('invalid_request', `the task reported a refusal of "${tool}" its rules do not make`, {
      name: tool,
    });
  return gate.denied;
}

function argumentText(v: unknown): string {
  return typeof v === 'string' ? v : (JSON.stringify(v) ?? '');
}

/** Whether a call of `tool` with `args` needs approval under `rules`. */
export function needsApproval(rules: readonly ApprovalRule[], tool: string, args: Record<string, unknown>): boolean {
  for (const r of rules) {
    if (r.permissions !== undefined || !allowsTool(r.tools, tool)) continue;
    if (r.arguments === undefined) return true;
    const all = Object.entries(r.arguments).every(
      ([name, pattern]) => Object.hasOwn(args, name) && new RegExp(pattern, 'u').test(argumentText(args[name])),
    );
    if (all) return true;
  }
  return false;
}

/** What the model is told about a call a person denied (or nobody approved in time). */
export function deniedResult(tool: string, reason: string | undefined): string {
  return `the call of "${tool}" was not run: approval was denied${reason ? `: ${reason}` : ''}. Do not try it again unless asked; answer without it or explain what you needed.`;
}

/**
 * What a caller of a run that waits for a person is told (HTTP 202: accepted, not failed), on every
 * surface: the run, the tool and the call to decide on are in the message (for clients that only
 * show a message, as OpenAI's do) and in `details`.
 */
export function awaitingApproval(
  runId: string,
  a: { tool: string; call_id: string; arguments: Record<string, unknown> },
): CaxtonError {
  return new CaxtonError(
    'awaiting_approval',
    `run ${runId} waits for approval of a call of "${a.tool}" (call ${a.call_id}): approve or deny it (caxton run approve ${runId} ${a.call_id})`,
    { run_id: runId, tool: a.tool, call_id: a.call_id, arguments: a.arguments },
  );
}
