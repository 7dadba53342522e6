/**
 * The workspace's permission rules: `[workspace.permissions]` in caxton.toml, plus the
 * `permissions` of a Claude Code settings file the operator names there
 * (`claude_settings = ".claude/settings.json"`, relative to the workspace). Read once per
 * configuration; a file that is not JSON, or a rule that is not one, stops the start naming the
 * file and the entry.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import type { WorkspaceConfig } from '../../config/index.js';
import { CaxtonError } from '../../shared/errors.js';
import { parseRule, PERMISSION_MODES, type PermissionMode, type PermissionRule, type PermissionSet } from './rules.js';

export interface WorkspacePermissions extends PermissionSet {
  /** The settings file's `permissions.defaultMode`: the mode of agents that name none. */
  defaultMode?: PermissionMode;
  bypassAllowed: boolean;
}

const cache = new WeakMap<WorkspaceConfig, WorkspacePermissions>();

function bad(message: string): CaxtonError {
  return new CaxtonError('invalid_config', message);
}

/** The rules of `cfg` (memoised per configuration object). */
export function workspacePermissions(cfg: WorkspaceConfig): WorkspacePermissions {
  const known = cache.get(cfg);
  if (known) return known;
  const p = cfg.permissions;
  let root: string | undefined;
  if (cfg.path !== undefined)
    try {
      root = realpathSync(cfg.path);
    } catch {
      root = resolve(cfg.path);
    }
  const from = (list: readonly string[], key: string): PermissionRule[] =>
    list.map((rule) => ({ rule: rule.trim(), source: `caxton.toml [workspace.permissions] ${key}` }));
  const out: WorkspacePermissions = {
    allow: from(p.allow, 'allow'),
    deny: from(p.deny, 'deny'),
    ask: from(p.ask, 'ask'),
    ...(root !== undefined && { root }),
    bypassAllowed: p.bypass_allowed,
  };
  if (p.claude_settings !== undefined) {
    if (root === undefined)
      throw bad(
        'workspace.permissions.claude_settings: names a file in the workspace, and no [workspace] path is set: set path, or remove claude_settings',
      );
    const file = resolve(root, p.claude_settings);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw bad(
        `workspace.permissions.claude_settings: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw bad(`workspace.permissions.claude_settings: ${file} is not JSON: ${(e as Error).message}`);
    }
    const perms = (json as { permissions?: unknown } | null)?.permissions;
    if (perms !== undefined) {
      if (typeof perms !== 'object' || perms === null || Array.isArray(perms))
        throw bad(`workspace.permissions.claude_settings: ${file}: "permissions" must be an object`);
      const obj = perms as Record<string, unknown>;
      for (const key of ['allow', 'deny', 'ask'] as const) {
        const list = obj[key];
        if (list === undefined) continue;
        if (!Array.isArray(list))
          throw bad(`workspace.permissions.claude_settings: ${file}: permissions.${key} must be a list of rules`);
        list.forEach((rule, i) => {
          const parsed = typeof rule === 'string' ? parseRule(rule) : { error: 'expected a string' };
          if ('error' in parsed)
            throw bad(`workspace.permissions.claude_settings: ${file}: permissions.${key}[${i}]: ${parsed.error}`);
          out[key].push({ rule: (rule as string).trim(), source: `${p.claude_settings} permissions.${key}` });
        });
      }
      const mode = obj.defaultMode;
      if (mode !== undefined) {
        if (typeof mode !== 'string' || !(PERMISSION_MODES as readonly string[]).includes(mode))
          throw bad(
            `workspace.permissions.claude_settings: ${file}: permissions.defaultMode must be one of ${PERMISSION_MODES.join(', ')}`,
          );
        out.defaultMode = mode as PermissionMode;
      }
    }
  }
  cache.set(cfg, out);
  return out;
}

/** The mode an agent runs in: its own `permissionMode`, else the settings file's; bypassPermissions only when the operator allows it. */
export function effectiveMode(
  own: unknown,
  ws: Pick<WorkspacePermissions, 'defaultMode' | 'bypassAllowed'>,
): PermissionMode | undefined {
  const asked =
    typeof own === 'string' && (PERMISSION_MODES as readonly string[]).includes(own)
      ? (own as PermissionMode)
      : ws.defaultMode;
  if (asked === 'bypassPermissions' && !ws.bypassAllowed) return 'default';
  return asked;
}
