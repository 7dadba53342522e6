import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { parseAgent } from '../../src/agents/index.js';
import { ConfigError, loadServerConfig } from '../../src/config/index.js';
import { formatIssue, type SourceIssue } from '../../src/shared/issues.js';
import { describeIssue, innermostIssue, isLibraryText, LIBRARY_PHRASES } from '../../src/shared/zod-issues.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

// The catalogue of what a user reads when a file is wrong: every message, expectation and hint
// must be in the project's words (field, expected, got, fix), never a library's text unchanged.
const dir = mkdtempSync(join(tmpdir(), 'caxton-errors-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function configIssues(toml: string): SourceIssue[] {
  const file = join(dir, 'caxton.toml');
  writeFileSync(file, toml);
  try {
    loadServerConfig({ file, env: {}, cwd: dir });
  } catch (e) {
    if (e instanceof ConfigError) return e.issues;
    throw e;
  }
  throw new Error(`accepted:\n${toml}`);
}

/** Each text a user reads must not carry a library phrase. */
function expectOwnWords(issues: SourceIssue[], input: string): void {
  expect(issues.length, input).toBeGreaterThan(0);
  for (const i of issues) {
    for (const text of [i.message, i.expected ?? '', i.suggestion ?? '', formatIssue(i)])
      expect(text, `${input}\n→ ${formatIssue(i)}`).not.toMatch(LIBRARY_PHRASES);
  }
}

const BAD_CONFIGS: string[] = [
  '[server]\nport = -1\n',
  '[server]\nport = 70000\n',
  '[server]\nport = "eighty"\n',
  '[server]\nport = 1.5\n',
  '[server]\nhost = ""\n',
  '[server]\nprot = 8080\n',
  '[metrics]\nenabled = "yes"\n',
  '[logging]\nlevel = "loud"\n',
  '[logging]\nlevel = 3\n',
  '[events]\nmax_rows = 0\n',
  '[events]\nmax_rows = "many"\n',
  '[events]\nretention = "forever"\n',
  '[execution]\nisolation = "proces"\n',
  '[llm.providers.a]\ntype = "opnai"\n',
  '[llm.providers.a]\ntype = "openai"\nbase_url = "not a url"\n',
  '[llm.providers.a]\ntype = "openai"\napi_key_env = "has spaces"\n',
  '[llm.providers.a]\ntype = "openai"\nmax_retries = 99\n',
  '[llm.providers.a]\ntype = "openai"\nmax_retries = -1\n',
  '[llm.providers.a]\ntype = "openai"\ntimeout = "fast"\n',
  '[llm.providers.a]\ntype = "openai"\nmodel = ""\n',
  '[llm.providers.a]\ntype = "openai"\nheaders = "x"\n',
  '[llm.providers."1bad"]\ntype = "openai"\n',
  '[llm.model_aliases]\nfast = 3\n',
  '[llm]\nproviders = []\n',
  '[memmory]\n',
  'agents_dir = 3\n',
  'data_dir = []\n',
  '[tools.http_client]\nallowed_host = ["x"]\n',
  '[tools.http_client]\nallowed_hosts = "example.com"\n',
  '[tools.http_client]\nallowed_hosts = ["bad host!"]\n',
  '[tools.Bad.Name]\n',
  '[tools.limits]\nmemory = "lots"\n',
  '[auth]\nenabled = "maybe"\n',
  '[messaging]\nmax_queue = -5\n',
  '[server.tls]\ncert = 1\n',
  '[server.tls]\ncert = "a"\nkey = "b"\nclient_auth = "always"\n',
];

describe('caxton.toml errors are in our words', () => {
  it.each(BAD_CONFIGS)('%s', (toml) => {
    const issues = configIssues(toml);
    expectOwnWords(issues, toml);
    for (const i of issues) {
      expect(i.field, formatIssue(i)).toBeTruthy();
      // A wrong value says what it got, and what is expected or what to do.
      if (i.code === 'invalid_value')
        expect(Boolean(i.expected || i.suggestion || /\(got |, got |expected /.test(i.message)), formatIssue(i)).toBe(
          true,
        );
    }
  });

  it('a misspelled key, at any depth, gets a did-you-mean', () => {
    expect(configIssues('[server]\nprot = 1\n')[0]).toMatchObject({
      field: 'server.prot',
      suggestion: 'did you mean "port"?',
    });
    expect(configIssues('[llm.providers.a]\ntype = "openai"\nbase_ulr = "http://x"\n')[0]).toMatchObject({
      field: 'llm.providers.a.base_ulr',
      suggestion: 'did you mean "base_url"?',
    });
    expect(configIssues('[tools.http_client]\nallowed_host = ["x"]\n')[0]).toMatchObject({
      suggestion: 'did you mean "allowed_hosts"?',
    });
    expect(configIssues('[memmory]\n')[0]).toMatchObject({ suggestion: 'did you mean "memory"?' });
  });

  it('a number out of range names the field, the bound and the value', () => {
    const [i] = configIssues('[events]\nmax_rows = 0\n');
    expect(i!.message).toBe('events.max_rows must be at least 100, got 0');
    expect(i!.expected).toBe('at least 100');
  });
});

const BAD_AGENTS: [string, string][] = [
  ['a.toml', 'name = 3\nsystem_prompt = "x"\n'],
  ['a.toml', 'name = "ok"\n'],
  ['a.toml', 'name = "ok"\nsystem_prompt = "x"\ncapabilities = "one"\n'],
  ['a.toml', 'name = "ok"\nsystem_prompt = "x"\ncapabilities = [1, 2]\n'],
  ['a.toml', 'name = "ok"\nsystem_prompt = "x"\nversion = 2\n'],
  ['a.toml', 'name = ""\nsystem_prompt = "x"\n'],
  ['a.toml', 'name = "ok"\nsystem_prompt = ""\n'],
  ['a.toml', 'name = "ok"\nsystem_prompt = "x"\n[memory]\nenabled = "yes"\n'],
  ['a.toml', 'name = "ok"\nsystem_prompt = "x"\n[llm]\ntemperature = 9\n'],
  ['a.toml', 'name = "ok"\nsystem_prompt = "x"\n[llm]\nmax_tokens = -1\n'],
  ['a.toml', 'name = "ok"\nsystem_prompt = "x"\n[conversation]\nmax_turns = 0\n'],
  ['a.toml', 'name = "ok"\nsystem_prompt = "x"\n[execution]\nisolation = "proces"\n'],
  ['a.toml', 'name = "ok"\nsystem_prompt = "x"\n[messaging]\nprotocols = ["shout"]\n'],
  ['a.toml', 'name = "ok"\nsystem_prompt = "x"\ntools = "all"\n'],
  ['a.toml', 'name = "ok"\nsystem_prompt = "x"\nnmae = "typo"\n'],
  ['a.json', '{"name": 5, "system_prompt": []}'],
  ['a.md', '---\nname: 5\ndescription: d\n---\nPrompt\n'],
  ['a.md', '---\nname: ok\ndescription: d\nmodel: 7\n---\nPrompt\n'],
  ['a.md', '---\nname: ok\ndescription: d\ntools: 7\n---\nPrompt\n'],
];

describe('agent file errors are in our words', () => {
  it.each(BAD_AGENTS)('%s %s', (file, text) => {
    const r = parseAgent(text, { file });
    const issues = r.ok ? r.warnings : [...r.errors, ...r.warnings];
    expectOwnWords(issues, text);
  });
});

describe('describeIssue rewrites every zod default text', () => {
  const schema = z.strictObject({
    n: z.number().int().min(1).max(5),
    m: z.number().multipleOf(5),
    s: z.string().min(2).max(3),
    e: z.enum(['alpha', 'beta']),
    l: z.literal('x'),
    u: z.url(),
    r: z.string().regex(/^a/),
    a: z.array(z.string()).min(1).max(1),
    o: z.union([z.number(), z.strictObject({ k: z.string() })]),
    rec: z.record(z.string().regex(/^k/), z.number()),
    email: z.email(),
    b: z.boolean(),
  });
  const inputs: Record<string, unknown>[] = [
    {
      n: 0,
      m: 3,
      s: 'a',
      e: 'alpah',
      l: 'y',
      u: 'no',
      r: 'b',
      a: [],
      o: 'x',
      rec: { x: 1 },
      email: 'no',
      b: 'yes',
      extra: 1,
    },
    { n: 9, s: 'abcd', a: ['1', '2'], o: { k: 1 }, rec: { k: 'v' } },
    { n: 1.5, s: 3, e: 1, u: 3, a: 'x', o: [], rec: [], b: 0 },
  ];
  it.each(inputs)('%j', (input) => {
    const r = schema.safeParse(input);
    expect(r.success).toBe(false);
    for (const issue of r.error!.issues) {
      expect(isLibraryText(issue), issue.message).toBe(true);
      const value = issue.path.reduce<unknown>((o, k) => (o as Record<PropertyKey, unknown> | undefined)?.[k], input);
      const t = describeIssue(issue, value);
      for (const text of [t.message, t.expected ?? '', t.suggestion ?? ''])
        expect(text, JSON.stringify(issue)).not.toMatch(LIBRARY_PHRASES);
    }
  });

  it('a union no branch accepted names the field inside the branch that failed, else the accepted forms', () => {
    const schema = z.object({
      c: z.union([z.string(), z.array(z.object({ text: z.string(), refusal: z.string().optional() })), z.null()]),
    });
    const deep = schema.safeParse({ c: [{ text: 'a', refusal: 5 }] }).error!.issues[0]!;
    expect(deep.code).toBe('invalid_union');
    expect(describeIssue(deep, [{ text: 'a', refusal: 5 }])).toMatchObject({
      field: 'c.0.refusal',
      message: 'c.0.refusal must be a string, got 5',
    });
    expect(innermostIssue(deep).path).toEqual(['c', 0, 'refusal']);
    const missing = schema.safeParse({ c: [{}] }).error!.issues[0]!;
    expect(describeIssue(missing, [{}]).message).toBe('required field "c.0.text" is missing');
    const flat = schema.safeParse({ c: 5 }).error!.issues[0]!;
    expect(describeIssue(flat, 5)).toMatchObject({
      message: 'c has none of the accepted forms (a string, a list or null), got 5',
      expected: 'a string, a list or null',
    });
    expect(describeIssue(flat, 5).field).toBeUndefined();
    expect(innermostIssue(flat)).toBe(flat);
  });

  it('keeps a message the schema wrote, adding what it got', () => {
    const r = z.object({ p: z.number({ error: 'expected a port number' }) }).safeParse({ p: 'x' });
    const t = describeIssue(r.error!.issues[0]!, 'x');
    expect(t.message).toBe('expected a port number (got "x")');
  });
});

describe('API request errors are in our words', () => {
  let t: TestServer;
  afterAll(async () => t?.close());
  const requests: [string, string, unknown][] = [
    ['GET', '/api/v1/status/overview?window=soon', undefined],
    ['GET', '/api/v1/messages?limit=-3', undefined],
    ['GET', '/api/v1/conversations?limit=abc', undefined],
    ['POST', '/api/v1/messages', {}],
    ['POST', '/api/v1/messages', { performative: 'shout', content: 5, receivers: 'x' }],
    ['POST', '/api/v1/agents/nobody/invoke', { input: 5 }],
    ['POST', '/api/v1/memory/entities', { entities: [{ name: 3 }] }],
  ];
  it.each(requests)('%s %s', async (method, path, body) => {
    t ??= await startTestServer();
    const res = await fetch(t.url + path, {
      method,
      ...(body !== undefined && { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    });
    const text = await res.text();
    expect(res.status, text).toBeGreaterThanOrEqual(400);
    expect(text).not.toMatch(LIBRARY_PHRASES);
  });
});
