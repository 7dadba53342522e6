/**
 * An agent's tool lists and permission mode, read the same way whatever the file's format: a list
 * entry may be a Caxton tool (`workspace.bash`), a Claude Code tool (`Bash`, `mcp__github`) or a
 * Claude Code permission rule (`Bash(npm test:*)`, `Read(./secrets/**)`): the tool is granted and
 * the rule kept for the run's judgement (ADR 0124, docs/workspace.md "Permission rules"). A
 * Markdown (Claude Code) file writes `tools`, `disallowedTools` and `permissionMode`; a TOML or
 * JSON file `tools`, `disallowed_tools`, `permission_mode` and rules in `[execution]
 * require_approval`. Claude Code files are loaded as Claude Code loads them (what it ignores is a
 * warning); in a Caxton file the same findings are errors.
 */
import { CLAUDE_TOOLS_REFUSED, mapClaudeTool, mapClaudeTools, parseToolEntry } from './claude.js';
import { TOOL_NAME_RE } from './definition.js';
import { isRecord } from './parse-raw.js';
import { isPermissionMode, parseRule, PERMISSION_MODES } from '../shared/permission-syntax.js';

/**
 * The metadata keys a TOML or JSON agent's rules are kept under (the reader sets them from the
 * agent's own keys; a file cannot claim them through `[metadata]`): the allow rules of `tools`,
 * `disallowed_tools` as written, and the ask rules of `require_approval`. The mode is
 * `permission_mode`, as a Markdown file's is `permissionMode`.
 */
export const TOOL_RULES_KEY = 'tool_rules';
export const DISALLOWED_TOOLS_KEY = 'disallowed_tools';
export const APPROVAL_RULES_KEY = 'approval_rules';
export const PERMISSION_MODE_KEY = 'permission_mode';

/** One finding about a list: `problem` when the list asks what cannot be done. */
export interface ToolListNote {
  code: string;
  message: string;
  suggestion: string;
  problem: boolean;
  /** The entry it is about, as written. */
  entry?: string;
}

export interface ToolListReading {
  tools: string[];
  /** Entries with no tool behind them (recorded in a Claude file's metadata). */
  dropped: string[];
  /** Agents `send_message` may address (`Agent(a, b)`); undefined: any. */
  sendTo?: string[];
  /** The permission rules among the entries (`Bash(npm test:*)`): allow rules for the run. */
  rules: string[];
  notes: ToolListNote[];
}

/** How the file's own keys are spelled, for the notes. */
interface Spelling {
  claude: boolean;
  disallowed: string;
  mode: string;
}
const CLAUDE: Spelling = { claude: true, disallowed: 'disallowedTools', mode: 'permissionMode' };
const CAXTON: Spelling = { claude: false, disallowed: 'disallowed_tools', mode: 'permission_mode' };

/** Reads a tool list less what `disallowed` removes (Claude names mapped, rules kept as rules). */
export function readToolList(list: readonly string[], disallowed: readonly string[], claude: boolean): ToolListReading {
  const words = claude ? CLAUDE : CAXTON;
  const mapped = mapClaudeTools(list, disallowed);
  const notes: ToolListNote[] = [];
  const dropped = [...mapped.dropped];
  const tools: string[] = [];
  for (const t of mapped.tools) {
    // A Caxton file's bad name is left for the schema, which names the entry.
    if (TOOL_NAME_RE.test(t) || !claude) tools.push(t);
    else {
      dropped.push(t);
      notes.push({
        code: 'unknown_tool',
        message: `tools entry "${t}" is not a tool name; it is ignored (as Claude Code ignores tools it does not know)`,
        suggestion: 'tool names are letters, digits, "_", "-", "." (e.g. Read, mcp__github__create_issue)',
        problem: true,
        entry: t,
      });
    }
  }
  for (const bad of mapped.invalid) {
    dropped.push(bad.entry);
    notes.push({
      code: claude ? 'unknown_tool' : 'invalid_rule',
      message: `tools entry "${bad.entry}" ${claude ? 'is ignored' : 'cannot be read'}: ${bad.reason}`,
      suggestion: claude ? 'e.g. tools: Read, Agent(worker, reviewer)' : 'e.g. tools = ["Read", "Bash(npm test:*)"]',
      problem: true,
      entry: bad.entry,
    });
  }
  for (const d of mapped.dropped) {
    const reason = Object.hasOwn(CLAUDE_TOOLS_REFUSED, d) ? CLAUDE_TOOLS_REFUSED[d] : undefined;
    notes.push(
      reason !== undefined
        ? {
            code: 'unsupported_tool',
            message: `tools entry "${d}" is not offered: ${reason}`,
            suggestion: `remove "${d}" from tools`,
            problem: true,
            entry: d,
          }
        : {
            code: 'unmapped_tool',
            message: `tools entry "${d}" is a Claude Code tool with no Caxton counterpart: the agent runs without it`,
            suggestion: `remove "${d}" from tools (docs/agent-format.md lists the tools Caxton maps)`,
            problem: true,
            entry: d,
          },
    );
  }
  const rules: string[] = [];
  for (const u of mapped.unenforced) {
    const parsed = parseRule(u);
    if ('error' in parsed) {
      notes.push({
        code: 'invalid_rule',
        message: `tools entry ${parsed.error}`,
        suggestion:
          'write the tool, then the specifier in parentheses: Bash(npm test:*), Read(./src/**), WebFetch(domain:example.com)',
        problem: true,
        entry: u,
      });
      continue;
    }
    rules.push(u.trim());
    notes.push({
      code: 'unenforced_tool_rule',
      message: `tools entry "${u}": the agent gets the whole tool; the rule in parentheses only pre-approves matching calls, which matters where calls are otherwise asked for (${words.mode} "default", ask rules)`,
      suggestion: `to refuse the rest, name it in ${words.disallowed} or [workspace.permissions] deny (docs/workspace.md, "Permission rules")`,
      problem: false,
      entry: u,
    });
  }
  const out: ToolListReading = { tools, dropped, rules, notes };
  if (mapped.sendTo !== undefined) out.sendTo = mapped.sendTo;
  return out;
}

