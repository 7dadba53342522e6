/**
 * The workspace tools: Claude Code's file and shell tools (Read, Write, Edit, MultiEdit, Glob,
 * Grep, LS, Bash) as host tools `workspace.*`, confined to the directory `[workspace] path` grants
 * (docs/workspace.md, ADR 0049). Each call is audited under server "workspace".
 */
import type { WorkspaceConfig } from '../../config/index.js';
import { audited } from '../audited.js';
import type { Tool } from '../types.js';
import type { ToolAuditSink } from '../../audit/index.js';
import { bashTool } from './bash.js';
import { editTool, globTool, lsTool, multiEditTool, readTool, writeTool } from './file-tools.js';
import { Workspace } from './grant.js';
import { grepTool } from './grep.js';
import { deniedBy, readDeniedBy, workspacePermissions } from '../permissions/index.js';

export const WORKSPACE_GROUP = 'workspace';

export { inside, Workspace, WorkspaceError, NOT_GRANTED, WRITE_NOT_GRANTED } from './grant.js';
export { BASH_NOT_GRANTED, checkAllowlist, probeSandbox, sandboxArgs, SANDBOX_ENV, type SandboxProbe } from './bash.js';
export { processLimitBy } from './bash-limits.js';
export {
  inspectCommandLine,
  partsAtLeast,
  parseCommandLine,
  MAX_COMMAND_BYTES,
  type ShellCommand,
  type ShellInspection,
  type ShNode,
  type ShSyntax,
} from './shell.js';
export { Glob, GlobError, matchSegment } from './glob.js';
export { DEFAULT_READ_LINES, MAX_LINE_CHARS, readWorkspaceFile, type WorkspaceFile } from './file-tools.js';

/**
 * The eight workspace tools over `config`, audited into `audit`. They are always registered: without
 * a grant each answers an error naming the setting. The deny rules of `[workspace.permissions]`
 * (and its Claude Code settings file) hold on every call; a bad settings file throws `invalid_config`.
 */
export function workspaceTools(
  config: WorkspaceConfig,
  audit: ToolAuditSink | undefined,
  privateDirs: readonly string[] = [],
): Tool[] {
  const ws = new Workspace(config, privateDirs);
  const permissions = workspacePermissions(config);
  ws.readDenied = readDeniedBy(permissions);
  return [
    readTool(ws),
    writeTool(ws),
    editTool(ws),
    multiEditTool(ws),
    globTool(ws),
    grepTool(ws),
    lsTool(ws),
    bashTool(ws),
  ].map((t) => audited(WORKSPACE_GROUP, deniedBy(t, permissions), audit));
}

/**
 * The grant as the workspace tools see it, for reading back what they wrote (readWorkspaceFile):
 * the same private directories and the same read deny rules. Undefined when no workspace is granted.
 */
export function workspaceGrant(config: WorkspaceConfig, privateDirs: readonly string[] = []): Workspace | undefined {
  if (config.path === undefined) return undefined;
  const ws = new Workspace(config, privateDirs);
  ws.readDenied = readDeniedBy(workspacePermissions(config));
  return ws;
}
