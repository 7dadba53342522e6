/**
 * Fuzzing every in-process parser of outside input (docs/fuzzing.md): request-body JSON, agent
 * files (TOML, Markdown + YAML frontmatter, JSON), ACL messages, tool manifests, memory imports
 * (JSON and JSONL), caxton.toml, and the workspace and web tools' parsers of model and page input
 * (HTML to Markdown, the workspace.bash command line, glob patterns). For each target: the saved corpus is replayed, then
 * structure-aware input is generated for the time budget. A finding is a throw other than the
 * documented CaxtonError (e.g. a RangeError: stack overflow), a call over 1 s, or a result that
 * cannot be serialized (what the server stores must stay readable).
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAgent } from '../../src/agents/index.js';
import { parseJsonBody } from '../../src/api/json-body.js';
import { loadServerConfig } from '../../src/config/index.js';
import { DEFAULT_LIMITS, prepareImport } from '../../src/memory/index.js';
import { parseMessage } from '../../src/messaging/index.js';
import { MAX_INPUT_DEPTH, valueDepth } from '../../src/shared/depth.js';
import { CaxtonError } from '../../src/shared/errors.js';
import { jsonProblemError, scanJsonText } from '../../src/shared/json-text.js';
import { parseToolManifest } from '../../src/tools/servers/index.js';
import { htmlToMarkdown } from '../../src/tools/web/index.js';
import { Glob, GlobError, inspectCommandLine } from '../../src/tools/workspace/index.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import {
  corpus,
  documents,
  preview,
  FUZZ_SEED,
  fuzz,
  guarded,
  HANG_MS,
  hostileJson,
  startWatchdog,
  stopWatchdog,
  testTimeout,
  yamlAliasBomb,
  type CallOutcome,
} from './harness.js';

const root = new URL('../../', import.meta.url);
const read = (rel: string): string => readFileSync(new URL(rel, root), 'utf8');

const AGENT_TOML = [
  read('examples/agents/assistant.toml'),
  read('examples/agents/data-analyzer.toml'),
  'name = "a"\ncapabilities = ["x"]\nsystem_prompt = "p"\n[parameters]\nk = { a = [1, 2, { b = "c" }] }\n',
];
const AGENT_MD = [
  read('examples/agents/code-reviewer.md'),
  '---\nname: helper\ndescription: Helps.\ntools: Read, Grep\nmodel: sonnet\n---\nYou help.\n',
  `---\nname: bomb\ndescription: x\n${yamlAliasBomb(4, 4)}\n---\nbody\n`,
];
const AGENT_JSON = [
  JSON.stringify(
    {
      name: 'j',
      description: 'd',
      capabilities: ['c'],
      system_prompt: 'p',
      parameters: { a: { b: [1, 2] } },
      memory: { enabled: true },
    },
    null,
    2,
  ),
];
const MANIFESTS = readdirSync(new URL('tools/builtin/', root), { withFileTypes: true })
  .filter((d) => d.isDirectory() && d.name !== 'shared')
  .map((d) => read(`tools/builtin/${d.name}/caxton-tool.toml`));
const MESSAGES = [
  JSON.stringify({
    performative: 'request',
    sender: 'client',
    receivers: ['echo'],
    content: 'hello',
    protocol: 'fipa-request',
    conversation_id: 'c1',
  }),
  JSON.stringify({
    performative: 'cfp',
    sender: 'client',
    capability: 'testing',
    content: { task: 'x', 'X-select': 'lowest' },
    reply_by: '2030-01-01T00:00:00Z',
    ontology: 'o',
    language: 'json',
  }),
  JSON.stringify({
    performative: 'inform',
    receivers: ['a', 'b'],
    content: [1, { nested: { deep: true } }],
    'X-priority': 3,
    'in-reply-to': 'm1',
  }),
];
const MEMORY_JSON = [
  JSON.stringify({
    format: 'caxton-memory',
    version: 1,
    exported_at: '2026-01-01T00:00:00Z',
    embedding: null,
    scopes: ['workspace', 'agent:a'],
    entities: [
      {
        scope: 'workspace',
        name: 'Ada',
        entityType: 'person',
        observations: ['wrote programs'],
        metadata: { tags: ['x'], n: 1 },
        created_at: '2026-01-01T00:00:00Z',
      },
      { scope: 'agent:a', name: 'B', entityType: 't', observations: [] },
    ],
    relations: [{ scope: 'workspace', from: 'Ada', to: 'B', relationType: 'knows' }],
  }),
];
const MEMORY_JSONL = [
  [
    '{"type":"entity","name":"A","entityType":"t","observations":["o1","o2"]}',
    '{"type":"entity","name":"B","entityType":"t","observations":[]}',
    '{"type":"relation","from":"A","to":"B","relationType":"r"}',
  ].join('\n'),
];
const CONFIGS = [
  read('examples/caxton.toml'),
  '[server]\nport = 8080\nmax_body_size = "1MB"\n[llm]\ndefault_provider = "d"\n[llm.providers.d]\ntype = "scripted"\nscript = "replies.toml"\n[memory]\nenabled = true\n[messaging]\nmax_hops = 8\n',
];

const HTML = [
  '<!doctype html><html><head><title>T &amp; t</title><script>x<y</script></head><body><h2>H</h2><p>a <b>b</b> <a href="/x">c</a></p><ul><li>1<ol><li>2</li></ol></li></ul><pre>p  re</pre><table><tr><td>1</td></tr></table><img src="i.png" alt="A"></body></html>',
  '<div><!-- c --><p>&#x263A; &lt;&nbsp;</p><br><hr><blockquote>q</blockquote><code>c</code></div>',
];
const SHELL = [
  `ls -la | grep 'a b' && wc -l < x.txt; echo "done" > out 2>&1`,
  'cat a\\ b || echo $(x)\n# c\nls',
  "echo 'un",
  'a | | b',
];
const GLOBS = ['**/*.{ts,tsx}', 'src/[a-z]?*.js', '{a,{b,c}}/**/x', '*a*a*a*a*b', '[!x-z]\\*'];

