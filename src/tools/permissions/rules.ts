/**
 * Claude Code's permission rules (ADR 0124) judged against Caxton's tool calls: `Tool`,
 * `Tool(specifier)`, `Bash(npm test:*)` (a prefix at a word boundary), `Bash(npm test)` (exact),
 * `Bash(git * main)` (wildcards), `Read(./secrets/**)` and `Edit(src/**)` (gitignore-style paths),
 * `WebFetch(domain:example.com)`, `mcp__server` / `mcp__server__tool`; Caxton's own names
 * (`workspace.bash`, `fs.*`) are accepted as bare tools too. Deny is looked at first, then ask,
 * then allow; the first list with a match decides, whatever the order or specificity of rules.
 * With no match the agent's permission mode decides (none: the call runs, as Caxton's grants say).
 *
 * Rules travel with a job as plain data (they are structured-cloned into worker and process
 * isolation), so everything here is data in, decision out.
 */
import { homedir } from 'node:os';
import { isAbsolute, relative, resolve } from 'node:path';
import { allowsTool } from '../tool-registry.js';
import { Glob } from '../workspace/glob.js';
import { DYNAMIC_WORD, parseCommandLine } from '../workspace/shell.js';
import { parseRule, type PermissionMode } from '../../shared/permission-syntax.js';

export { isPermissionMode, parseRule, PERMISSION_MODES, type PermissionMode } from '../../shared/permission-syntax.js';

/** One rule and where it was written (named in refusals). */
export interface PermissionRule {
  rule: string;
  source: string;
}

export interface PermissionSet {
  allow: PermissionRule[];
  deny: PermissionRule[];
  ask: PermissionRule[];
  /** The real path of the workspace: relative path rules are relative to it. */
  root?: string;
}

export type Decision =
  | { decision: 'deny' | 'ask' | 'allow'; rule: PermissionRule }
  | { decision: 'deny' | 'ask'; mode: PermissionMode }
  | { decision: 'none' };

/** Claude Code's name for each of Caxton's own tools. */
const CLAUDE_NAME: Record<string, string> = {
  'workspace.bash': 'Bash',
  'workspace.read': 'Read',
  'workspace.write': 'Write',
  'workspace.edit': 'Edit',
  'workspace.multi_edit': 'MultiEdit',
  'workspace.glob': 'Glob',
  'workspace.grep': 'Grep',
  'workspace.ls': 'LS',
  'web.fetch': 'WebFetch',
  'web.search': 'WebSearch',
  'todo.write': 'TodoWrite',
};
/** Tools a `Read(...)` rule covers (Claude Code applies Read rules to its search tools too). */
const READ_TOOLS = new Set(['workspace.read', 'workspace.glob', 'workspace.grep', 'workspace.ls']);
/** Tools an `Edit(...)` rule covers: every tool that changes files. */
export const EDIT_TOOLS: ReadonlySet<string> = new Set(['workspace.write', 'workspace.edit', 'workspace.multi_edit']);
/** What plan mode lets run: tools that only read. */
const READ_ONLY = new Set([...READ_TOOLS, 'web.fetch', 'web.search', 'todo.write']);

/** Whether the rule's tool part names the tool of the call (before any specifier). */
function namesTool(ruleTool: string, tool: string): boolean {
  if (ruleTool === '*') return true;
  const claude = CLAUDE_NAME[tool];
  if (claude !== undefined) {
    if (ruleTool === claude) return true;
    if (ruleTool === 'Read' && READ_TOOLS.has(tool)) return true;
    if (ruleTool === 'Edit' && EDIT_TOOLS.has(tool)) return true;
  }
  if (ruleTool.startsWith('mcp__')) {
    const [server, name] = ruleTool.slice(5).split('__', 2) as [string, string | undefined];
    const dot = tool.indexOf('.');
    if (dot < 0 || tool.slice(0, dot) !== server) return false;
    return name === undefined || name === '*' || name === tool.slice(dot + 1);
  }
  return allowsTool([ruleTool], tool);
}

/** What a call's specifiers are judged against: the commands of a Bash line, a path, a host. */
export interface CallSubject {
  /** workspace.bash: each simple command as its words joined by spaces; undefined when the line cannot be read. */
  commands?: string[];
  /** The file tools: the path the call names, absolute. */
  path?: string;
  /** Whether the path is a directory the call searches below (glob, grep, ls). */
  tree?: boolean;
  /** web.fetch: the host of the URL. */
  host?: string;
}

