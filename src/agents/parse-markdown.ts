import type { Document, LineCounter } from 'yaml';
import { yaml } from './yaml.js';
import { CLAUDE_MEMORY_SCOPES, CLAUDE_MODEL_ALIASES, splitToolList, UNLISTED_TOOLS_KEY } from './claude.js';
import { permissionModeNote, readToolList } from './tool-lists.js';
import { parseFrontmatterYaml, splitFrontmatter, type FrontmatterYaml } from './frontmatter.js';
import type { SourceIssue as AgentIssue, Locator } from '../shared/issues.js';
import { MAX_INPUT_DEPTH } from '../shared/depth.js';
import { expandedSize, MAX_YAML_ALIASES, MAX_YAML_ALIAS_TOKENS, MAX_YAML_STRUCTURE_DEPTH, scanYaml } from './bounds.js';
import { isRecord, offsetToLineCol, tooDeepIssue, type Raw } from './parse-raw.js';

/**
 * Reads a Markdown agent with YAML frontmatter (the Claude Code subagent format): the frontmatter,
 * bounded before the YAML parser runs, its Claude Code keys mapped onto the agent document, and
 * the body as the system prompt.
 */
export function readMarkdown(
  text: string,
  at: (i: Omit<AgentIssue, 'file'>) => AgentIssue,
): Raw | { errors: AgentIssue[] } {
  const split = splitFrontmatter(text);
  if (!split.ok) return { errors: [at(frontmatterError(split))] };
  const { yaml: yamlText, body, bodyLine } = split;
  const outOfBounds = frontmatterBoundsIssue(yamlText);
  if (outOfBounds) return { errors: [at(outOfBounds)] };
  const parsed = parseFrontmatterYaml(yamlText);
  const { doc: ydoc, lineCounter } = parsed;
  const issues: AgentIssue[] = [];
  if (!('changed' in parsed)) {
    return {
      // The first few errors are enough to fix the file (a broken line can make thousands).
      errors: ydoc.errors.slice(0, MAX_YAML_ERRORS).map((e) => {
        const pos = lineCounter.linePos(e.pos[0]);
        return at({
          severity: 'error',
          code: 'yaml_syntax',
          // yaml's own "at line N, column M" counts from the frontmatter, not the file: drop it, line/column below are the file's.
          message: `YAML syntax error in frontmatter: ${(e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '')}`,
          ...(pos && { line: pos.line + 1, column: pos.col }),
          suggestion:
            'quote values that contain ": " or start with a special character, e.g. description: "Use when: ..."',
        });
      }),
    };
  }
  reportRepairedYaml(parsed, at, issues);
  const expanded = yamlToJs(ydoc, yamlText);
  if ('error' in expanded) return { errors: [at(expanded.error)] };
  const front = expanded.value;
  // An empty frontmatter (`---\n---`) is an empty mapping: the missing name is reported below.
  if (front !== null && (typeof front !== 'object' || Array.isArray(front))) {
    return {
      errors: [
        at({
          severity: 'error',
          code: 'invalid_frontmatter',
          message: 'the frontmatter must be a mapping of keys to values',
          line: 2,
          column: 1,
        }),
      ],
    };
  }
  const fm: Record<string, unknown> = {};
  // A key left empty (`tools:`) is absent, as Claude Code reads it.
  for (const [k, v] of Object.entries((front ?? {}) as Record<string, unknown>)) if (v !== null) fm[k] = v;
  const pos = (key: string) => yamlPos(ydoc, lineCounter, [key]);
  const { doc, metadata } = applyClaudeFields(fm, issues, at, pos);
  if (doc.system_prompt === undefined) {
    doc.system_prompt = body.trim();
    // A WebAssembly agent needs no prompt: its module answers.
    if (doc.system_prompt === '' && fm.wasm !== undefined) delete doc.system_prompt;
    else if (doc.system_prompt === '') {
      issues.push(
        at({
          severity: 'error',
          code: 'empty_body',
          message: "the body after the closing --- is empty; it is the agent's system prompt",
          field: 'system_prompt',
          line: bodyLine,
          column: 1,
          suggestion: 'write the instructions for the agent as Markdown below the frontmatter',
        }),
      );
    }
  }
  // A `metadata` that is not a mapping stays as written, for validation to report it (never dropped silently).
  if (Object.keys(metadata).length > 0 && (fm.metadata === undefined || isRecord(fm.metadata))) doc.metadata = metadata;

  const locate = markdownLocator(fm, ydoc, lineCounter, bodyLine);
  return { doc, locate, issues };
}

