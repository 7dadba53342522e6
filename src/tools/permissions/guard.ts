/**
 * The workspace's deny rules held by the tools themselves, on every surface that reaches them (an
 * agent's run, Caxton's MCP endpoint, a direct call): a denied call is refused before it runs,
 * and searches (Glob, Grep, LS) leave out what a `Read(...)` deny rule names. Ask rules and modes
 * belong to an agent's run and are judged there (src/execution/runs/approval.ts).
 */
import type { AuditedTool } from '../audited.js';
import { toolError } from '../audited.js';
import { decide, deniedMessage, type PermissionSet, subjectOf } from './rules.js';

/** `tool` refusing the calls a deny rule of `set` covers. */
export function deniedBy(tool: AuditedTool, set: PermissionSet): AuditedTool {
  if (set.deny.length === 0) return tool;
  const denyOnly: PermissionSet = {
    allow: [],
    ask: [],
    deny: set.deny,
    ...(set.root !== undefined && { root: set.root }),
  };
  return {
    ...tool,
    async invoke(args, ctx) {
      const d = decide(denyOnly, tool.name, await subjectOf(tool.name, args, set.root), undefined);
      if (d.decision === 'deny') return toolError(deniedMessage(tool.name, d), 'denied');
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
