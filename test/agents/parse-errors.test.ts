import { describe, expect, it } from 'vitest';
import { parseAgent, type ParseResult } from '../../src/agents/index.js';
import type { SourceIssue } from '../../src/shared/index.js';

/** The errors of a result that must have failed; prints them when it did not. */
function errorsOf(r: ParseResult): SourceIssue[] {
  if (r.ok) throw new Error(`expected errors, the agent parsed: ${JSON.stringify(r.definition)}`);
  expect(r.errors.length).toBeGreaterThan(0);
  for (const e of r.errors) expect(e.severity).toBe('error');
  return r.errors;
}

function onlyError(r: ParseResult): SourceIssue {
  const errors = errorsOf(r);
  expect(errors, JSON.stringify(errors, null, 2)).toHaveLength(1);
  return errors[0]!;
}

const toml = (text: string) => parseAgent(text, { file: 'agent.toml' });
const md = (text: string) => parseAgent(text, { file: 'agent.md' });

describe('syntax errors', () => {
  it('malformed TOML (unterminated string) reports line and column', () => {
    const e = onlyError(toml('name = "x"\ncapabilities = ["a"]\nsystem_prompt = "unterminated\nversion = "1.0.0"\n'));
    // 'system_prompt = "unterminated' is 29 characters: the string is still open at column 30 (the line end)
    expect(e).toMatchObject({ code: 'toml_syntax', file: 'agent.toml', line: 3, column: 30 });
    expect(e.message).toMatch(/^TOML syntax error: unterminated string/);
    expect(e.suggestion).toBeTruthy();
  });

  it('malformed YAML frontmatter reports the file line (not the frontmatter line) and column', () => {
    // The frontmatter starts on line 2 of the file: the unterminated quote is on file line 3.
    const e = onlyError(md('---\nname: x\ndescription: "unterminated\n---\nBody\n'));
    expect(e).toMatchObject({ code: 'yaml_syntax', file: 'agent.md', line: 3, column: 27 });
    expect(e.suggestion).toBeTruthy();
    // An unclosed flow sequence is detected where the next key starts (file line 4).
    const f = onlyError(md('---\nname: x\ntools: [Read, Write\ndescription: d\n---\nBody\n'));
    expect(f).toMatchObject({ code: 'yaml_syntax', line: 4, column: 1 });
    // The message must not name a different (frontmatter-relative) line than the one reported.
    for (const x of [e, f]) {
      const inMessage = /line (\d+)/.exec(x.message);
      if (inMessage) expect(Number(inMessage[1])).toBe(x.line);
    }
  });

  it('a Markdown file without frontmatter is an error at 1:1 with an example', () => {
    const e = onlyError(md('# Notes\n\nJust text.\n'));
    expect(e).toMatchObject({ code: 'missing_frontmatter', line: 1, column: 1, file: 'agent.md' });
    expect(e.suggestion).toContain('name:');
  });

  it('a frontmatter that is not a mapping is an error', () => {
    const e = onlyError(md('---\n- a\n- b\n---\nBody\n'));
    expect(e).toMatchObject({ code: 'invalid_frontmatter', line: 2, column: 1 });
  });

  it('malformed JSON reports line and column, also for truncated input', () => {
    const a = onlyError(parseAgent('{\n  "name": "x",\n  "system_prompt" "hi"\n}', { format: 'json' }));
    expect(a).toMatchObject({ code: 'json_syntax', line: 3, column: 19 }); // the '"' of "hi", where ':' was expected
    const b = onlyError(parseAgent('{\n  "name": "x",', { format: 'json' }));
    expect(b.code).toBe('json_syntax');
    expect(b.line).toBe(2);
    expect(b.column).toBeGreaterThan(1);
  });

  it('a JSON document that is not an object is an error', () => {
    const e = onlyError(parseAgent('["x"]', { format: 'json' }));
    expect(e).toMatchObject({ code: 'invalid_type', expected: 'object', line: 1, column: 1 });
  });
});