/** What the rules look at in a call of `tool` with `args` (a Bash line is parsed on the parser's worker). */
export async function subjectOf(tool: string, args: Record<string, unknown>, root?: string): Promise<CallSubject> {
  if (tool === 'workspace.bash') {
    const parsed = typeof args.command === 'string' ? await parseCommandLine(args.command) : undefined;
    return parsed && 'commands' in parsed
      ? { commands: parsed.commands.map((c) => [c.name, ...c.args].join(' ')) }
      : {};
  }
  if (READ_TOOLS.has(tool) || EDIT_TOOLS.has(tool)) {
    const p = typeof args.file_path === 'string' ? args.file_path : typeof args.path === 'string' ? args.path : '';
    const base = root ?? process.cwd();
    return { path: p === '' ? base : resolve(base, p), tree: !EDIT_TOOLS.has(tool) && tool !== 'workspace.read' };
  }
  if (tool === 'web.fetch' && typeof args.url === 'string') {
    try {
      return { host: new URL(args.url).hostname.toLowerCase() };
    } catch {
      return {};
    }
  }
  return {};
}

/** `*` in a Bash rule matches any run of characters; `prefix:*` matches the prefix at a word boundary. */
function commandMatches(spec: string, command: string): boolean {
  if (spec.endsWith(':*')) {
    const prefix = spec.slice(0, -2);
    return command === prefix || command.startsWith(`${prefix} `);
  }
  if (!spec.includes('*')) return command === spec;
  // A single trailing " *" also matches the bare command ("ls *" matches "ls").
  if (spec.endsWith(' *') && spec.indexOf('*') === spec.length - 1 && command === spec.slice(0, -2)) return true;
  const parts = spec.split('*');
  let at = 0;
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (i === 0) {
      if (!command.startsWith(part)) return false;
      at = part.length;
    } else if (i === parts.length - 1) {
      return command.length - part.length >= at && command.endsWith(part);
    } else {
      const found = command.indexOf(part, at);
      if (found < 0) return false;
      at = found + part.length;
    }
  }
  return at === command.length;
}

/**
 * For deny and ask: whether `command` matches `spec` for some value of its words known only when
 * it runs (DYNAMIC_WORD), so `C=push; git $C` meets a rule on `git push`. The words before the
 * first such word must agree with the rule's literal head, the program name exactly.
 */
function commandCouldMatch(spec: string, command: string): boolean {
  if (commandMatches(spec, command)) return true;
  const cut = command.indexOf(DYNAMIC_WORD);
  if (cut < 0) return false;
  const known = command.slice(0, cut).trimEnd();
  const head = spec.endsWith(':*') ? spec.slice(0, -2) : spec.split('*')[0]!;
  const name = command.split(' ')[0]!;
  const headName = head.split(' ')[0]!;
  const nameAgrees = head.includes(' ') || !spec.includes('*') ? headName === name : name.startsWith(headName);
  return nameAgrees && (head === known || head.startsWith(`${known} `) || known.startsWith(head.trimEnd()));
}

/** A gitignore-style path rule against an absolute path: `//abs`, `~/home`, `/root-relative`, `./x` or `x` (the workspace). */
function pathMatches(spec: string, path: string, tree: boolean, root: string | undefined): boolean {
  let pattern = spec;
  let base = root ?? process.cwd();
  if (pattern.startsWith('//')) {
    base = '/';
    pattern = pattern.slice(2);
  } else if (pattern.startsWith('~/')) {
    base = homedir();
    pattern = pattern.slice(2);
  } else if (pattern.startsWith('/')) pattern = pattern.slice(1);
  else if (pattern.startsWith('./')) pattern = pattern.slice(2);
  const rel = relative(base, path).split('\\').join('/');
  if (rel.startsWith('..') || isAbsolute(rel)) return false;
  // A pattern naming a directory covers what is below it; a pattern with no "/" matches at any depth.
  const trimmed = pattern.replace(/\/+$/, '');
  const globs = [trimmed, `${trimmed}/**`];
  for (const g of globs) {
    let glob: Glob;
    try {
      glob = new Glob(g, { basenameAnywhere: !trimmed.includes('/') });
    } catch {
      return false;
    }
    if (rel === '' ? g === '**' : glob.matches(rel)) return true;
    // A search below a directory reaches what the rule names under it.
    if (tree && glob.matches(rel === '' ? 'x' : `${rel}/x`) && g.endsWith('**')) return true;
  }
  return false;
}