/**
 * The frontmatter's size, depth and alias count, checked before the YAML parser runs: its cost
 * grows faster than linearly with the number of entries, it recurses and slows down on deep
 * structure, and it resolves each alias by walking the whole document.
 */
function frontmatterBoundsIssue(yamlText: string): Omit<AgentIssue, 'file'> | undefined {
  // Community files use a few dozen lines; a long line is fine.
  const fmLines = countLines(yamlText);
  if (fmLines > MAX_FRONTMATTER_LINES || yamlText.length > MAX_FRONTMATTER_BYTES) {
    const what =
      fmLines > MAX_FRONTMATTER_LINES
        ? `${fmLines} lines (at most ${MAX_FRONTMATTER_LINES})`
        : `${yamlText.length} characters (at most ${MAX_FRONTMATTER_BYTES})`;
    return {
      severity: 'error',
      code: 'frontmatter_too_large',
      message: `the frontmatter has ${what}`,
      line: 2,
      column: 1,
      suggestion: 'keep the frontmatter to the agent settings; put long text in the body',
    };
  }
  const scan = scanYaml(yamlText);
  if (!scan) return undefined;
  const p = offsetToLineCol(yamlText, scan.offset);
  const pos = { line: p.line + 1, column: p.column };
  return scan.problem === 'depth'
    ? {
        ...tooDeepIssue(undefined),
        message: `the frontmatter nests more than ${MAX_YAML_STRUCTURE_DEPTH} levels deep (indentation, "- " items and brackets; the limit for a field is ${MAX_INPUT_DEPTH} levels)`,
        ...pos,
      }
    : {
        severity: 'error',
        code: 'yaml_alias_limit',
        message: `the frontmatter has more than ${MAX_YAML_ALIAS_TOKENS} aliases (*name); this is alias number ${MAX_YAML_ALIAS_TOKENS + 1}`,
        ...pos,
        suggestion: 'write the values out instead of repeating them through aliases',
      };
}

/** Warns of the values read as plain text rather than as written, and of keys given twice. */
function reportRepairedYaml(
  parsed: FrontmatterYaml,
  at: (i: Omit<AgentIssue, 'file'>) => AgentIssue,
  issues: AgentIssue[],
): void {
  const { doc: ydoc, lineCounter } = parsed;
  for (const c of parsed.changed) {
    const why =
      c.kind === 'colon'
        ? 'contains ": " and is not quoted'
        : 'is not valid YAML as written (it starts with a YAML indicator such as *, `, @, %, & or !)';
    issues.push(
      at({
        severity: 'warning',
        code: 'yaml_unquoted_colon',
        message: `the value of "${c.key}" ${why}; read as plain text as Claude Code does`,
        field: c.key,
        line: c.line + 1,
        column: 1,
        suggestion: `quote it: ${c.key}: "..."`,
      }),
    );
  }
  for (const key of parsed.duplicates) {
    issues.push(
      at({
        severity: 'warning',
        code: 'duplicate_key',
        message: `"${key}" is given more than once in the frontmatter; the last one is used`,
        field: key,
        ...yamlPos(ydoc, lineCounter, [key]),
        suggestion: `keep one "${key}:" line`,
      }),
    );
  }
}

/**
 * Maps a path in the agent document to the frontmatter line that set it: Claude Code keys that
 * became agent fields point at the key as written, the prompt at the body.
 */
function markdownLocator(
  fm: Record<string, unknown>,
  ydoc: Document,
  lineCounter: LineCounter,
  bodyLine: number,
): Locator {
  return (path) => {
    const top = String(path[0] ?? '');
    if (top === 'system_prompt' && fm.system_prompt === undefined) return { line: bodyLine, column: 1 };
    if (top === 'llm' && path[1] === 'model' && fm.model !== undefined) return yamlPosOpt(ydoc, lineCounter, ['model']);
    if (top === 'limits' && path[1] === 'max_turns' && fm.maxTurns !== undefined)
      return yamlPosOpt(ydoc, lineCounter, ['maxTurns']);
    if (top === 'messaging' && path[1] === 'send_to' && fm.tools !== undefined)
      return yamlPosOpt(ydoc, lineCounter, ['tools']);
    if (top === 'tools')
      return yamlPosOpt(ydoc, lineCounter, fm.tools !== undefined && typeof fm.tools !== 'string' ? path : ['tools']);
    for (let n = path.length; n > 0; n--) {
      const p = yamlPosOpt(ydoc, lineCounter, path.slice(0, n));
      if (p) return p;
    }
    return undefined;
  };
}

