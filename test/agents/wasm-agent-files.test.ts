/**
 * `[wasm]` in agent files: a TOML file and a Markdown frontmatter name a module relative to the
 * agent file; the check resolves it, proves it and hashes it into the definition; the limits keep
 * the tool sandbox's names and defaults. The module is a C fixture built with clang for wasm32, so
 * the tests that resolve it skip (with the helper's one line) where that toolchain is missing.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentChecks, parseAgent } from '../../src/agents/index.js';
import { wasmModuleResolver } from '../../src/execution/index.js';
import { DEFAULT_TOOL_LIMITS } from '../../src/tools/servers/index.js';
import { hasSystem } from '../helpers/system.js';
import { buildCFixture } from '../helpers/wasm-c.js';

let dir: string;
let checks: AgentChecks;
const haveC = hasSystem('wasm-c');

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'caxton-wasm-files-'));
  mkdirSync(join(dir, 'agents', 'bin'), { recursive: true });
  checks = new AgentChecks({ resolveModule: wasmModuleResolver({ agentsDir: join(dir, 'agents') }) });
  if (!haveC) return;
  buildCFixture('pricer', join(dir, 'agents', 'bin', 'pricer.wasm'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('[wasm] in agent files', () => {
  it('takes the tool sandbox limit defaults for the limits it leaves out', () => {
    const parsed = parseAgent('name = "plain"\n[wasm]\nmodule = "m.wasm"\nfuel = 7\n', { format: 'toml' });
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
    expect(parsed.definition.wasm?.limits).toEqual({ ...DEFAULT_TOOL_LIMITS, fuel: 7 });
  });

  it("checks the limits by the tool sandbox's bounds, naming the [wasm] field", () => {
    const parsed = parseAgent(
      'name = "plain"\n[wasm]\nmodule = "m.wasm"\nmemory = "1KiB"\nfuel = 3_000_000_000\ntimeout = 0\n',
      { format: 'toml' },
    );
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    const by = Object.fromEntries(parsed.errors.map((e) => [e.field, e.message]));
    expect(by['wasm.memory']).toMatch(/expected between 64KiB and 4GiB/);
    expect(by['wasm.fuel']).toMatch(/expected at most 2147483647/);
    expect(by['wasm.timeout']).toMatch(/out of range/);
  });

  it.skipIf(!haveC)('a TOML file names its module relative to itself; the digest goes into the definition', () => {
    const file = join(dir, 'agents', 'pricer.toml');
    const text = 'name = "pricer"\n[wasm]\nmodule = "bin/pricer.wasm"\nfuel = 1_000_000\ntimeout = "1s"\n';
    writeFileSync(file, text);
    const r = checks.checked(parseAgent(text, { file }), file, 'file');
    expect(r.ok, JSON.stringify(r)).toBe(true);
    if (!r.ok) return;
    const w = r.definition.wasm!;
    expect(w).toMatchObject({
      module: 'bin/pricer.wasm',
      entry: 'handle',
      path: join(dir, 'agents', 'bin', 'pricer.wasm'),
    });
    expect(w.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(w.limits).toMatchObject({ fuel: 1_000_000, timeout_ms: 1000, memory: DEFAULT_TOOL_LIMITS.memory });
    expect(r.definition.system_prompt).toBe('');
  });

  it.skipIf(!haveC)('a Markdown file may have an empty body when its frontmatter names a module', () => {
    const file = join(dir, 'agents', 'pricer.md');
    const text = '---\nname: pricer-md\ndescription: prices\nwasm:\n  module: bin/pricer.wasm\n---\n';
    const r = checks.checked(parseAgent(text, { file }), file, 'file');
    expect(r.ok, JSON.stringify(r)).toBe(true);
  });

  it('errors name the file and the field', () => {
    const file = join(dir, 'agents', 'bad.toml');
    const text = 'name = "bad"\n[wasm]\nmodule = "bin/missing.wasm"\n';
    const r = checks.checked(parseAgent(text, { file }), file, 'file');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors[0]).toMatchObject({ file, field: 'wasm.module', code: 'module_not_found' });
    const typo = parseAgent('name = "t"\n[wasm]\nmodul = "x.wasm"\n', { file });
    expect(typo.ok).toBe(false);
    expect(JSON.stringify(typo)).toContain('did you mean \\"module\\"');
  });
});
