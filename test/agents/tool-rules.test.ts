/**
 * A TOML or JSON agent takes Claude Code permission rules where it lists tools, as a Markdown
 * agent does: `tools` entries with a specifier grant the tool and pre-approve matching calls,
 * `disallowed_tools` refuses, rules in `[execution] require_approval` ask, `permission_mode` sets
 * the mode; a bad rule or mode is an error naming the file, the field, its line and what to write.
 */
import { describe, expect, it } from 'vitest';
import { parseAgent, type ParseResult } from '../../src/agents/index.js';
import { agentPermissions } from '../../src/execution/runs/approval.js';

function ok(r: ParseResult) {
  if (!r.ok) throw new Error(`expected the agent to parse, got errors: ${JSON.stringify(r.errors, null, 2)}`);
  return r;
}

const ws = { allow: [], deny: [], ask: [], root: '/ws', bypassAllowed: false };

describe('a TOML agent with permission rules', () => {
  it('grants the tools its rules name and keeps the rules for its runs', () => {
    const r = ok(
      parseAgent(
        `name = "dev"
system_prompt = "Test."
tools = ["Bash(npm test:*)", "Read", "workspace.write", "mcp__github"]
disallowed_tools = ["Bash(git push:*)", "mcp__github__delete_repo"]
permission_mode = "acceptEdits"

[execution]
require_approval = ["Bash(npm publish:*)", "Write"]
`,
        { file: 'agents/dev.toml' },
      ),
    );
    const def = r.definition;
    expect(def.tools).toEqual(['workspace.bash', 'workspace.read', 'workspace.write', 'github.*']);
    expect(def.execution.require_approval).toEqual(['workspace.write']);
    expect(def.metadata).toMatchObject({
      tool_rules: ['Bash(npm test:*)'],
      disallowed_tools: ['Bash(git push:*)', 'mcp__github__delete_repo'],
      approval_rules: ['Bash(npm publish:*)'],
      permission_mode: 'acceptEdits',
    });
    expect(r.warnings.map((w) => [w.code, w.field, w.line])).toContainEqual(['unenforced_tool_rule', 'tools.0', 3]);
    const p = agentPermissions(def, ws);
    expect(p?.mode).toBe('acceptEdits');
    expect(p?.set.allow).toEqual([{ rule: 'Bash(npm test:*)', source: 'agent dev tools' }]);
    expect(p?.set.deny).toEqual([
      { rule: 'Bash(git push:*)', source: 'agent dev disallowed_tools' },
      { rule: 'mcp__github__delete_repo', source: 'agent dev disallowed_tools' },
    ]);
    expect(p?.set.ask).toEqual([{ rule: 'Bash(npm publish:*)', source: 'agent dev execution.require_approval' }]);
  });

  it('names the file, field and line of a bad rule or mode, and what to write', () => {
    const r = parseAgent(
      `name = "dev"
system_prompt = "Test."
tools = ["Bash(npm test:*", "Read (x)"]
disallowed_tools = ["Bash (rm)"]
permission_mode = "yolo"
`,
      { file: 'agents/dev.toml' },
    );
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const found = r.errors.map((e) => [e.file, e.field, e.line, e.code]);
    expect(found).toEqual(
      expect.arrayContaining([
        ['agents/dev.toml', 'tools.0', 3, 'invalid_rule'],
        ['agents/dev.toml', 'tools.1', 3, 'invalid_rule'],
        ['agents/dev.toml', 'disallowed_tools.0', 4, 'invalid_rule'],
        ['agents/dev.toml', 'permission_mode', 5, 'invalid_value'],
      ]),
    );
    const mode = r.errors.find((e) => e.field === 'permission_mode')!;
    expect(mode.message).toBe(
      'permission_mode "yolo" is not a permission mode; expected one of default, acceptEdits, plan, bypassPermissions',
    );
    expect(mode.suggestion).toBe('e.g. permission_mode = "acceptEdits"');
  });

  it('a permission_mode written under a table is named as misplaced, not lost', () => {
    const r = parseAgent(`name = "dev"\nsystem_prompt = "x"\n[llm]\nmodel = "m"\npermission_mode = "plan"\n`, {
      file: 'a.toml',
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors.map((e) => [e.code, e.field, e.line])).toEqual([['misplaced_key', 'llm.permission_mode', 5]]);
  });

  it('a JSON agent reads the same keys; [metadata] cannot claim them', () => {
    const def = ok(
      parseAgent(
        JSON.stringify({
          name: 'j',
          system_prompt: 'x',
          tools: ['WebFetch(domain:example.com)'],
          permission_mode: 'plan',
          metadata: { tool_rules: ['Bash'], approval_rules: ['Bash(ls:*)'] },
        }),
        { file: 'j.json' },
      ),
    ).definition;
    expect(def.tools).toEqual(['web.fetch']);
    expect(def.metadata).toEqual({ tool_rules: ['WebFetch(domain:example.com)'], permission_mode: 'plan' });
    expect(agentPermissions(def, ws)?.mode).toBe('plan');
    // bypassPermissions only where the operator allows it.
    const bypass = ok(
      parseAgent('name = "b"\nsystem_prompt = "x"\npermission_mode = "bypassPermissions"\n'),
    ).definition;
    expect(agentPermissions(bypass, ws)?.mode).toBe('default');
    expect(agentPermissions(bypass, { ...ws, bypassAllowed: true })?.mode).toBe('bypassPermissions');
  });

  it('a Markdown agent’s unknown permissionMode is a warning: it runs with no mode of its own', () => {
    const r = ok(parseAgent('---\nname: m\ndescription: d\npermissionMode: yolo\n---\nHi.\n', { file: 'm.md' }));
    expect(r.warnings.map((w) => [w.code, w.field, w.line])).toContainEqual(['invalid_value', 'permissionMode', 4]);
  });
});

describe('a Markdown agent’s disallowedTools', () => {
  it('a rule with a specifier leaves the tool granted and refuses what it covers; a bare name removes the tool', () => {
    const def = ok(
      parseAgent(
        '---\nname: m\ndescription: d\ntools: Bash, Read, Agent(worker)\ndisallowedTools: Bash(git push:*), Agent(worker), Read\n---\nHi.\n',
        {
          file: 'm.md',
        },
      ),
    ).definition;
    expect(def.tools).toEqual(['workspace.bash']);
    expect(agentPermissions(def, ws)?.set.deny).toEqual([
      { rule: 'Bash(git push:*)', source: 'agent m disallowedTools' },
      { rule: 'Agent(worker)', source: 'agent m disallowedTools' },
    ]);
  });
});