/** Frontmatter bounds (see frontmatterBoundsIssue). */
const MAX_FRONTMATTER_LINES = 1_000;
// 64 KiB: the largest of the 158 community files' frontmatter is 0.5 KB; descriptions with
// <example> blocks run to a few KB. yaml needs about 5 ms per KB of pathological input.
const MAX_FRONTMATTER_BYTES = 64 * 1024;
/** YAML syntax errors reported per file. */
const MAX_YAML_ERRORS = 20;

function countLines(text: string): number {
  let n = 1;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

function frontmatterError(split: Exclude<ReturnType<typeof splitFrontmatter>, { ok: true }>): Omit<AgentIssue, 'file'> {
  const example = 'start the file with:\n---\nname: my-agent\ndescription: What it does\n---';
  switch (split.reason) {
    case 'not_at_start':
      return {
        severity: 'error',
        code: 'frontmatter_not_at_start',
        message: `the frontmatter starts on line ${split.line}, column ${split.column}; it must start on line 1 with --- at column 1 (Claude Code does not read it either)`,
        line: split.line,
        column: split.column,
        suggestion: 'remove the blank lines and indentation before and inside the --- lines',
      };
    case 'unclosed':
      return {
        severity: 'error',
        code: 'unclosed_frontmatter',
        message: 'the frontmatter opened by --- on line 1 is never closed',
        line: 1,
        column: 1,
        suggestion: 'end the frontmatter with a line holding only ---, then write the body',
      };
    default:
      return {
        severity: 'error',
        code: 'missing_frontmatter',
        message: 'a Markdown agent must start with YAML frontmatter between --- lines',
        line: 1,
        column: 1,
        suggestion: example,
      };
  }
}

/** Claude Code keys with no Caxton meaning: kept, unchanged, in `metadata`. */
const CLAUDE_METADATA_KEYS = [
  'color',
  'permissionMode',
  'permission_mode',
  'skills',
  'hooks',
  'mcpServers',
  'background',
  'isolation',
  'effort',
  'disabled',
  'initialPrompt',
];

/**
 * Maps the Claude Code frontmatter keys onto the agent document (tools, disallowedTools, model,
 * maxTurns, memory, delegation targets), keeping the original values in `metadata`. The mapping
 * is documented in docs/agent-format.md.
 */
function applyClaudeFields(
  fm: Record<string, unknown>,
  issues: AgentIssue[],
  at: (i: Omit<AgentIssue, 'file'>) => AgentIssue,
  pos: (key: string) => { line?: number; column?: number },
): { doc: Record<string, unknown>; metadata: Record<string, unknown> } {
  const doc: Record<string, unknown> = { ...fm };
  const metadata: Record<string, unknown> = { ...(isRecord(fm.metadata) ? fm.metadata : {}) };
  // Set below from the tools key alone: a file cannot claim it.
  delete metadata[UNLISTED_TOOLS_KEY];
  const err = (field: string, code: string, message: string, suggestion?: string) =>
    issues.push(at({ severity: 'error', code, message, field, ...pos(field), ...(suggestion && { suggestion }) }));
  const warn = (field: string, code: string, message: string, suggestion?: string) =>
    issues.push(at({ severity: 'warning', code, message, field, ...pos(field), ...(suggestion && { suggestion }) }));

  if (fm.description === undefined) {
    warn(
      'description',
      'missing_description',
      'no description: Claude Code requires one (it decides when to delegate from it) and does not load this file; Caxton loads it with an empty description',
      'add `description: When to use this agent` to the frontmatter',
    );
  }

  // tools / disallowedTools: "Read, Agent(worker)" or a list; Claude names are mapped, originals kept.
  const disallowed = splitToolList(fm.disallowedTools ?? fm.disallowed_tools);
  delete doc.disallowedTools;
  delete doc.disallowed_tools;
  let denied: string[] = [];
  if (disallowed !== undefined) {
    if (Array.isArray(disallowed) && disallowed.every((t) => typeof t === 'string')) {
      denied = disallowed;
      metadata.claude_disallowed_tools = disallowed;
    } else
      err(
        'disallowedTools',
        'invalid_type',
        'disallowedTools must be a comma-separated string or a list of tool names',
        'e.g. disallowedTools: Write, Edit',
      );
  }
  if (fm.tools !== undefined) {
    const list = splitToolList(fm.tools);
    if (Array.isArray(list) && list.every((t) => typeof t === 'string')) {
      metadata.claude_tools = list;
      // `tools: *` is Claude Code's "every tool", like leaving tools out: the granted toolkit (docs/agent-format.md).
      const all = list.length === 1 && list[0] === '*';
      if (all) metadata[UNLISTED_TOOLS_KEY] = true;
      const read = readToolList(all ? [] : list, denied, true);
      for (const n of read.notes) warn('tools', n.code, n.message, n.suggestion);
      doc.tools = read.tools;
      if (read.dropped.length > 0) metadata.claude_tools_dropped = read.dropped;
      if (read.sendTo) doc.messaging = { ...(isRecord(fm.messaging) ? fm.messaging : {}), send_to: read.sendTo };
    } else doc.tools = list;
  } else metadata[UNLISTED_TOOLS_KEY] = true;

  // model: a Claude alias or a model id becomes llm.model; "inherit" means the server default.
  if (fm.model !== undefined) {
    delete doc.model;
    if (typeof fm.model === 'string') {
      metadata.claude_model = fm.model;
      const model = claudeModelName(fm.model);
      if (model !== 'inherit' && model !== '') doc.llm = { ...(isRecord(fm.llm) ? fm.llm : {}), model };
    } else
      err(
        'model',
        'invalid_type',
        'model must be a string such as "sonnet", "haiku", "inherit" or a model id',
        'e.g. model: sonnet',
      );
  }

  // maxTurns: the turn limit of one execution.
  const maxTurns = fm.maxTurns ?? fm.max_turns;
  if (maxTurns !== undefined) {
    const key = fm.maxTurns !== undefined ? 'maxTurns' : 'max_turns';
    delete doc.maxTurns;
    delete doc.max_turns;
    const n = typeof maxTurns === 'string' && /^\d{1,9}$/.test(maxTurns.trim()) ? Number(maxTurns.trim()) : maxTurns;
    if (typeof n === 'number' && Number.isInteger(n) && n >= 1) {
      metadata.claude_max_turns = n;
      if (n > MAX_TURNS_LIMIT)
        warn(key, 'clamped', `${key} ${n} is above Caxton's limit; the agent runs at most ${MAX_TURNS_LIMIT} turns`);
      doc.limits = { ...(isRecord(fm.limits) ? fm.limits : {}), max_turns: Math.min(n, MAX_TURNS_LIMIT) };
    } else
      err(
        key,
        'invalid_value',
        `${key} must be a whole number of turns, at least 1 (got ${JSON.stringify(maxTurns)})`,
        `e.g. ${key}: 20`,
      );
  }

  // memory: Claude Code's persistent-memory scope (a string) — not Caxton's [memory] table.
  if (typeof fm.memory === 'string') {
    const scope = fm.memory.trim().toLowerCase();
    metadata.claude_memory = fm.memory;
    if ((CLAUDE_MEMORY_SCOPES as readonly string[]).includes(scope)) doc.memory = { enabled: true, scope: 'agent' };
    else if (scope === 'none' || scope === '') delete doc.memory;
    else {
      delete doc.memory;
      err(
        'memory',
        'invalid_value',
        `memory "${fm.memory}" is not a Claude Code memory scope; expected "user", "project" or "local"`,
        'or write a Caxton [memory] table: memory: { enabled: true, scope: agent }',
      );
    }
  } else if (typeof fm.memory === 'boolean') {
    doc.memory = { enabled: fm.memory };
  }

  // version: Claude files sometimes carry a free-form version (`1.0`, `2`); Caxton's is semver.
  if (fm.version !== undefined && !(typeof fm.version === 'string' && SEMVER_LIKE.test(fm.version))) {
    metadata.version = fm.version;
    delete doc.version;
    warn(
      'version',
      'nonstandard_version',
      `version ${JSON.stringify(fm.version)} is not a semantic version; it is kept in metadata.version and the agent gets version 1.0.0`,
      'e.g. version: "1.2.0"',
    );
  }

  // permissionMode: kept as written; one Caxton does not know is a warning and the agent runs without it.
  const modeKey = fm.permissionMode !== undefined ? 'permissionMode' : 'permission_mode';
  if (fm[modeKey] !== undefined) {
    const note = permissionModeNote(fm[modeKey], true);
    if (note !== undefined)
      warn(modeKey, note.code, `${note.message}; the agent runs with no mode of its own`, note.suggestion);
  }

  for (const claudeOnly of CLAUDE_METADATA_KEYS) {
    if (fm[claudeOnly] !== undefined) {
      metadata[claudeOnly] = fm[claudeOnly];
      delete doc[claudeOnly];
    }
  }
  return { doc, metadata };
}

/**
 * Claude Code's model spellings: aliases in any case (`Sonnet`), and the long-context variants
 * (`sonnet[1m]`), become the alias; ids are kept as written.
 */
function claudeModelName(raw: string): string {
  const t = raw.trim();
  const lower = t.toLowerCase();
  const base = lower.endsWith('[1m]') ? lower.slice(0, -4) : lower;
  return base === 'inherit' || (CLAUDE_MODEL_ALIASES as readonly string[]).includes(base) ? base : t;
}

/** Caxton's per-agent turn limit (agent-schema.ts `limits.max_turns`). */
const MAX_TURNS_LIMIT = 100;
/** A loose semver check (the schema has the strict one): three dot-separated numbers first. */
const SEMVER_LIKE = /^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]*)?$/;

