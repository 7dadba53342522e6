/**
 * Claude Code's permission rules and modes over Caxton's tool calls (docs/workspace.md,
 * "Permission rules"; ADR 0124): the rules and their judgement (rules.ts) and the workspace's
 * rules from caxton.toml and a Claude Code settings file (settings.ts).
 */
export {
  concerns,
  decide,
  deniedMessage,
  EDIT_TOOLS,
  parseRule,
  PERMISSION_MODES,
  ruleMatches,
  subjectOf,
  type CallSubject,
  type Decision,
  type PermissionMode,
  type PermissionRule,
  type PermissionSet,
} from './rules.js';
export { effectiveMode, workspacePermissions, type WorkspacePermissions } from './settings.js';
export { deniedBy, readDeniedBy, refusalOf } from './guard.js';
