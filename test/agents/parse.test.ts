import { describe, expect, it } from 'vitest';
import { detectFormat, parseAgent, type ParseResult } from '../../src/agents/index.js';

function ok(r: ParseResult) {
  if (!r.ok) throw new Error(`expected the agent to parse, got errors: ${JSON.stringify(r.errors, null, 2)}`);
  return r;
}

const FULL_TOML = `# A complete agent, every section
name = "DataAnalyzer"
version = "1.2.3"
description = "Analyzes data"
capabilities = ["data-analysis", "report-generation"]
system_prompt = '''
You are a data analyst.
Answer with tables.
'''
user_prompt_template = "Question: {{request}}"
documentation = "See the wiki."

[llm]
provider = "local"
model = "gpt-4o-mini"
temperature = 0.2
max_tokens = 1000
top_p = 0.9
stop = ["END"]
fallbacks = ["backup"]

[memory]
enabled = true
scope = "agent-only"
auto_store = true
search_limit = 7
min_similarity = 0.7

[parameters]
max_rows = 100
style = { tone = "formal" }

[limits]
max_turns = 5
timeout = "30s"
max_message_size = "64KB"

[conversation]
history_limit = 4
max_turns = 9
ttl = "2m"

[execution]
isolation = "worker"
`;

describe('TOML agents', () => {
  it('parses a full example with every section', () => {
    const r = ok(parseAgent(FULL_TOML, { file: 'data-analyzer.toml' }));
    expect(r.format).toBe('toml');
    expect(r.warnings).toEqual([]);
    const d = r.definition;
    expect(d.name).toBe('DataAnalyzer');
    expect(d.version).toBe('1.2.3');
    expect(d.description).toBe('Analyzes data');
    expect(d.capabilities).toEqual(['data-analysis', 'report-generation']);
    expect(d.system_prompt).toBe('You are a data analyst.\nAnswer with tables.\n');
    expect(d.user_prompt_template).toBe('Question: {{request}}');
    expect(d.documentation).toBe('See the wiki.');
    expect(d.tools).toEqual([]);
    expect(d.llm).toEqual({
      provider: 'local',
      model: 'gpt-4o-mini',
      temperature: 0.2,
      max_tokens: 1000,
      top_p: 0.9,
      stop: ['END'],
      fallbacks: ['backup'],
    });
    // `agent-only` is accepted as an alias of `agent`
    expect(d.memory).toEqual({ enabled: true, scope: 'agent', auto_store: true, search_limit: 7, min_similarity: 0.7 });
    expect(d.parameters).toEqual({ max_rows: 100, style: { tone: 'formal' } });
    expect(d.limits).toEqual({ max_turns: 5, timeout_ms: 30_000, max_message_size: 65_536 });
    expect(d.conversation).toEqual({ history_limit: 4, max_turns: 9, ttl_ms: 120_000 });
    expect(d.execution).toEqual({ isolation: 'worker' });
    expect(d.metadata).toEqual({});
  });

  it('fills defaults for a minimal agent', () => {
    const d = ok(
      parseAgent('name = "mini"\ncapabilities = ["x"]\nsystem_prompt = "hi"\n', { format: 'toml' }),
    ).definition;
    expect(d.version).toBe('1.0.0');
    expect(d.user_prompt_template).toBe('{{request}}');
    expect(d.memory).toEqual({
      enabled: false,
      scope: 'agent',
      auto_store: false,
      search_limit: 5,
      min_similarity: 0.5,
    });
    expect(d.limits).toEqual({ max_turns: 10, timeout_ms: 120_000, max_message_size: 256 * 1024 });
    expect(d.conversation).toEqual({ history_limit: 20, max_turns: 50, ttl_ms: 3_600_000 });
    expect(d.execution).toEqual({});
  });

  it('accepts the upstream `[tools] available = [...]` form, deduplicated', () => {
    const r = ok(
      parseAgent(
        'name = "t"\ncapabilities = ["x"]\nsystem_prompt = "hi"\n\n[tools]\navailable = ["http_client", "csv_parser", "http_client"]\n',
        { format: 'toml' },
      ),
    );
    expect(r.definition.tools).toEqual(['http_client', 'csv_parser']);
    expect(r.warnings).toEqual([]);
  });

  it('accepts the top-level tools array', () => {
    const r = ok(
      parseAgent(
        'name = "t"\ncapabilities = ["x"]\ntools = ["http_client", "github.create_issue", "slack.*"]\nsystem_prompt = "hi"\n',
        { format: 'toml' },
      ),
    );
    expect(r.definition.tools).toEqual(['http_client', 'github.create_issue', 'slack.*']);
  });

  it('derives a capability from the name when none is declared, with a warning', () => {
    const r = ok(parseAgent('name = "Report_Writer"\nsystem_prompt = "hi"\n', { format: 'toml' }));
    expect(r.definition.capabilities).toEqual(['report-writer']);
    expect(r.warnings.map((w) => w.code)).toEqual(['default_capability']);
  });

  it('accepts the limits in plain numbers (seconds, bytes) and timeout_ms', () => {
    const a = ok(
      parseAgent(
        'name = "n"\ncapabilities = ["x"]\nsystem_prompt = "hi"\n[limits]\ntimeout = 2.5\nmax_message_size = 1024\n',
        { format: 'toml' },
      ),
    );
    expect(a.definition.limits).toEqual({ max_turns: 10, timeout_ms: 2500, max_message_size: 1024 });
    const b = ok(
      parseAgent('name = "n"\ncapabilities = ["x"]\nsystem_prompt = "hi"\n[limits]\ntimeout_ms = 750\n', {
        format: 'toml',
      }),
    );
    expect(b.definition.limits.timeout_ms).toBe(750);
  });

  it('strips a UTF-8 byte order mark', () => {
    const bytes = Buffer.concat([
      Buffer.from([0xef, 0xbb, 0xbf]),
      Buffer.from('name = "bom"\ncapabilities = ["x"]\nsystem_prompt = "hi"\n'),
    ]);
    expect(ok(parseAgent(bytes, { file: 'bom.toml' })).definition.name).toBe('bom');
  });
});