describe('wrong types and values', () => {
  it('reports every wrong type at once, each with its field, line and column', () => {
    const errors = errorsOf(
      toml(`name = "typed"
system_prompt = "hi"
capabilities = "x"

[llm]
temperature = "hot"

[limits]
max_turns = 0
`),
    );
    const byField = Object.fromEntries(errors.map((e) => [e.field, e]));
    expect(Object.keys(byField).sort()).toEqual(['capabilities', 'limits.max_turns', 'llm.temperature']);
    expect(byField.capabilities).toMatchObject({ code: 'invalid_type', expected: 'array', line: 3, column: 1 });
    expect(byField.capabilities!.suggestion).toContain('capabilities = [');
    expect(byField['llm.temperature']).toMatchObject({ code: 'invalid_type', expected: 'number', line: 6, column: 1 });
    expect(byField['limits.max_turns']).toMatchObject({ code: 'invalid_value', line: 9, column: 1 });
    expect(byField['limits.max_turns']!.message).toMatch(/1/);
  });

  it('an invalid capability format names the element', () => {
    const e = onlyError(toml('name = "x"\nsystem_prompt = "hi"\ncapabilities = ["ok", "Data Analysis"]\n'));
    expect(e).toMatchObject({ code: 'invalid_value', field: 'capabilities.1', line: 3, column: 1 });
    expect(e.message).toContain('lower-case');
    expect(e.suggestion).toBeTruthy();
  });

  it('rejects a name with "/"', () => {
    const e = onlyError(toml('name = "team/agent"\ncapabilities = ["a"]\nsystem_prompt = "hi"\n'));
    expect(e).toMatchObject({ code: 'invalid_value', field: 'name', line: 1, column: 1 });
    expect(e.suggestion).toBeTruthy();
  });

  it('rejects a name with ".."', () => {
    const e = onlyError(toml('capabilities = ["a"]\nname = "a..b"\nsystem_prompt = "hi"\n'));
    expect(e).toMatchObject({ code: 'invalid_value', field: 'name', line: 2, column: 1 });
    expect(e.message).toContain('..');
    expect(e.suggestion).toBeTruthy();
    // and one that starts with dots (a path) fails too
    const path = errorsOf(toml('name = "../etc"\ncapabilities = ["a"]\nsystem_prompt = "hi"\n'));
    expect(path.every((x) => x.field === 'name' && x.line === 1)).toBe(true);
  });

  it('a missing name is an error with a suggestion', () => {
    const e = onlyError(toml('capabilities = ["a"]\nsystem_prompt = "hi"\n'));
    expect(e).toMatchObject({ code: 'missing_field', field: 'name', line: 1, column: 1 });
    expect(e.suggestion).toContain('name = ');
    const m = onlyError(md('---\ndescription: no name\n---\nBody\n'));
    expect(m).toMatchObject({ code: 'missing_field', field: 'name', line: 2, column: 1 });
    expect(m.suggestion).toContain('name:');
  });

  it('a missing system prompt is an error with a suggestion', () => {
    const e = onlyError(toml('name = "x"\ncapabilities = ["a"]\n'));
    expect(e).toMatchObject({ code: 'missing_field', field: 'system_prompt', line: 1, column: 1 });
    expect(e.suggestion).toContain('system_prompt');
    // Markdown: an empty body is the missing prompt, reported where the body starts
    const m = onlyError(md('---\nname: x\ncapabilities: [a]\n---\n'));
    expect(m).toMatchObject({ field: 'system_prompt', line: 5, column: 1 });
  });

  it('an invalid semver version is an error with a suggestion', () => {
    const e = onlyError(toml('name = "x"\nversion = "1.0"\ncapabilities = ["a"]\nsystem_prompt = "hi"\n'));
    expect(e).toMatchObject({ code: 'invalid_value', field: 'version', line: 2, column: 1 });
    expect(e.suggestion).toContain('1.0.0');
  });

  it('an unknown memory scope and isolation mode are errors', () => {
    const errors = errorsOf(
      toml(
        'name = "x"\ncapabilities = ["a"]\nsystem_prompt = "hi"\n[memory]\nscope = "team"\n[execution]\nisolation = "vm"\n',
      ),
    );
    expect(errors.map((e) => [e.field, e.line])).toEqual([
      ['memory.scope', 5],
      ['execution.isolation', 7],
    ]);
  });

  it('non-UTF-8 bytes are reported with their offset, line and column', () => {
    const bytes = Buffer.concat([
      Buffer.from('name = "x"\nsystem_prompt = "caf'),
      Buffer.from([0xe9]),
      Buffer.from('"\n'),
    ]);
    const e = onlyError(parseAgent(bytes, { file: 'latin1.toml' }));
    // 'name = "x"\n' is 11 bytes, 'system_prompt = "caf' 20 more: the 0xE9 byte is at offset 31, line 2, column 21
    expect(e).toMatchObject({ code: 'not_utf8', file: 'latin1.toml', line: 2, column: 21 });
    expect(e.message).toContain('offset 31');
    expect(e.suggestion).toContain('UTF-8');
  });
});