const TARGETS = [
  'json-body',
  'agent-toml',
  'agent-markdown',
  'agent-json',
  'acl-message',
  'tool-manifest',
  'memory-json',
  'memory-jsonl',
  'caxton-toml',
  'html-markdown',
  'shell-line',
  'glob-pattern',
] as const;
type Target = (typeof TARGETS)[number];

/** The documented failure of every target is a CaxtonError (ConfigError is one) with a message. */
function expectOnlyDocumentedError(
  target: Target,
  input: string,
  o: CallOutcome<unknown>,
  codes?: readonly string[],
): void {
  const brief = preview(input);
  expect(
    o.ms,
    `${target}: one call took ${Math.round(o.ms)} ms of CPU (${Math.round(o.wallMs)} ms wall; limit ${HANG_MS}); input ${brief}`,
  ).toBeLessThan(HANG_MS);
  if (o.error !== undefined) {
    const e = o.error;
    expect(
      e instanceof CaxtonError,
      `${target}: threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)} for input ${brief}`,
    ).toBe(true);
    const ce = e as CaxtonError;
    expect(ce.message.length).toBeGreaterThan(0);
    if (codes) expect(codes, `${target}: error code ${ce.code} (${ce.message})`).toContain(ce.code);
    expect(() => JSON.stringify(ce.details)).not.toThrow();
  } else {
    // What a parser returns may be stored and served later: it must serialize.
    expect(() => JSON.stringify(o.value), `${target}: the result does not serialize; input ${brief}`).not.toThrow();
  }
}

let dir: string;
let configPath: string;