/**
 * The frontmatter as plain values, with aliases bounded: at most MAX_YAML_ALIASES (yaml's own
 * check, which also stops nested "billion laughs" expansion), and the values they expand to at
 * most as many as the frontmatter has characters (a document without aliases never has more), so
 * what follows — validation, storage, JSON responses — costs no more than the text's size.
 */
function yamlToJs(ydoc: Document, yamlText: string): { value: unknown } | { error: Omit<AgentIssue, 'file'> } {
  const aliasAt = (): { line?: number; column?: number } => {
    const i = yamlText.search(/(^|[\s[{,:-])\*[^\s,[\]{}]/);
    if (i < 0) return {};
    const p = offsetToLineCol(yamlText, yamlText[i] === '*' ? i : i + 1);
    return { line: p.line + 1, column: p.column };
  };
  const suggestion = 'write the values out instead of repeating them through aliases (*name) and merge keys (<<)';
  let value: unknown;
  try {
    value = ydoc.toJS({ maxAliasCount: MAX_YAML_ALIASES });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    const aliases = /alias/i.test(msg);
    return {
      error: {
        severity: 'error',
        code: aliases ? 'yaml_alias_limit' : 'yaml_syntax',
        message: aliases
          ? `the frontmatter's aliases expand too much (yaml refuses more than ${MAX_YAML_ALIASES} alias expansions: ${msg})`
          : `YAML error in frontmatter: ${msg}`,
        ...aliasAt(),
        suggestion,
      },
    };
  }
  const limit = Math.max(yamlText.length, 10_000);
  if (expandedSize(value, limit) > limit) {
    return {
      error: {
        severity: 'error',
        code: 'yaml_alias_limit',
        message: `the frontmatter's aliases expand it to more than ${limit} values (more than its ${yamlText.length} characters)`,
        ...aliasAt(),
        suggestion,
      },
    };
  }
  return { value };
}

function yamlPosOpt(
  doc: Document,
  lc: LineCounter,
  path: readonly (string | number)[],
): { line: number; column: number } | undefined {
  // The frontmatter starts on line 2 of the file (after the opening ---).
  let node: unknown;
  const { isMap, isNode } = yaml();
  if (path.length === 1 && isMap(doc.contents)) {
    const pair = doc.contents.items.find((p) => isNode(p.key) && (p.key as { value?: unknown }).value === path[0]);
    node = pair?.key;
  } else node = doc.getIn(path, true);
  if (!isNode(node) || !node.range) return undefined;
  const p = lc.linePos(node.range[0]);
  return { line: p.line + 1, column: p.col };
}

function yamlPos(
  doc: Document,
  lc: LineCounter,
  path: readonly (string | number)[],
): { line?: number; column?: number } {
  return yamlPosOpt(doc, lc, path) ?? {};
}
