/**
 * The workspace's deny rules held by the tools themselves, on every surface that reaches them (an
 * agent's run, Caxton's MCP endpoint, a direct call): a denied call is refused before it runs
 * (and the tool audit records it as denied),
 * and searches (Glob, Grep, LS) leave out what a `Read(...)` deny rule names. Ask rules and modes
 * belong to an agent's run and are judged there (src/execution/runs/approval.ts).
 */
import type { AuditedTool } from '../audited.js';
import { toolError } from '../audited.js';
import { decide, deniedMessage, type PermissionSet, subjectOf } from './rules.js';

/**
 * Why a deny rule of `set` refuses this call of `tool`, or undefined when none does: the one check
 * behind every tool that holds the workspace's deny rules (the workspace and web tools, the tools
 * of mounted MCP servers), whoever calls it.
 */
export async function refusalOf(
  set: PermissionSet,
  tool: string,
  args: Record<string, unknown>,
): Promise<string | undefined> {
  if (set.deny.length === 0) return undefined;
  const denyOnly: PermissionSet = {
    allow: [],
    ask: [],
    deny: set.deny,
    ...(set.root !== undefined && { root: set.root }),
  };
  const d = decide(denyOnly, tool, await subjectOf(tool, args, set.root), undefined);
  return d.decision === 'deny' ? deniedMessage(tool, d) : undefined;
}

/** `tool` refusing the calls a deny rule of `set` covers. */
export function deniedBy(tool: AuditedTool, set: PermissionSet): AuditedTool {
  if (set.deny.length === 0) return tool;
  return {
    ...tool,
    async invoke(args, ctx) {
      const refusal = await refusalOf(set, tool.name, args);
      if (refusal !== undefined) return toolError(refusal, 'denied');
      return tool.invoke(args, ctx);
    },
  };
}

/** Whether a deny rule of `set` refuses reading the file at `path` (for a search to leave it out). */
export function readDeniedBy(set: PermissionSet): ((path: string) => boolean) | undefined {
  if (set.deny.length === 0) return undefined;
  const denyOnly: PermissionSet = {
    allow: [],
    ask: [],
    deny: set.deny,
    ...(set.root !== undefined && { root: set.root }),
  };
  return (path) => decide(denyOnly, 'workspace.read', { path }, undefined).decision === 'deny';
}