/** Every target: input text → the checks of its property. */
const CHECKS: Record<Target, (input: string) => void> = {
  'json-body': (input) => {
    const o = guarded('json-body', input, (t) => parseJsonBody(Buffer.from(t, 'utf8')));
    expectOnlyDocumentedError('json-body', input, o, ['invalid_request', 'input_too_deep']);
    if (o.error === undefined) expect(valueDepth(o.value, MAX_INPUT_DEPTH)).toBeLessThanOrEqual(MAX_INPUT_DEPTH);
    // The scanner and JSON.parse agree on what is JSON.
    let parses = true;
    try {
      JSON.parse(input.charCodeAt(0) === 0xfeff ? input.slice(1) : input);
    } catch {
      parses = false;
    }
    const scanned = scanJsonText(input.charCodeAt(0) === 0xfeff ? input.slice(1) : input, {
      duplicateKeys: false,
      prototypeKeys: false,
    });
    if (input.length > 0 && !/[\ud800-\udfff]/.test(input))
      expect(scanned === undefined, `scanner and JSON.parse disagree on ${preview(input)}: ${scanned?.problem}`).toBe(
        parses,
      );
    // The scan is skipped only for a text it would pass: the answer is the scan's either way.
    const decoded = Buffer.from(input, 'utf8').toString('utf8');
    const text = decoded.charCodeAt(0) === 0xfeff ? decoded.slice(1) : decoded;
    if (text.length > 0) {
      const problem = scanJsonText(text, { maxDepth: MAX_INPUT_DEPTH });
      if (problem !== undefined)
        expect((o.error as Error | undefined)?.message, `parsed although the scan refuses ${preview(input)}`).toBe(
          jsonProblemError(problem, 'the request body').message,
        );
      else expect(o.value, `the scan passes ${preview(input)}`).toEqual(JSON.parse(text));
    }
  },
  'agent-toml': (input) => agentCheck('agent-toml', input, 'toml'),
  'agent-markdown': (input) => agentCheck('agent-markdown', input, 'markdown'),
  'agent-json': (input) => agentCheck('agent-json', input, 'json'),
  'acl-message': (input) => {
    const o = guarded('acl-message', input, (t) => {
      const bytes = Buffer.from(t, 'utf8');
      return parseMessage(
        parseJsonBody(bytes, 'invalid_message'),
        { maxMessageSize: 256 * 1024, defaultSender: 'api' },
        bytes.length,
      );
    });
    expectOnlyDocumentedError('acl-message', input, o, ['invalid_message', 'payload_too_large', 'input_too_deep']);
  },
  'tool-manifest': (input) => {
    const o = guarded('tool-manifest', input, (t) => parseToolManifest(t));
    expect(o.error, `tool-manifest threw ${String(o.error)}`).toBeUndefined();
    expectOnlyDocumentedError('tool-manifest', input, o);
  },
  'memory-json': (input) => {
    const o = guarded('memory-json', input, (t) => prepareImport({ limits: DEFAULT_LIMITS }, t, { format: 'json' }));
    expectOnlyDocumentedError('memory-json', input, o, ['invalid_request', 'payload_too_large', 'input_too_deep']);
  },
  'memory-jsonl': (input) => {
    const o = guarded('memory-jsonl', input, (t) =>
      prepareImport({ limits: DEFAULT_LIMITS }, t, { scope: 'workspace' }),
    );
    expectOnlyDocumentedError('memory-jsonl', input, o, ['invalid_request', 'payload_too_large', 'input_too_deep']);
  },
  'caxton-toml': (input) => {
    writeFileSync(configPath, input);
    const o = guarded('caxton-toml', input, () => loadServerConfig({ file: configPath, env: {}, cwd: dir }));
    expectOnlyDocumentedError('caxton-toml', input, o, ['invalid_config', 'input_too_deep']);
  },
  'html-markdown': (input) => {
    const o = guarded('html-markdown', input, (t) => htmlToMarkdown(t, 'https://example.com/a/'));
    expect(o.error, `html-markdown threw ${String(o.error)}`).toBeUndefined();
    expectOnlyDocumentedError('html-markdown', input, o);
  },
  'shell-line': (input) => {
    const o = guarded('shell-line', input, (t) => inspectCommandLine(t));
    expect(o.error, `shell-line threw ${String(o.error)}`).toBeUndefined();
    expectOnlyDocumentedError('shell-line', input, o);
  },
  'glob-pattern': (input) => {
    const o = guarded('glob-pattern', input, (t) => {
      try {
        const g = new Glob(t, { basenameAnywhere: true });
        return [g.matches(t.replace(/[*?[\]{},]/g, 'a').slice(0, 300)), g.matches('a/'.repeat(100) + 'a'.repeat(200))];
      } catch (e) {
        if (e instanceof GlobError) return e.message;
        throw e;
      }
    });
    expect(o.error, `glob-pattern threw ${String(o.error)}`).toBeUndefined();
    expectOnlyDocumentedError('glob-pattern', input, o);
  },
};

function agentCheck(target: Target, input: string, format: 'toml' | 'markdown' | 'json'): void {
  const o = guarded(target, input, (t) =>
    parseAgent(t, { format, file: `agent.${format === 'markdown' ? 'md' : format}` }),
  );
  expect(
    o.error,
    `${target}: parseAgent threw ${o.error instanceof Error ? `${o.error.name}: ${o.error.message}` : String(o.error)}`,
  ).toBeUndefined();
  expectOnlyDocumentedError(target, input, o);
  const r = o.value as ReturnType<typeof parseAgent>;
  if (!r.ok) for (const e of r.errors) expect(typeof e.message).toBe('string');
}

