/**
 * Claude Code agent files load as Claude Code loads them — one test per documented
 * behaviour, plus the frontmatter variants found in public collections
 * (test/agents/fixtures/claude/, minimal files written for each variant).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseAgent, type ParseResult } from '../../src/agents/index.js';
import { quoteUnsafePlainScalars, splitFrontmatter } from '../../src/agents/frontmatter.js';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'claude');

function md(frontmatter: string, body = 'You are helpful.\n'): string {
  return `---\n${frontmatter}\n---\n${body}`;
}

function ok(r: ParseResult) {
  if (!r.ok) throw new Error(`expected the agent to load: ${JSON.stringify(r.errors)}`);
  return r;
}

function load(text: string) {
  return ok(parseAgent(text, { format: 'markdown', file: 'agent.md' }));
}

function fixture(name: string) {
  return ok(parseAgent(readFileSync(join(FIXTURES, name)), { file: join(FIXTURES, name) }));
}

describe('values strict YAML refuses but Claude Code reads as text', () => {
  it('a description starting with **BOLD**: loads with the exact text and a warning', () => {
    const r = fixture('bold-description.md');
    expect(r.definition.description).toBe(
      '**TECHNICAL DESIGN SPECIALIST**: Transforms requirements into designs. Use when: a spec is needed.',
    );
    expect(r.definition.tools).toEqual(['workspace.read', 'workspace.grep']);
    expect(r.warnings.find((w) => w.code === 'yaml_unquoted_colon')).toMatchObject({ field: 'description', line: 3 });
  });

  it('a description starting with a backtick loads with the exact text', () => {
    expect(fixture('backtick-description.md').definition.description).toBe(
      '`/review` runs this agent: it reviews diffs',
    );
  });

  it.each(['*', '%', '@', '`'])('a value starting with %s (with and without ": ") is read as text', (c) => {
    for (const text of [`${c}note${c}: then more`, `${c}note${c} without a colon`]) {
      const r = load(md(`name: x\ndescription: ${text}`));
      expect(r.definition.description).toBe(text);
    }
  });

  it('a value starting with & or ! that YAML cannot read (with ": ") is read as text; a valid anchor or tag stays YAML', () => {
    expect(load(md('name: x\ndescription: !important: read this')).definition.description).toBe(
      '!important: read this',
    );
    expect(load(md('name: x\ndescription: & then: text')).definition.description).toBe('& then: text');
    expect(load(md('name: x\ndescription: *new')).definition.description).toBe('*new');
    expect(load(md('name: x\ndescription: &a anchored\nnote: *a')).definition.description).toBe('anchored');
  });

  it('a multi-line plain description with colons is folded as YAML folds it', () => {
    expect(fixture('multiline-colon.md').definition.description).toBe(
      'Use this agent when the user asks for help: it spans two lines, with a colon: here',
    );
  });

  it('"\\n" escapes and <example> blocks in an unquoted description stay as written', () => {
    const d = fixture('example-escapes.md').definition;
    expect(d.description).toContain('Examples:\\n\\n<example>\\nContext: The user wrote code.\\nuser: "Review it"');
    expect(d.llm.model).toBeUndefined();
    expect(d.metadata.color).toBe('blue');
  });

  it('text that merely starts with a quoted word is read as text', () => {
    expect(load(md('name: x\ndescription: "Expert" in things: all of them')).definition.description).toBe(
      '"Expert" in things: all of them',
    );
    expect(load(md("name: x\ndescription: 'Fast' reviewer")).definition.description).toBe("'Fast' reviewer");
  });

  it('a real syntax error (an unterminated quote or list) is still an error naming the file line', () => {
    const r = parseAgent(md('name: x\ndescription: "unterminated\ntools: [Read, Write'), { format: 'markdown' });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors[0]).toMatchObject({ code: 'yaml_syntax' });
  });

  it('a duplicate key loads with the last value and a warning (Claude Code keeps the last)', () => {
    const r = fixture('duplicate-keys.md');
    expect(r.definition.description).toBe('second wins');
    expect(r.warnings.some((w) => w.code === 'duplicate_key' && w.field === 'description')).toBe(true);
  });

  it('CRLF line ends, a BOM, trailing spaces after ---, and tabs after colons all load', () => {
    expect(fixture('crlf.md').definition).toMatchObject({
      name: 'crlf-agent',
      description: 'Uses CRLF line ends',
      tools: ['workspace.read', 'workspace.bash'],
      system_prompt: 'Body with CRLF.',
    });
    expect(fixture('bom.md').definition.name).toBe('bom-agent');
    expect(fixture('fence-trailing-spaces.md').definition.description).toBe('The fences have trailing spaces and tabs');
    expect(fixture('tabs.md').definition).toMatchObject({ name: 'Tabbed', description: 'Tabs after the colons' });
  });

  it('a --- inside a value does not end the frontmatter', () => {
    const r = load(md('name: x\ndescription: before --- after'));
    expect(r.definition.description).toBe('before --- after');
  });

  it('every edge-case fixture loads', () => {
    const files = readdirSync(FIXTURES).filter((f) => f.endsWith('.md'));
    expect(files.length).toBeGreaterThanOrEqual(15);
    for (const f of files) fixture(f);
  });
});

describe('tools', () => {
  it('tools: left empty is the same as no tools key (as in Claude Code); empty model and color too', () => {
    const r = fixture('empty-tools.md');
    expect(r.definition.tools).toEqual([]);
    expect(r.definition.llm.model).toBeUndefined();
    expect(r.warnings.filter((w) => w.severity === 'error')).toEqual([]);
    expect(load(md('name: x\ndescription: d\ntools: ""')).definition.tools).toEqual([]);
  });

  it('tools: * (every tool in Claude Code) grants nothing implicitly, like an absent list, and is recorded', () => {
    const d = fixture('star-tools.md').definition;
    expect(d.tools).toEqual([]);
    expect(d.metadata.claude_tools).toEqual(['*']);
  });

  it('a YAML list of tools maps like the comma string', () => {
    expect(fixture('list-tools.md').definition.tools).toEqual(['workspace.read', 'web.fetch', 'github.create_issue']);
  });

  it('Read, Task(explorer), Agent(worker, reviewer): parentheses keep their commas; delegation is restricted to those agents', () => {
    const d = fixture('agent-specifiers.md').definition;
    expect(d.tools).toEqual(['workspace.read', 'send_message']);
    expect(d.messaging.send_to).toEqual(['explorer', 'worker', 'reviewer']);
    expect(d.metadata.claude_tools).toEqual(['Read', 'Task(explorer)', 'Agent(worker, reviewer)']);
  });

  it('a bare Agent next to Agent(x) leaves delegation unrestricted', () => {
    const d = load(md('name: x\ndescription: d\ntools: Agent(worker), Agent')).definition;
    expect(d.tools).toEqual(['send_message']);
    expect(d.messaging.send_to).toBeUndefined();
  });

  it('a broken entry is ignored with a warning that shows the bad value', () => {
    const r = load(md('name: x\ndescription: d\ntools: Read, Agent(worker, bad/name), Agent(unclosed, Grep'));
    expect(r.definition.tools).toEqual(['workspace.read']);
    const messages = r.warnings.filter((w) => w.code === 'unknown_tool').map((w) => w.message);
    expect(messages.some((m) => m.includes('"Agent(worker, bad/name)"') && m.includes('"bad/name"'))).toBe(true);
    expect(messages.some((m) => m.includes('"Agent(unclosed, Grep"'))).toBe(true);
    for (const w of r.warnings.filter((x) => x.code === 'unknown_tool'))
      expect(w).toMatchObject({ field: 'tools', line: 4 });
  });

  it('Agent (the renamed Task) and SendMessage map to send_message; TaskCreate/TaskList/TaskGet/TaskUpdate map to the team tools', () => {
    const d = fixture('new-tool-names.md').definition;
    expect(d.tools).toEqual([
      'send_message',
      'team.task_create',
      'team.task_list',
      'team.task_get',
      'team.task_update',
      'workspace.read',
    ]);
    expect(d.messaging.send_to).toBeUndefined();
    expect(d.metadata.claude_tools_dropped).toBeUndefined();
  });

  it('a Claude Code tool with no counterpart is dropped with an unmapped_tool warning naming it', () => {
    const r = load(md('name: x\ndescription: d\ntools: Read, TeamCreate, TodoRead, ExitPlanMode'));
    expect(r.definition.tools).toEqual(['workspace.read', 'team.create']);
    expect(r.definition.metadata.claude_tools_dropped).toEqual(['TodoRead', 'ExitPlanMode']);
    const warned = r.warnings.filter((w) => w.code === 'unmapped_tool');
    expect(warned.map((w) => w.message)).toEqual([
      'tools entry "TodoRead" is a Claude Code tool with no Caxton counterpart: the agent runs without it',
      'tools entry "ExitPlanMode" is a Claude Code tool with no Caxton counterpart: the agent runs without it',
    ]);
    for (const w of warned) expect(w).toMatchObject({ field: 'tools', line: 4 });
  });

  it('disallowedTools removes tools: Write and Edit denied still leaves Read; Bash denied removes workspace.bash', () => {
    expect(
      load(md('name: x\ndescription: d\ntools: Read, Write, Edit, Bash\ndisallowedTools: Write, Edit, Bash')).definition
        .tools,
    ).toEqual(['workspace.read']);
    expect(
      load(md('name: x\ndescription: d\ntools: Read, Bash\ndisallowedTools: [Read, Grep, Glob]')).definition.tools,
    ).toEqual(['workspace.bash']);
    const d = load(
      md(
        'name: x\ndescription: d\ntools: Read, mcp__github__create_issue, mcp__github__list, WebFetch\ndisallowedTools: mcp__github, web.fetch',
      ),
    ).definition;
    expect(d.tools).toEqual(['workspace.read']);
    expect(d.metadata.claude_disallowed_tools).toEqual(['mcp__github', 'web.fetch']);
    expect(
      load(md('name: x\ndescription: d\ntools: Read, Agent(worker)\ndisallowedTools: Agent')).definition.tools,
    ).toEqual(['workspace.read']);
  });
});

describe('maxTurns, memory and the other Claude Code keys', () => {
  it('maxTurns becomes limits.max_turns; memory: project keeps the scope as metadata and turns on agent-scoped memory', () => {
    const r = fixture('all-claude-keys.md');
    const d = r.definition;
    expect(d.description).toBe('A folded description over lines.\n');
    expect(d.limits.max_turns).toBe(7);
    expect(d.memory).toMatchObject({ enabled: true, scope: 'agent' });
    expect(d.metadata).toMatchObject({
      claude_memory: 'project',
      claude_max_turns: 7,
      permissionMode: 'acceptEdits',
      skills: ['pdf'],
      mcpServers: ['github'],
      claude_disallowed_tools: ['Write', 'Edit'],
    });
    expect(d.metadata.hooks).toEqual({ Stop: [{ command: 'echo done' }] });
    expect(r.warnings.filter((w) => w.code === 'unknown_key')).toEqual([]);
  });

  it.each(['user', 'project', 'local'])('memory: %s loads', (scope) => {
    expect(load(md(`name: x\ndescription: d\nmemory: ${scope}`)).definition.memory.enabled).toBe(true);
  });

  it('an unknown memory string is an error naming the field, the value and the choices (no schema-library text)', () => {
    const r = parseAgent(md('name: x\ndescription: d\nmemory: forever'), { format: 'markdown', file: 'a.md' });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatchObject({ code: 'invalid_value', field: 'memory', line: 4, file: 'a.md' });
    expect(r.errors[0]!.message).toContain('"forever"');
    expect(r.errors[0]!.message).toContain('"user", "project" or "local"');
    expect(r.errors[0]!.message).not.toMatch(/Invalid input/);
  });

  it('a memory string in a TOML file gets a readable error too', () => {
    const r = parseAgent('name = "x"\nsystem_prompt = "p"\nmemory = "project"\n', { format: 'toml' });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors[0]!.message).toContain('"user", "project", "local"');
  });

  it("maxTurns above Caxton's limit is clamped with a warning; a non-number is an error naming the value", () => {
    const r = load(md('name: x\ndescription: d\nmaxTurns: 500'));
    expect(r.definition.limits.max_turns).toBe(100);
    expect(r.warnings.some((w) => w.field === 'maxTurns')).toBe(true);
    const bad = parseAgent(md('name: x\ndescription: d\nmaxTurns: many'), { format: 'markdown' });
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.errors[0]).toMatchObject({ field: 'maxTurns', line: 4 });
  });

  it('a free-form version moves to metadata with a warning instead of refusing the file', () => {
    const r = load(md('name: x\ndescription: d\nversion: 1.0'));
    expect(r.definition.version).toBe('1.0.0');
    expect(r.definition.metadata.version).toBe(1);
  });

  it('model aliases in any case and the [1m] long-context spelling become the alias; INHERIT is inherit', () => {
    expect(load(md('name: x\ndescription: d\nmodel: Sonnet')).definition.llm.model).toBe('sonnet');
    expect(load(md('name: x\ndescription: d\nmodel: opus[1m]')).definition).toMatchObject({
      llm: { model: 'opus' },
      metadata: { claude_model: 'opus[1m]' },
    });
    expect(load(md('name: x\ndescription: d\nmodel: INHERIT')).definition.llm.model).toBeUndefined();
    expect(load(md('name: x\ndescription: d\nmodel: Claude-Sonnet-4-5')).definition.llm.model).toBe(
      'Claude-Sonnet-4-5',
    );
  });

  it('a full Claude model id and an alias are kept as llm.model with the original in metadata', () => {
    expect(fixture('new-tool-names.md').definition.llm.model).toBe('claude-opus-4-1-20250805');
    expect(fixture('bold-description.md').definition).toMatchObject({
      llm: { model: 'sonnet' },
      metadata: { claude_model: 'sonnet' },
    });
  });
});

describe('names', () => {
  it('a Claude Code name with spaces ("Code Reviewer") loads with that name and a capability derived from it', () => {
    const d = load(md('name: Code Reviewer\ndescription: d\ntools: Agent(Test Writer)')).definition;
    expect(d.name).toBe('Code Reviewer');
    expect(d.capabilities).toEqual(['code-reviewer']);
    expect(d.messaging.send_to).toEqual(['Test Writer']);
  });

  it('a leading digit loads ("3d-modeler"); leading, trailing or double spaces, a colon, or a leading - or . are still refused', () => {
    expect(load(md('name: 3d-modeler\ndescription: d')).definition.name).toBe('3d-modeler');
    for (const name of ['"Code  Reviewer"', '"Code Reviewer "', 'plugin:reviewer', '-lead', '.hidden']) {
      const r = parseAgent(md(`name: ${name}\ndescription: d`), { format: 'markdown' });
      expect(r.ok, name).toBe(false);
    }
  });
});

describe('clear messages for what does not load', () => {
  it('a missing description loads with a warning saying Claude Code requires one', () => {
    const r = load(md('name: x'));
    expect(r.definition.description).toBe('');
    expect(r.warnings.find((w) => w.code === 'missing_description')?.message).toMatch(/Claude Code requires/);
  });

  it('an empty body is reported as the body, on the line it belongs', () => {
    const r = parseAgent(md('name: x\ndescription: d', '\n  \n'), { format: 'markdown', file: 'a.md' });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatchObject({ code: 'empty_body', line: 5 });
    expect(r.errors[0]!.message).toContain('body');
    expect(r.errors[0]!.message).not.toContain('system_prompt must not be empty');
  });

  it('indented frontmatter is an error (frontmatter_not_at_start), not "no frontmatter"', () => {
    for (const text of ['  ---\n  name: x\n  description: d\n  ---\nBody\n', '\n\n---\nname: x\n---\nBody\n']) {
      const r = parseAgent(text, { format: 'markdown', file: 'a.md' });
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.errors[0]!.code).toBe('frontmatter_not_at_start');
    }
    const readme = parseAgent('# Notes\n\nJust a README.\n', { format: 'markdown' });
    expect(!readme.ok && readme.errors[0]!.code).toBe('missing_frontmatter');
  });

  it('frontmatter that is never closed is an error of its own', () => {
    const r = parseAgent('---\nname: x\ndescription: d\n', { format: 'markdown' });
    expect(!r.ok && r.errors[0]!.code).toBe('unclosed_frontmatter');
  });
});

describe('hostile frontmatter: the lenient retry is linear', () => {
  // Before: the retry's regex was quadratic in line length; this file took ~15 s. The test
  // timeout is the (generous) bound.
  it(
    'a 60,000-space line in a file with a YAML error is handled promptly (just under the 64 KiB frontmatter bound)',
    { timeout: 5_000 },
    () => {
      const text = md(`name: x\ndescription: Use when: needed\nk: a${' '.repeat(60_000)}b`);
      const r = load(text);
      expect(r.definition.description).toBe('Use when: needed');
      const spaces = md(`name: x\ndescription: a${' '.repeat(60_000)}: b\nother: \`x`);
      expect(parseAgent(spaces, { format: 'markdown' }).ok).toBe(true);
    },
  );

  it(
    'a value of 40,000 quote characters (tens of thousands of YAML errors; 2.3 s of CPU before) is read promptly; a frontmatter over 64 KiB is refused',
    { timeout: 5_000 },
    () => {
      const quotes = parseAgent(md(`name: x\ndescription: "Reviews code${'"'.repeat(40_000)}`), { format: 'markdown' });
      expect(quotes.ok || quotes.errors.length <= 20).toBe(true);
      const big = parseAgent(md(`name: x\ndescription: ${'a'.repeat(70_000)}`), { format: 'markdown' });
      expect(!big.ok && big.errors[0]).toMatchObject({ code: 'frontmatter_too_large' });
    },
  );

  it(
    'a frontmatter of 100,000 lines is refused with a clear error; 900 broken entries are read promptly',
    { timeout: 5_000 },
    () => {
      const list = parseAgent(md(`name: x\ndescription: a: b\ntools:\n${'  - Read\n'.repeat(100_000)}`), {
        format: 'markdown',
      });
      expect(!list.ok && list.errors[0]).toMatchObject({ code: 'frontmatter_too_large', line: 2 });
      const many = md(`name: x\ndescription: d\n${Array.from({ length: 900 }, (_, i) => `k${i}: *a: b`).join('\n')}`);
      const r = load(many);
      expect(r.warnings.filter((w) => w.code === 'yaml_unquoted_colon')).toHaveLength(900);
    },
  );

  it('an alias bomb ("billion laughs") is an error, not an expansion', { timeout: 5_000 }, () => {
    const levels = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 9; i++)
      levels.push(
        `${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10)
          .fill(`*${String.fromCharCode(96 + i)}`)
          .join(', ')}]`,
      );
    // Nested under one key (kept in metadata): refused.
    const nested = parseAgent(md(`name: x\ndescription: d\nhooks:\n${levels.map((l) => `  ${l}`).join('\n')}`), {
      format: 'markdown',
    });
    expect(!nested.ok && nested.errors[0]!.code).toBe('yaml_alias_limit');
    // As top-level keys, each entry is unreadable on its own, so the lenient reader keeps it as text: nothing expands.
    const flat = parseAgent(md(`name: x\ndescription: d\n${levels.join('\n')}`), { format: 'markdown' });
    expect(JSON.stringify(flat).length).toBeLessThan(20_000);
  });

  it('splitFrontmatter and quoteUnsafePlainScalars keep every line (positions stay right)', () => {
    const yaml = 'name: x\ndescription: a: b\n  c: d\nnext: 1';
    const q = quoteUnsafePlainScalars(yaml);
    expect(q.text.split('\n')).toHaveLength(4);
    expect(q.changed).toEqual([{ key: 'description', line: 2, kind: 'colon' }]);
    const s = splitFrontmatter('---\r\nname: x\r\n---\r\nbody\r\n');
    expect(s).toEqual({ ok: true, yaml: 'name: x', body: 'body\r\n', bodyLine: 4 });
  });
});

describe('property: the Markdown reader never throws', () => {
  const piece = fc.constantFrom(
    ...'ab: *&!%@`,()[]{}"\'#|>-\t \\n'.split(''),
    'name',
    'description',
    'tools',
    'model',
    'memory',
    'maxTurns',
    'disallowedTools',
    '\n',
    '\n  ',
    '\r\n',
    '---',
  );
  it('returns errors or a definition for any frontmatter text', () => {
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 60 }), (parts) => {
        const s = parts.join('');
        parseAgent(`---\nname: x\n${s}\n---\nbody\n`, { format: 'markdown' });
        parseAgent(`---\n${s}\n---\nbody`, { format: 'markdown' });
      }),
      { numRuns: 1_000 },
    );
  });
});

describe('property: an unquoted one-line description is read as its text', () => {
  // Free text a community file might hold; a value that YAML reads as something else on its own
  // (a comment after " #", a list "- ", a number, an anchor "&a text" or the tag "! ") is
  // outside what Claude Code reads as text too.
  const chars = fc.constantFrom(...'abcXYZ019 :*&!%@`,.()<>/\\"\'-_=+?'.split(''));
  const text = fc
    .array(chars, { minLength: 1, maxLength: 40 })
    .map((a) => a.join('').trim())
    .filter(
      (s) =>
        s.length > 0 &&
        !/^["'[{|>#\-?]/.test(s) &&
        !s.includes(' #') &&
        !/:$/.test(s) &&
        !/^[-+.0-9]/.test(s) &&
        !/^(true|false|null|~)$/i.test(s) &&
        !/^[!&*]\S*$/.test(s) &&
        !/^(&|! )/.test(s),
    );

  it('loads with description === the text (trimmed)', () => {
    fc.assert(
      fc.property(text, (s) => {
        const r = parseAgent(md(`name: x\ndescription: ${s}\ntools: Read`), { format: 'markdown' });
        if (!r.ok) throw new Error(`${JSON.stringify(s)}: ${JSON.stringify(r.errors)}`);
        return r.definition.description === s && r.definition.tools.length === 1;
      }),
      { numRuns: 500 },
    );
  });
});
