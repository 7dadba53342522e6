/**
 * The words of Claude Code's permission rules (ADR 0124): what a rule looks like and the modes an
 * agent may run in. Here, below the agent readers and the tools, so that every reader checks a
 * rule or a mode as the judgement (src/tools/permissions/rules.ts) will read it.
 */

export const PERMISSION_MODES = ['default', 'acceptEdits', 'plan', 'bypassPermissions'] as const;
export type PermissionMode = (typeof PERMISSION_MODES)[number];

const RULE_RE = /^([A-Za-z_*][A-Za-z0-9_.*-]*)(?:\((.*)\))?$/s;

/** The tool and specifier of a rule, or why it is not one. */
export function parseRule(text: string): { tool: string; specifier?: string } | { error: string } {
  const m = RULE_RE.exec(text.trim());
  if (!m)
    return {
      error: `"${text}" is not a permission rule: expected Tool or Tool(specifier), e.g. "Bash(npm test:*)", "Read(./secrets/**)", "mcp__github"`,
    };
  if (m[2] !== undefined && m[2].trim() === '') return { tool: m[1]! };
  return m[2] === undefined ? { tool: m[1]! } : { tool: m[1]!, specifier: m[2].trim() };
}

/** Whether `v` names a permission mode. */
export function isPermissionMode(v: unknown): v is PermissionMode {
  return typeof v === 'string' && (PERMISSION_MODES as readonly string[]).includes(v);
}