describe('the system_prompt-after-a-table mistake', () => {
  for (const table of ['memory', 'llm']) {
    it(`system_prompt after [${table}] is misplaced_key naming the table and its header line`, () => {
      const text = `name = "x"\ncapabilities = ["a"]\n\n[${table}]\n${table === 'memory' ? 'enabled = true' : 'model = "m"'}\nsystem_prompt = """\nYou are x.\n"""\n`;
      const e = onlyError(toml(text));
      expect(e.code).toBe('misplaced_key');
      expect(e).toMatchObject({ field: `${table}.system_prompt`, line: 6, column: 1, file: 'agent.toml' });
      expect(e.message).toContain(`[${table}]`);
      expect(e.message).toContain('line 4');
      expect(e.suggestion).toContain('line 4');
    });
  }

  it('system_prompt after [parameters] is misplaced_key too', () => {
    const e = onlyError(toml('name = "x"\ncapabilities = ["a"]\n\n[parameters]\nrows = 5\nsystem_prompt = "hi"\n'));
    expect(e).toMatchObject({ code: 'misplaced_key', field: 'parameters.system_prompt', line: 6, column: 1 });
    expect(e.message).toContain('[parameters]');
    expect(e.message).toContain('line 4');
  });

  it('other errors are still reported alongside it', () => {
    const errors = errorsOf(
      toml('name = "x"\nversion = "one"\ncapabilities = ["a"]\n[memory]\nsystem_prompt = "hi"\n'),
    );
    expect(errors.map((e) => e.code).sort()).toEqual(['invalid_value', 'misplaced_key']);
  });
});

describe('unknown keys are warnings, not errors', () => {
  it('a misspelt key gets a "did you mean" suggestion and the agent still loads', () => {
    const r = toml('name = "x"\nsystem_prompt = "hi"\ncapabilites = ["data-analysis"]\n');
    expect(r.ok).toBe(true);
    const w = r.warnings.find((x) => x.code === 'unknown_key');
    expect(w).toMatchObject({
      severity: 'warning',
      field: 'capabilites',
      line: 3,
      column: 1,
      suggestion: 'did you mean "capabilities"?',
    });
  });

  it('inside a table too', () => {
    const r = toml('name = "x"\ncapabilities = ["a"]\nsystem_prompt = "hi"\n\n[memory]\nenabeld = true\n');
    expect(r.ok).toBe(true);
    expect(r.warnings).toEqual([
      expect.objectContaining({
        code: 'unknown_key',
        field: 'memory.enabeld',
        line: 6,
        suggestion: 'did you mean "enabled"?',
      }),
    ]);
  });
});