describe('Markdown agents (Claude Code subagent format)', () => {
  it('reads tools as a comma-separated string, a model alias, and the body as system prompt', () => {
    const md = `---
name: code-reviewer
description: Reviews code for quality and security
tools: Read, Write, Edit, Bash, Glob, Grep, WebFetch
model: sonnet
---

You are a senior code reviewer.

Focus on correctness.
`;
    const r = ok(parseAgent(md, { file: 'code-reviewer.md' }));
    expect(r.format).toBe('markdown');
    const d = r.definition;
    expect(d.name).toBe('code-reviewer');
    expect(d.description).toBe('Reviews code for quality and security');
    expect(d.tools).toEqual([
      'workspace.read',
      'workspace.write',
      'workspace.edit',
      'workspace.bash',
      'workspace.glob',
      'workspace.grep',
      'web.fetch',
    ]);
    expect(d.llm.model).toBe('sonnet');
    expect(d.metadata.claude_model).toBe('sonnet');
    expect(d.metadata.claude_tools).toEqual(['Read', 'Write', 'Edit', 'Bash', 'Glob', 'Grep', 'WebFetch']);
    expect(d.metadata.claude_tools_dropped).toBeUndefined();
    expect(d.system_prompt).toBe('You are a senior code reviewer.\n\nFocus on correctness.');
  });

  it('reads tools as a YAML list; `inherit` leaves the model to the server default', () => {
    const md = `---
name: helper
description: "Helps"
tools:
  - Read
  - mcp__github__create_issue
  - mcp__slack
model: inherit
color: blue
---
Body prompt.
`;
    const d = ok(parseAgent(md, { file: 'helper.md' })).definition;
    expect(d.tools).toEqual(['workspace.read', 'github.create_issue', 'slack.*']);
    expect(d.llm.model).toBeUndefined();
    expect(d.llm).toEqual({});
    expect(d.metadata).toMatchObject({
      claude_model: 'inherit',
      color: 'blue',
      claude_tools: ['Read', 'mcp__github__create_issue', 'mcp__slack'],
    });
    expect(d.system_prompt).toBe('Body prompt.');
  });

  it('takes a full model id as llm.model', () => {
    const d = ok(parseAgent('---\nname: m\nmodel: claude-sonnet-4-5\n---\nP\n', { format: 'markdown' })).definition;
    expect(d.llm.model).toBe('claude-sonnet-4-5');
  });

  it('accepts Caxton keys in the frontmatter too', () => {
    const md = `---
name: rich
capabilities: [data-analysis]
memory:
  enabled: true
  scope: agent-only
limits:
  timeout: 30s
---
Prompt
`;
    const d = ok(parseAgent(md, { format: 'markdown' })).definition;
    expect(d.capabilities).toEqual(['data-analysis']);
    expect(d.memory.scope).toBe('agent');
    expect(d.memory.enabled).toBe(true);
    expect(d.limits.timeout_ms).toBe(30_000);
  });

  it('loads `description: Use when: x` (an unquoted colon) with a warning, as Claude Code does', () => {
    const md = '---\nname: lenient\ndescription: Use when: the build breaks\ntools: Read\n---\nPrompt\n';
    const r = ok(parseAgent(md, { file: 'lenient.md' }));
    expect(r.definition.description).toBe('Use when: the build breaks');
    const w = r.warnings.find((x) => x.code === 'yaml_unquoted_colon');
    expect(w).toMatchObject({ severity: 'warning', field: 'description', line: 3, column: 1, file: 'lenient.md' });
    expect(w?.suggestion).toContain('quote');
  });
});