/** Whether `rule` covers this call. For a Bash line: `every` asks whether it covers each command (allow), else any (deny, ask). */
export function ruleMatches(
  rule: string,
  tool: string,
  subject: CallSubject,
  root: string | undefined,
  every: boolean,
): boolean {
  const parsed = parseRule(rule);
  if ('error' in parsed || !namesTool(parsed.tool, tool)) return false;
  const spec = parsed.specifier;
  if (spec === undefined || spec === '*') return true;
  if (tool === 'workspace.bash') {
    const cmds = subject.commands;
    if (cmds === undefined || cmds.length === 0) return false;
    return every ? cmds.every((c) => commandMatches(spec, c)) : cmds.some((c) => commandCouldMatch(spec, c));
  }
  if (subject.path !== undefined) return pathMatches(spec, subject.path, subject.tree === true, root);
  if (tool === 'web.fetch' && spec.startsWith('domain:')) {
    const d = spec.slice(7).toLowerCase();
    const h = subject.host;
    return h !== undefined && (h === d || (d.startsWith('*.') && h.endsWith(d.slice(1))));
  }
  return false;
}

/** What the mode says of a call no rule decided (undefined: it runs). */
function modeDecision(mode: PermissionMode | undefined, tool: string): 'deny' | 'ask' | undefined {
  if (mode === undefined || mode === 'bypassPermissions') return undefined;
  if (mode === 'plan') return READ_ONLY.has(tool) ? undefined : 'deny';
  if (READ_ONLY.has(tool) && tool !== 'web.fetch') return undefined;
  if (mode === 'acceptEdits' && EDIT_TOOLS.has(tool)) return undefined;
  return 'ask';
}

/** Deny, then ask, then allow; then the mode. Plan mode refuses a tool that changes things whatever allows it. */
export function decide(
  set: PermissionSet,
  tool: string,
  subject: CallSubject,
  mode: PermissionMode | undefined,
): Decision {
  for (const r of set.deny)
    if (ruleMatches(r.rule, tool, subject, set.root, false)) return { decision: 'deny', rule: r };
  if (mode === 'plan' && !READ_ONLY.has(tool)) return { decision: 'deny', mode };
  for (const r of set.ask) if (ruleMatches(r.rule, tool, subject, set.root, false)) return { decision: 'ask', rule: r };
  // A Bash line is allowed when each of its commands is allowed by some rule.
  const each =
    tool === 'workspace.bash' && subject.commands !== undefined ? subject.commands.map((c) => [c]) : [undefined];
  let allowedBy: PermissionRule | undefined;
  for (const cmds of each) {
    const one = cmds === undefined ? subject : { ...subject, commands: cmds };
    allowedBy = set.allow.find((r) => ruleMatches(r.rule, tool, one, set.root, true));
    if (allowedBy === undefined) break;
  }
  if (allowedBy !== undefined) return { decision: 'allow', rule: allowedBy };
  const m = modeDecision(mode, tool);
  return m === undefined ? { decision: 'none' } : { decision: m, mode: mode! };
}

/** The refusal a model reads for a denied call, naming the rule and where it was written. */
export function deniedMessage(tool: string, d: Decision): string {
  const name = CLAUDE_NAME[tool] ?? tool;
  if ('rule' in d)
    return `Permission to use ${name} has been denied: the rule "${d.rule.rule}" (${d.rule.source}) refuses this call.`;
  if ('mode' in d)
    return `Permission to use ${name} has been denied: the agent is in plan mode (permissionMode: plan), where only tools that read may run.`;
  return `Permission to use ${name} has been denied.`;
}

/** Whether any rule of `set` or the mode could matter for calls of `tool`. */
export function concerns(set: PermissionSet, mode: PermissionMode | undefined): boolean {
  return mode !== undefined || set.allow.length + set.deny.length + set.ask.length > 0;
}
