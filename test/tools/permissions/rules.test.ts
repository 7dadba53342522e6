/**
 * Claude Code's permission rules over Caxton's calls: the rule forms (Bash prefix, exact and
 * wildcard; Read/Edit path globs; WebFetch domains; mcp__ names), deny before ask before allow,
 * the modes, the settings file imported and its mistakes named, and the workspace tools refusing
 * what a deny rule covers (searches leaving it out) on a real workspace.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { serverConfigSchema } from '../../../src/config/index.js';
import {
  decide,
  deniedBy,
  effectiveMode,
  subjectOf,
  workspacePermissions,
  type PermissionMode,
  type PermissionSet,
} from '../../../src/tools/permissions/index.js';
import { agentPermissions } from '../../../src/execution/runs/approval.js';
import { ctx, tempDir, tools } from '../workspace/helpers.js';

const rules = (allow: string[], deny: string[] = [], ask: string[] = [], root = '/ws'): PermissionSet => ({
  allow: allow.map((rule) => ({ rule, source: 'test allow' })),
  deny: deny.map((rule) => ({ rule, source: 'test deny' })),
  ask: ask.map((rule) => ({ rule, source: 'test ask' })),
  root,
});

async function judge(set: PermissionSet, tool: string, args: Record<string, unknown>, mode?: PermissionMode) {
  return decide(set, tool, await subjectOf(tool, args, set.root), mode).decision;
}

describe('the rule forms', () => {
  it('Bash: an argument known only when the line runs meets deny and ask rules, never an allow rule', async () => {
    const set = rules(['Bash(git:*)', 'Bash(npm test)'], ['Bash(rm -rf:*)'], ['Bash(git push:*)']);
    const bash = (command: string) => judge(set, 'workspace.bash', { command });
    expect(await bash('C=push; git $C origin')).toBe('ask');
    expect(await bash('git "$(printf push)"')).toBe('ask');
    expect(await bash('F=-rf; rm $F /tmp/x')).toBe('deny');
    expect(await bash('git status $X')).toBe('allow');
    expect(await bash('T=test; npm $T')).toBe('none');
    expect(await bash('gitk $X')).toBe('none');
  });

  it('Bash: prefix at a word boundary, exact, wildcards, every command of a line', async () => {
    const set = rules(['Bash(npm test:*)', 'Bash(git status)', 'Bash(git log * --oneline)']);
    const bash = (command: string) => judge(set, 'workspace.bash', { command });
    expect(await bash('npm test')).toBe('allow');
    expect(await bash('npm test -- --watch')).toBe('allow');
    expect(await bash('npm testing')).toBe('none');
    expect(await bash('git status')).toBe('allow');
    expect(await bash('git status -s')).toBe('none');
    expect(await bash('git log -n 3 --oneline')).toBe('allow');
    // A line is allowed only when each of its commands is; a deny or ask rule needs one.
    expect(await bash('npm test && git status')).toBe('allow');
    expect(await bash('npm test && rm -rf x')).toBe('none');
    const guarded = rules(['Bash'], ['Bash(rm:*)'], ['Bash(git push:*)']);
    expect(await judge(guarded, 'workspace.bash', { command: 'ls && (cd x; rm y)' })).toBe('deny');
    expect(await judge(guarded, 'workspace.bash', { command: 'ls; git push origin main' })).toBe('ask');
    expect(await judge(guarded, 'workspace.bash', { command: 'echo "git push"' })).toBe('allow');
  });

  it('Read and Edit: gitignore-style paths relative to the workspace; Read covers the searches, Edit every writing tool', async () => {
    const set = rules([], ['Read(./secrets/**)', 'Edit(*.lock)', 'Read(//etc/**)']);
    expect(await judge(set, 'workspace.read', { file_path: 'secrets/key.txt' })).toBe('deny');
    expect(await judge(set, 'workspace.read', { file_path: '/ws/secrets/a/b.txt' })).toBe('deny');
    expect(await judge(set, 'workspace.read', { file_path: 'src/secrets.txt' })).toBe('none');
    expect(await judge(set, 'workspace.grep', { pattern: 'x', path: 'secrets' })).toBe('deny');
    expect(await judge(set, 'workspace.ls', { path: 'secrets' })).toBe('deny');
    expect(await judge(set, 'workspace.ls', { path: '.' })).toBe('none');
    expect(await judge(set, 'workspace.write', { file_path: 'deep/dir/package.lock' })).toBe('deny');
    expect(await judge(set, 'workspace.multi_edit', { file_path: 'yarn.lock' })).toBe('deny');
    expect(await judge(set, 'workspace.read', { file_path: 'yarn.lock' })).toBe('none');
  });

  it('WebFetch domains, mcp__ servers and tools, Caxton names and bare tools', async () => {
    const set = rules([], ['WebFetch(domain:evil.example)', 'mcp__git__git_push', 'mcp__db', 'workspace.write']);
    expect(await judge(set, 'web.fetch', { url: 'https://evil.example/x' })).toBe('deny');
    expect(await judge(set, 'web.fetch', { url: 'https://good.example/x' })).toBe('none');
    expect(await judge(set, 'git.git_push', {})).toBe('deny');
    expect(await judge(set, 'git.git_diff', {})).toBe('none');
    expect(await judge(set, 'db.query', {})).toBe('deny');
    expect(await judge(set, 'workspace.write', { file_path: 'a' })).toBe('deny');
  });

  it('deny wins over ask and allow, ask over allow, whatever the order and specificity', async () => {
    const set = rules(['Bash(git push origin main)'], ['Bash(git push --force:*)'], ['Bash(git push:*)']);
    expect(await judge(set, 'workspace.bash', { command: 'git push origin main' })).toBe('ask');
    expect(await judge(set, 'workspace.bash', { command: 'git push --force origin' })).toBe('deny');
    expect(await judge(rules(['Bash'], ['Bash']), 'workspace.bash', { command: 'ls' })).toBe('deny');
  });
});

describe('the modes', () => {
  const none = rules([]);
  it('default asks for Bash, edits and fetches; acceptEdits lets edits run; plan refuses what changes; no mode runs', async () => {
    expect(await judge(none, 'workspace.bash', { command: 'ls' }, 'default')).toBe('ask');
    expect(await judge(none, 'workspace.edit', { file_path: 'a' }, 'default')).toBe('ask');
    expect(await judge(none, 'workspace.read', { file_path: 'a' }, 'default')).toBe('none');
    expect(await judge(none, 'workspace.edit', { file_path: 'a' }, 'acceptEdits')).toBe('none');
    expect(await judge(none, 'workspace.bash', { command: 'ls' }, 'acceptEdits')).toBe('ask');
    expect(await judge(rules(['Bash']), 'workspace.bash', { command: 'ls' }, 'plan')).toBe('deny');
    expect(await judge(none, 'workspace.grep', { pattern: 'x' }, 'plan')).toBe('none');
    expect(await judge(none, 'workspace.bash', { command: 'ls' }, undefined)).toBe('none');
    expect(await judge(rules(['Bash(ls)']), 'workspace.bash', { command: 'ls' }, 'default')).toBe('allow');
  });

  it('bypassPermissions only when the operator allows it; an agent without a mode takes the settings file’s', () => {
    expect(effectiveMode('bypassPermissions', { bypassAllowed: false })).toBe('default');
    expect(effectiveMode('bypassPermissions', { bypassAllowed: true })).toBe('bypassPermissions');
    expect(effectiveMode(undefined, { bypassAllowed: false, defaultMode: 'plan' })).toBe('plan');
    expect(effectiveMode('acceptEdits', { bypassAllowed: false, defaultMode: 'plan' })).toBe('acceptEdits');
    expect(effectiveMode('nonsense', { bypassAllowed: false })).toBeUndefined();
  });

  it('an agent’s own tools and disallowedTools with a specifier join the workspace’s rules', () => {
    const ws = { ...rules([]), bypassAllowed: false };
    const p = agentPermissions(
      {
        name: 'a',
        metadata: {
          permissionMode: 'default',
          claude_tools: ['Read', 'Bash(npm test:*)'],
          claude_disallowed_tools: ['Bash(rm:*)'],
        },
      },
      ws,
    );
    expect(p?.mode).toBe('default');
    expect(p?.set.allow.map((r) => r.rule)).toEqual(['Bash(npm test:*)']);
    expect(p?.set.deny).toEqual([{ rule: 'Bash(rm:*)', source: 'agent a disallowedTools' }]);
    expect(agentPermissions({ name: 'b', metadata: {} }, ws)).toBeUndefined();
  });
});

describe('the workspace settings', () => {
  const config = (root: string, permissions: Record<string, unknown>) =>
    serverConfigSchema.parse({ workspace: { path: root, permissions } }).workspace;

  it('imports permissions.allow/deny/ask/defaultMode from the Claude Code settings file named', () => {
    const root = tempDir();
    mkdirSync(join(root, '.claude'));
    writeFileSync(
      join(root, '.claude', 'settings.json'),
      JSON.stringify({
        permissions: {
          allow: ['Bash(npm test:*)'],
          deny: ['Read(./secrets/**)'],
          ask: ['Bash(git push:*)'],
          defaultMode: 'acceptEdits',
        },
      }),
    );
    const p = workspacePermissions(config(root, { claude_settings: '.claude/settings.json', deny: ['Bash(rm:*)'] }));
    expect(p.allow).toEqual([{ rule: 'Bash(npm test:*)', source: '.claude/settings.json permissions.allow' }]);
    expect(p.deny.map((r) => r.rule)).toEqual(['Bash(rm:*)', 'Read(./secrets/**)']);
    expect(p.ask.map((r) => r.rule)).toEqual(['Bash(git push:*)']);
    expect(p.defaultMode).toBe('acceptEdits');
  });

  it('names the file and the entry of a mistake', () => {
    const root = tempDir();
    mkdirSync(join(root, '.claude'));
    const file = join(root, '.claude', 'settings.json');
    const load = () => workspacePermissions(config(root, { claude_settings: '.claude/settings.json' }));
    expect(load).toThrow(/workspace\.permissions\.claude_settings: cannot read .*settings\.json: ENOENT/);
    writeFileSync(file, '{ "permissions": ');
    expect(load).toThrow(/is not JSON/);
    writeFileSync(file, JSON.stringify({ permissions: { deny: ['Read(x)', 'not a rule!'] } }));
    expect(load).toThrow(/permissions\.deny\[1\]: "not a rule!" is not a permission rule/);
    writeFileSync(file, JSON.stringify({ permissions: { defaultMode: 'yolo' } }));
    expect(load).toThrow(/permissions\.defaultMode must be one of default, acceptEdits, plan, bypassPermissions/);
    const bad = serverConfigSchema.safeParse({ workspace: { permissions: { deny: ['Bash(('] } } });
    expect(bad.success).toBe(false);
  });

  it('the workspace tools refuse what a deny rule covers, and searches leave it out', async () => {
    const root = tempDir();
    mkdirSync(join(root, 'secrets'));
    writeFileSync(join(root, 'secrets', 'key.txt'), 'password=hunter2\n');
    writeFileSync(join(root, 'notes.txt'), 'password is elsewhere\n');
    const t = tools({ path: root, write: true, permissions: { deny: ['Read(./secrets/**)', 'Edit(notes.txt)'] } });
    const read = await t('read').invoke({ file_path: 'secrets/key.txt' }, ctx());
    expect(read).toMatchObject({ is_error: true });
    expect(read.content).toBe(
      'Permission to use Read has been denied: the rule "Read(./secrets/**)" (caxton.toml [workspace.permissions] deny) refuses this call.',
    );
    const grep = await t('grep').invoke({ pattern: 'password', output_mode: 'content' }, ctx());
    expect(grep.content).toContain('notes.txt');
    expect(grep.content).not.toContain('hunter2');
    const glob = await t('glob').invoke({ pattern: '**/*.txt' }, ctx());
    expect(glob.content).not.toContain('key.txt');
    expect((await t('ls').invoke({ path: 'secrets' }, ctx())).is_error).toBe(true);
    expect((await t('write').invoke({ file_path: 'notes.txt', content: 'x' }, ctx())).content).toContain(
      'the rule "Edit(notes.txt)"',
    );
    expect((await t('read').invoke({ file_path: 'notes.txt' }, ctx())).content).toContain('password is elsewhere');
  });
});

describe('the deny rules on other tools', () => {
  it('web.fetch refuses a denied domain before it fetches, and passes others on', async () => {
    const calls: unknown[] = [];
    const fetchTool = deniedBy(
      {
        name: 'web.fetch',
        description: 'fetch',
        input_schema: { type: 'object' },
        invoke: async (args) => {
          calls.push(args);
          return { content: 'fetched' };
        },
      },
      rules([], ['WebFetch(domain:evil.example)']),
    );
    const refused = await fetchTool.invoke({ url: 'https://evil.example/a' }, ctx());
    expect(refused).toMatchObject({ is_error: true, outcome: 'denied' });
    expect(refused.content).toContain('the rule "WebFetch(domain:evil.example)"');
    expect(await fetchTool.invoke({ url: 'https://good.example/a' }, ctx())).toEqual({ content: 'fetched' });
    expect(calls).toEqual([{ url: 'https://good.example/a' }]);
  });
});