describe('JSON agents', () => {
  it('parses a JSON document into the same definition', () => {
    const body = JSON.stringify({
      name: 'json-agent',
      capabilities: ['data-analysis'],
      tools: ['http_client'],
      system_prompt: 'You are JSON.',
      memory: { enabled: true, scope: 'agent-only' },
      limits: { timeout: '30s', max_message_size: '64KB' },
    });
    const r = ok(parseAgent(body, { file: 'a.json' }));
    expect(r.format).toBe('json');
    expect(r.definition).toMatchObject({
      name: 'json-agent',
      capabilities: ['data-analysis'],
      tools: ['http_client'],
      system_prompt: 'You are JSON.',
      memory: { enabled: true, scope: 'agent' },
      limits: { timeout_ms: 30_000, max_message_size: 65_536 },
    });
  });

  it('the three formats yield the same definition for the same agent', () => {
    const toml = ok(
      parseAgent(
        'name = "same"\ndescription = "d"\ncapabilities = ["c"]\ntools = ["http_client"]\nsystem_prompt = "P"\n',
        { format: 'toml' },
      ),
    ).definition;
    const md = ok(
      parseAgent('---\nname: same\ndescription: d\ncapabilities: [c]\ntools: [http_client]\n---\nP\n', {
        format: 'markdown',
      }),
    ).definition;
    const json = ok(
      parseAgent(
        JSON.stringify({
          name: 'same',
          description: 'd',
          capabilities: ['c'],
          tools: ['http_client'],
          system_prompt: 'P',
        }),
        { format: 'json' },
      ),
    ).definition;
    const { metadata: mdMeta, ...mdRest } = md;
    expect(mdMeta).toEqual({ claude_tools: ['http_client'] });
    expect({ ...mdRest, metadata: {} }).toEqual(toml);
    expect(json).toEqual(toml);
  });
});

describe('format detection', () => {
  it('uses the file extension, then sniffs the content', () => {
    expect(detectFormat('a.TOML', '')).toBe('toml');
    expect(detectFormat('a.md', '')).toBe('markdown');
    expect(detectFormat('a.markdown', '')).toBe('markdown');
    expect(detectFormat('a.json', '')).toBe('json');
    expect(detectFormat(undefined, '\n---\nname: x\n---\n')).toBe('markdown');
    expect(detectFormat(undefined, '  {"name":"x"}')).toBe('json');
    expect(detectFormat(undefined, 'name = "x"')).toBe('toml');
  });
});