const ARBITRARIES: Record<Target, fc.Arbitrary<string>> = {
  'json-body': fc.oneof(
    documents([...MESSAGES, ...MEMORY_JSON, ...AGENT_JSON]),
    hostileJson.map((v) => JSON.stringify(v, null, 1)),
  ),
  'agent-toml': documents(AGENT_TOML),
  'agent-markdown': fc.oneof(
    { arbitrary: documents(AGENT_MD), weight: 8 },
    // Alias bombs of every size, and deep flow collections in the frontmatter.
    {
      arbitrary: fc
        .tuple(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 2, max: 12 }))
        .map(([l, f]) => `---\nname: bomb\n${yamlAliasBomb(l, f)}\n---\nx\n`),
      weight: 1,
    },
    {
      arbitrary: fc
        .integer({ min: 1, max: 50_000 })
        .map((n) => `---\nname: deep\nparameters: ${'['.repeat(n)}${']'.repeat(n)}\n---\nx\n`),
      weight: 1,
    },
  ),
  'agent-json': documents(AGENT_JSON),
  'acl-message': fc.oneof(
    documents(MESSAGES),
    fc
      .record({
        performative: fc.constantFrom('inform', 'request', 'cfp', 'x'),
        receivers: fc.array(hostileJson, { maxLength: 3 }),
        content: hostileJson,
      })
      .map((v) => JSON.stringify(v)),
  ),
  'tool-manifest': documents(MANIFESTS),
  'memory-json': documents(MEMORY_JSON),
  'memory-jsonl': documents(MEMORY_JSONL),
  'caxton-toml': fc.oneof(
    documents(CONFIGS),
    fc.integer({ min: 1, max: 50_000 }).map((n) => `[server]\nx = ${'['.repeat(n)}${']'.repeat(n)}\n`),
  ),
  'html-markdown': fc.oneof(
    { arbitrary: documents(HTML), weight: 6 },
    { arbitrary: fc.integer({ min: 1, max: 100_000 }).map((n) => `${'<div><a href=x>'.repeat(n)}t`), weight: 1 },
    {
      arbitrary: fc.integer({ min: 1, max: 100_000 }).map((n) => `<pre>${' \t'.repeat(n)}</pre>${'<!--'.repeat(n)}`),
      weight: 1,
    },
  ),
  'shell-line': fc.oneof(
    documents(SHELL),
    fc
      .array(fc.constantFrom('ls', '|', '&&', "'", '"', '\\', '>', '2>&1', '<(', '$', ' ', '\n', '#', 'a'), {
        maxLength: 400,
      })
      .map((a) => a.join('')),
  ),
  'glob-pattern': fc.oneof(
    documents(GLOBS),
    fc
      .array(fc.constantFrom('*', '**', '/', '?', '[', ']', '!', '-', '{', '}', ',', '\\', 'a', 'b'), {
        maxLength: 300,
      })
      .map((a) => a.join('')),
    fc.integer({ min: 1, max: 200 }).map((n) => '{a,b}'.repeat(n)),
  ),
};

beforeAll(() => {
  dir = makeTempDir('caxton-fuzz-');
  configPath = join(dir, 'caxton.toml');
  writeFileSync(join(dir, 'replies.toml'), 'fallback = "ok"\n');
  // Loading the shell parser (1.5 MB of JavaScript, once per process) is not a parse: done before the clock runs.
  inspectCommandLine('true');
  startWatchdog([...TARGETS]);
  console.log(`fuzz seed ${FUZZ_SEED} (replay with CAXTON_FUZZ_SEED=${FUZZ_SEED})`);
});
afterAll(() => {
  stopWatchdog();
  removeTempDirs();
});

describe.each(TARGETS)('fuzz %s', (target) => {
  it('replays the saved corpus', () => {
    // Every file, then one failure listing all that fail: each names its own finding.
    const failed: string[] = [];
    for (const [name, text] of corpus(target)) {
      try {
        CHECKS[target](text);
      } catch (e) {
        failed.push(`test/fuzz/corpus/${target}/${name}: ${preview((e as Error).message, 1000)}`);
      }
    }
    if (failed.length > 0) throw new Error(`${failed.length} corpus input(s) fail:\n${failed.join('\n')}`);
  });

  it(
    'generated input: only documented errors, no call over 1 s, results serialize',
    async () => {
      const runs = await fuzz(
        target,
        ARBITRARIES[target],
        (input) => CHECKS[target](input),
        (input) => input,
      );
      console.log(`fuzz ${target}: ${runs} inputs`);
      expect(runs).toBeGreaterThan(0);
    },
    testTimeout(),
  );
});