/** The finding for a mode that is not one, or undefined when `v` is a mode. */
export function permissionModeNote(v: unknown, claude: boolean): ToolListNote | undefined {
  if (isPermissionMode(v)) return undefined;
  const key = claude ? CLAUDE.mode : CAXTON.mode;
  return {
    code: 'invalid_value',
    message: `${key} ${JSON.stringify(v)} is not a permission mode; expected one of ${PERMISSION_MODES.join(', ')}`,
    suggestion: claude ? `e.g. ${key}: acceptEdits` : `e.g. ${key} = "acceptEdits"`,
    problem: true,
  };
}

/** A finding of a TOML or JSON file, at the field it is about. */
export interface FieldNote {
  path: (string | number)[];
  note: ToolListNote;
}

/**
 * Reads a TOML or JSON agent's tool lists and mode in place, before the schema: `tools` mapped
 * (its rules kept under TOOL_RULES_KEY), `disallowed_tools` and `permission_mode` moved into
 * metadata, the rules of `[execution] require_approval` moved out as ask rules. Values of the
 * wrong type are left for the schema to report.
 */
export function readCaxtonToolLists(doc: Record<string, unknown>): FieldNote[] {
  const found: FieldNote[] = [];
  const metadata = doc.metadata === undefined ? {} : isRecord(doc.metadata) ? doc.metadata : undefined;
  if (metadata !== undefined)
    for (const k of [TOOL_RULES_KEY, DISALLOWED_TOOLS_KEY, APPROVAL_RULES_KEY, PERMISSION_MODE_KEY]) delete metadata[k];
  const keep = (key: string, value: unknown) => {
    if (metadata === undefined) return;
    metadata[key] = value;
    doc.metadata = metadata;
  };

  let disallowed: string[] = [];
  if (doc.disallowed_tools !== undefined) {
    const raw = doc.disallowed_tools;
    delete doc.disallowed_tools;
    if (!Array.isArray(raw) || !raw.every((t) => typeof t === 'string'))
      found.push({
        path: ['disallowed_tools'],
        note: {
          code: 'invalid_type',
          message: 'disallowed_tools must be a list of tool names and permission rules',
          suggestion: 'e.g. disallowed_tools = ["workspace.write", "Bash(git push:*)"]',
          problem: true,
        },
      });
    else {
      raw.forEach((entry, i) => {
        const parsed = parseRule(entry);
        if ('error' in parsed)
          found.push({
            path: ['disallowed_tools', i],
            note: {
              code: 'invalid_rule',
              message: `disallowed_tools entry ${parsed.error}`,
              suggestion:
                'e.g. disallowed_tools = ["Bash(git push:*)", "Read(./secrets/**)", "mcp__github__delete_repo"]',
              problem: true,
            },
          });
      });
      disallowed = raw;
      keep(DISALLOWED_TOOLS_KEY, raw);
    }
  }

  const table = isRecord(doc.tools) ? doc.tools : undefined;
  const list = table ? table.available : doc.tools;
  if (Array.isArray(list) && list.every((t) => typeof t === 'string')) {
    const r = readToolList(list, disallowed, false);
    for (const note of r.notes) {
      const i = note.entry === undefined ? -1 : list.indexOf(note.entry);
      const at: (string | number)[] = table ? ['tools', 'available'] : ['tools'];
      found.push({ path: i < 0 ? at : [...at, i], note });
    }
    if (table) table.available = r.tools;
    else doc.tools = r.tools;
    if (r.rules.length > 0) keep(TOOL_RULES_KEY, r.rules);
    if (r.sendTo !== undefined) {
      const messaging = doc.messaging === undefined ? {} : doc.messaging;
      if (isRecord(messaging)) {
        const own = Array.isArray(messaging.send_to) ? (messaging.send_to as unknown[]) : [];
        doc.messaging = { ...messaging, send_to: [...new Set([...own, ...r.sendTo])] };
      }
    }
  }

  if (doc.permission_mode !== undefined) {
    const mode = doc.permission_mode;
    delete doc.permission_mode;
    const note = permissionModeNote(mode, false);
    if (note !== undefined) found.push({ path: ['permission_mode'], note });
    else keep(PERMISSION_MODE_KEY, mode);
  }

  const execution = isRecord(doc.execution) ? doc.execution : undefined;
  const approval = execution?.require_approval;
  if (execution && Array.isArray(approval) && approval.every((t) => typeof t === 'string')) {
    const tools: string[] = [];
    const ask: string[] = [];
    approval.forEach((entry, i) => {
      const e = parseToolEntry(entry);
      const parsed = parseRule(entry);
      if (e?.specifier !== undefined && e.specifier !== '') {
        if ('error' in parsed)
          found.push({
            path: ['execution', 'require_approval', i],
            note: {
              code: 'invalid_rule',
              message: `require_approval entry ${parsed.error}`,
              suggestion: 'e.g. require_approval = ["workspace.write", "Bash(git push:*)"]',
              problem: true,
            },
          });
        else ask.push(entry.trim());
        return;
      }
      // A Claude Code name asks for approval of the tool it maps to (`Bash` is workspace.bash).
      tools.push(mapClaudeTool(e?.name ?? entry) ?? entry);
    });
    execution.require_approval = tools;
    if (ask.length > 0) keep(APPROVAL_RULES_KEY, ask);
  }
  return found;
}
