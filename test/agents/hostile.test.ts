import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseAgent, type ParseResult } from '../../src/agents/parse.js';
import { expandedSize, scanYaml } from '../../src/agents/bounds.js';
import { scanJsonText } from '../../src/shared/json-text.js';
import type { AgentDefinition } from '../../src/agents/definition.js';
import { renderTemplate } from '../../src/execution/prompt-template.js';
import { parseToolManifest } from '../../src/tools/servers/manifest.js';
import { scanTomlKeys, tomlHeaderKey, tomlKeyPrefix } from '../../src/shared/toml-locator.js';
import { parseDuration, parseSize } from '../../src/shared/units.js';
import { ConfigError, loadServerConfig } from '../../src/config/index.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

/** The file's own metadata: a Claude Code file without `tools` is also marked as given the granted toolkit. */
function userMetadata(m: Record<string, unknown>): Record<string, unknown> {
  const { claude_tools_unlisted: _marked, ...own } = m;
  return own;
}

/**
 * Hostile agent input: each finding reproduced. The inputs are the reported ones (or bigger);
 * what is asserted is the outcome (a clear error naming the field and the limit, never an
 * exception). That the work stays small is shown against a live server in
 * test/api/hostile-agents.test.ts (/health answers meanwhile) and measured in bench/hostile.ts.
 */

const errorsOf = (r: ParseResult) => (r.ok ? [] : r.errors);
const first = (r: ParseResult) => {
  expect(r.ok, JSON.stringify(r).slice(0, 400)).toBe(false);
  return errorsOf(r)[0]!;
};
const nested = (n: number, leaf = '1') => '['.repeat(n) + leaf + ']'.repeat(n);

/** The issue's ReDoS input: a valid table header of `[` + 3,200 spaces + `"]"` + 3,200 spaces + `]`. */
export const HOSTILE_HEADER = `[${' '.repeat(3200)}"]"${' '.repeat(3200)}]`;

describe('TOML locator: linear scanners instead of backtracking regexes', () => {
  it('the 6.4 KB header is read as the table "]"', () => {
    const keys = scanTomlKeys(`name = "a"\n${HOSTILE_HEADER}\nx = 1\n`);
    expect(keys.get(']')).toMatchObject({ line: 2, column: 1 });
    expect(keys.get('].x')).toMatchObject({ line: 3, table: ']' });
  });

  it('an agent file with that header parses to a clear result', () => {
    const r = parseAgent(`name = "a"\nsystem_prompt = "p"\n${HOSTILE_HEADER}\nx = 1\n`, { file: 'h.toml' });
    expect(r.ok).toBe(true);
    expect(r.warnings.some((w) => w.code === 'unknown_key' && w.field === ']' && w.line === 3)).toBe(true);
  });

  it('headers: bracket inside quotes, array tables, comments; not headers: unclosed, trailing text', () => {
    expect(tomlHeaderKey('[ a.b ]')).toBe('a.b');
    expect(tomlHeaderKey('[[tools]]  # the tools')).toBe('tools');
    expect(tomlHeaderKey('["x]y".z]')).toBe('"x]y".z');
    expect(tomlHeaderKey('[a')).toBeUndefined();
    expect(tomlHeaderKey('[a] b')).toBeUndefined();
    expect(tomlHeaderKey('[[a]')).toBeUndefined();
    expect(tomlHeaderKey('[]')).toBeUndefined();
  });

  // The regexes the scanners replace; on input without quotes and brackets inside keys they
  // must agree exactly (the scanners additionally read `["x]y"]`).
  const OLD_HEADER_RE = /^\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$/;
  const OLD_KEY_RE = /^((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=/;
  const line = fc
    .array(fc.constantFrom('a', 'b', '_', '-', '.', ' ', '=', '#', '"', "'", '[', ']', '1', 'x'), { maxLength: 14 })
    .map((cs) => cs.join(''));

  it('tomlKeyPrefix finds exactly the keys the old KEY_RE found (property)', () => {
    fc.assert(
      fc.property(line, (l) => {
        const t = l.trim();
        const m = OLD_KEY_RE.exec(t);
        const k = tomlKeyPrefix(t);
        expect(k?.key).toBe(m?.[1]);
        if (m && k) expect(k.end).toBe(m[0].length);
      }),
      { numRuns: 3000 },
    );
  });

  it('tomlHeaderKey agrees with the old HEADER_RE where keys hold no quotes (property)', () => {
    fc.assert(
      fc.property(line, (l) => {
        const t = `[${l}`.trim();
        if (/["']/.test(t)) return;
        const m = OLD_HEADER_RE.exec(t);
        const k = tomlHeaderKey(t);
        // The old regex also took `[a]]`, `[[a]`, `[[]` and `[ ]` (not TOML); the scanner does not.
        if (
          m &&
          k === undefined &&
          (t.startsWith('[[') !== /\]\]\s*(#.*)?$/.test(t) || m[1]!.includes('[') || m[1]!.trim() === '')
        )
          return;
        expect(k).toBe(m?.[1]);
      }),
      { numRuns: 3000 },
    );
  });
});

describe('nesting depth: a field nested more than 64 levels is a clear error in every format', () => {
  it('JSON: parameters 100,000 deep (a stack overflow before) names the field, line and limit', () => {
    const e = first(
      parseAgent(`{"name":"a","system_prompt":"x",\n"parameters":{"p":${nested(100_000)}}}`, { file: 'deep.json' }),
    );
    expect(e).toMatchObject({ code: 'input_too_deep', field: 'parameters', file: 'deep.json', line: 2 });
    expect(e.message).toMatch(/"parameters" is nested more than 64 levels deep/);
  });

  it('JSON: metadata 2,000 deep; 63 levels of parameters are fine', () => {
    expect(
      first(
        parseAgent(JSON.stringify({ name: 'a', system_prompt: 'x', metadata: { m: JSON.parse(nested(2000)) } }), {
          format: 'json',
        }),
      ),
    ).toMatchObject({
      code: 'input_too_deep',
      field: 'metadata',
    });
    const ok = parseAgent(
      JSON.stringify({ name: 'a', system_prompt: 'x', parameters: { p: JSON.parse(nested(62)) } }),
      { format: 'json' },
    );
    expect(ok.ok).toBe(true);
  });

  it('TOML: deep inline arrays, deep dotted table headers and deep dotted keys', () => {
    const base = 'name = "a"\nsystem_prompt = "x"\n';
    expect(first(parseAgent(`${base}[parameters]\np = ${nested(5000)}\n`))).toMatchObject({
      code: 'input_too_deep',
      line: 4,
    });
    const header = first(parseAgent(`${base}[parameters.${Array(20_000).fill('k').join('.')}]\nx = 1\n`));
    expect(header).toMatchObject({ code: 'input_too_deep', field: 'parameters', line: 3 });
    expect(header.message).toBe(
      'the table name [parameters.…] has more than 65 parts, so it nests more than 64 levels deep (the limit is 64)',
    );
    expect(first(parseAgent(`${base}[metadata]\n${Array(100).fill('k').join('.')} = 1\n`))).toMatchObject({
      code: 'input_too_deep',
      line: 4,
    });
    expect(first(parseAgent(`${base}parameters = { ${Array(100_000).fill('k').join('.')} = 1 }\n`))).toMatchObject({
      code: 'input_too_deep',
      line: 3,
    });
    // Below the dotted-key bound but deeper than 64 in total: found after parsing, naming the field.
    expect(
      first(parseAgent(`${base}[parameters.${Array(40).fill('k').join('.')}]\nx = ${nested(30)}\n`)),
    ).toMatchObject({ code: 'input_too_deep', field: 'parameters', line: 3, column: 1 });
    // Dots inside strings, comments and numbers are not keys.
    const dots = '.'.repeat(500);
    expect(
      parseAgent(
        `${base}description = "${dots}"\n# ${dots}\ndocumentation = '''\n${dots}\n'''\n[parameters]\nf = [${Array(100).fill('1.5').join(', ')}]\n`,
      ).ok,
    ).toBe(true);
  });

  it('Markdown: deep frontmatter in flow, block and "- - -" form is refused before the YAML parser runs', () => {
    // (Sizes under the 64 KiB frontmatter bound, which would refuse them first.)
    for (const fm of [
      `metadata: ${nested(20_000)}`,
      `metadata:\n  ${'- '.repeat(20_000)}x`,
      `metadata:\n${Array.from({ length: 300 }, (_, i) => `${' '.repeat(i + 1)}k:`).join('\n')} 1`,
    ]) {
      const e = first(parseAgent(`---\nname: a\n${fm}\n---\nhello\n`, { file: 'deep.md' }));
      expect(e).toMatchObject({ code: 'input_too_deep', file: 'deep.md' });
      expect(e.line).toBeGreaterThanOrEqual(3);
      expect(e.message).toMatch(/more than 256 levels/);
    }
  });

  it('Markdown: metadata 70 levels deep (below the structure bound) is refused by the field check', () => {
    expect(first(parseAgent(`---\nname: a\nmetadata: ${nested(70)}\n---\nhello\n`))).toMatchObject({
      code: 'input_too_deep',
      field: 'metadata',
      line: 3,
    });
  });

  it('comments between ever deeper lines do not hide the depth from the structure scan', () => {
    const yaml = Array.from({ length: 400 }, (_, i) => `${' '.repeat(i + 1)}k:\n# a comment`).join('\n');
    expect(scanYaml(`m:\n${yaml} 1\n`)).toMatchObject({ problem: 'depth' });
    expect(scanYaml('a: 1\nb:\n  - [1, {c: "[[[[[[["}]\n  - \'{{{{{\'\n')).toBeUndefined();
  });

  it('the JSON depth scan ignores brackets inside strings and names the top-level key', () => {
    expect(scanJsonText(`{"a":"${'['.repeat(500)}"}`, { maxDepth: 65 })).toBeUndefined();
    expect(scanJsonText(`{"a\\"b":${nested(100)}}`, { maxDepth: 65 })).toMatchObject({ kind: 'too_deep', key: 'a"b' });
  });
});

describe('the other TOML readers share the bound: tool manifests and caxton.toml', () => {
  it('a tool manifest with a 20,000-part table name or a deep inline array is a clear error', () => {
    const deepHeader = parseToolManifest(
      `name = "t"\nversion = "1.0.0"\n[config.${Array(20_000).fill('k').join('.')}]\n`,
    );
    expect(!deepHeader.ok && deepHeader.errors[0]).toMatchObject({ code: 'input_too_deep', field: 'config', line: 3 });
    const deepInline = parseToolManifest(`name = "t"\nversion = "1.0.0"\nx = ${nested(5000)}\n`);
    expect(!deepInline.ok && deepInline.errors[0]).toMatchObject({ code: 'input_too_deep', line: 3 });
  });

  it('caxton.toml nested too deep is a ConfigError naming the file, line and field', () => {
    const dir = makeTempDir('caxton-hostile-config-');
    const file = join(dir, 'caxton.toml');
    writeFileSync(file, `[server]\nport = 8080\n[memory.${Array(100).fill('k').join('.')}]\n`);
    let err: unknown;
    try {
      loadServerConfig({ file, env: {} });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).issues[0]).toMatchObject({ code: 'input_too_deep', file, line: 3, field: 'memory' });
    removeTempDirs();
  });
});

describe('YAML aliases are bounded', () => {
  // Nine levels of nine aliases each: 9^9 (387 million) strings once expanded.
  const laughs = [
    'l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]',
    ...Array.from({ length: 8 }, (_, i) => `l${i + 1}: &l${i + 1} [${Array(9).fill(`*l${i}`).join(', ')}]`),
  ];

  it('a billion-laughs frontmatter is an error naming the file and the line of the first alias', () => {
    const md = `---\nname: bomb\nmetadata:\n${laughs.map((l) => `  ${l}`).join('\n')}\n---\nhello\n`;
    const e = first(parseAgent(md, { file: 'bomb.md' }));
    expect(e).toMatchObject({ code: 'yaml_alias_limit', file: 'bomb.md', line: 5 });
    expect(e.message).toMatch(/aliases expand too much/);
  });

  it('merge keys cannot expand past the bound either (a frontmatter is YAML 1.2: "<<" is a plain key, its aliases count)', () => {
    const merges = [
      'a0: &a0 {x: 1, y: 2}',
      ...Array.from({ length: 25 }, (_, i) => `a${i + 1}: &a${i + 1}\n    <<: [*a${i}]\n    k${i}: [*a${i}, *a${i}]`),
    ];
    expect(first(parseAgent(`---\nname: m\nmetadata:\n  ${merges.join('\n  ')}\n---\nhi\n`))).toMatchObject({
      code: 'yaml_alias_limit',
      line: 6,
      column: 10,
    });
  });

  it('few aliases of a wide list: refused once the expansion outgrows the text', () => {
    const md = `---\nname: wide\nmetadata:\n  a: &a [${Array(20_000).fill('1').join(',')}]\n  b: [${Array(90).fill('*a').join(',')}]\n---\nhi\n`;
    const e = first(parseAgent(md));
    expect(e).toMatchObject({ code: 'yaml_alias_limit', line: 5 });
    expect(e.message).toMatch(/more than \d+ values/);
  });

  it('more than 1,000 alias tokens are refused before parsing (yaml resolves each by walking the document: 16,000 took 68 s)', () => {
    const many = `---\nname: a\nmetadata:\n  k: &a x\n  r: [${Array(1_500).fill('*a').join(', ')}]\n---\nhi\n`;
    const e = first(parseAgent(many, { file: 'many.md' }));
    expect(e).toMatchObject({ code: 'yaml_alias_limit', file: 'many.md', line: 5 });
    expect(e.message).toMatch(/more than 1000 aliases/);
    expect(scanYaml('a: "*not" \nb: \'*alias\'\nc: |\n  *x\n')).toBeUndefined();
  });

  it("a frontmatter of 16,000 keys is refused before the YAML parser runs (yaml's duplicate-key check compared every pair: 7.6 s); 900 keys load; a repeated key keeps the last value, as Claude Code does", () => {
    const wide = first(
      parseAgent(
        `---\nname: a\nmetadata:\n${Array.from({ length: 16_000 }, (_, i) => `  k${i}: x`).join('\n')}\n---\nhi\n`,
        { file: 'wide.md' },
      ),
    );
    expect(wide).toMatchObject({ code: 'frontmatter_too_large', file: 'wide.md' });
    const ok = parseAgent(
      `---\nname: a\nmetadata:\n${Array.from({ length: 900 }, (_, i) => `  k${i}: x`).join('\n')}\n---\nhi\n`,
    );
    expect(ok.ok && Object.keys(userMetadata(ok.definition.metadata)).length).toBe(900);
    const dup = parseAgent('---\nname: a\nmetadata:\n  a: 1\n  a: 2\n---\nhi\n', { file: 'dup.md' });
    expect(dup.ok && userMetadata(dup.definition.metadata)).toEqual({ a: 2 });
  });

  it('ordinary aliases still work', () => {
    const r = parseAgent('---\nname: ok\nmetadata:\n  base: &b {team: x}\n  copy: *b\n---\nhi\n');
    expect(r.ok && userMetadata(r.definition.metadata)).toEqual({ base: { team: 'x' }, copy: { team: 'x' } });
    expect(expandedSize({ a: [1, 2], b: 'x' }, 100)).toBe(5);
  });
});

describe('units: absurd and zero values are refused, naming the field, the value and the range', () => {
  const agent = (limits: string) =>
    parseAgent(`name = "a"\nsystem_prompt = "x"\n[limits]\n${limits}\n`, { file: 'u.toml' });

  it('timeout "99999999999999999999h" (Node used to clamp it to 1 ms)', () => {
    const e = first(agent('timeout = "99999999999999999999h"'));
    expect(e).toMatchObject({ field: 'limits.timeout', line: 4 });
    expect(e.message).toBe(
      'limits.timeout: duration "99999999999999999999h" is out of range: expected 1 ms to 24.9 days',
    );
  });

  it('timeout "0s" and timeout_ms past the timer limit', () => {
    expect(first(agent('timeout = "0s"')).message).toMatch(
      /^limits\.timeout: duration "0s" is out of range: expected 1 ms to/,
    );
    expect(first(agent('timeout_ms = 99999999999')).message).toMatch(/at most 2147483647 ms/);
  });

  it('max_message_size "999999999GB" and 0', () => {
    expect(first(agent('max_message_size = "999999999GB"')).message).toBe(
      'limits.max_message_size: size "999999999GB" is out of range: expected 1 B to 4 GiB',
    );
    expect(first(agent('max_message_size = 0')).field).toBe('limits.max_message_size');
  });

  it('what the templates and examples use is still accepted', () => {
    const r = agent('timeout = "2m"\nmax_message_size = "256KB"');
    expect(r.ok && r.definition.limits).toEqual({ max_turns: 10, timeout_ms: 120_000, max_message_size: 262_144 });
    expect(parseDuration(' 1.5 h ')).toBe(5_400_000);
    expect(parseSize('64 KiB')).toBe(65_536);
  });

  it('a long run of spaces is read in one pass (the old regex was quadratic) and refused', () => {
    const e = first(agent(`timeout = "1${' '.repeat(200_000)}x"`));
    expect(e.field).toBe('limits.timeout');
    expect(parseDuration(`1${' '.repeat(100_000)}s`)).toBeUndefined();
  });

  it('tool manifests: a timeout past the timer limit is refused too', () => {
    const r = parseToolManifest(
      'name = "t"\nversion = "1.0.0"\nmodule = "m.wasm"\n[limits]\ntimeout = "999999h"\n[[tools]]\nname = "x"\ndescription = "x"\n',
    );
    expect(r.ok).toBe(false);
    expect(!r.ok && r.errors.map((x) => x.message).join('\n')).toMatch(/out of range/);
  });
});

describe('prompt rendering reaches only the parameters themselves', () => {
  const def = { name: 'a', description: 'd', parameters: { style: 'brief' } } as unknown as AgentDefinition;

  it('{{parameters.toString}} and other inherited names render as a missing parameter (empty)', () => {
    const out = renderTemplate(
      '[{{parameters.toString}}][{{parameters.constructor}}][{{parameters.__proto__}}][{{parameters.hasOwnProperty}}][{{parameters.nope}}][{{parameters.style}}]',
      def,
      {
        request: 'r',
      },
    );
    expect(out).toBe('[][][][][][brief]');
  });

  it('a request parameter literally named "toString" or "__proto__" is its own data and renders', () => {
    const params = JSON.parse('{"toString":"t","__proto__":"p"}') as Record<string, unknown>;
    expect(
      renderTemplate('{{parameters.toString}}/{{parameters.__proto__}}', def, { request: 'r', parameters: params }),
    ).toBe('t/p');
  });
});
