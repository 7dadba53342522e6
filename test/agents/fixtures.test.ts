import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAgent } from '../../src/agents/index.js';
import { agentKey } from '../../src/agents/definition.js';
import { claudeAgentFiles, claudeAgentsDir, EXPECTED_FIXTURE_COUNT } from '../helpers/fixtures.js';

describe('community Claude Code subagents', () => {
  const files = claudeAgentFiles();

  it(`finds all ${EXPECTED_FIXTURE_COUNT} fixture files`, () => {
    expect(files).toHaveLength(EXPECTED_FIXTURE_COUNT);
  });

  it('parses every fixture file unchanged, as Markdown, with a non-empty prompt and mapped tools', () => {
    const failures: string[] = [];
    const names = new Set<string>();
    let parsed = 0;
    for (const file of files) {
      const r = parseAgent(readFileSync(file), { file });
      if (!r.ok) {
        failures.push(`${relative(claudeAgentsDir, file)}: ${r.errors.map((e) => `${e.line ?? '?'}:${e.column ?? '?'} ${e.code} ${e.message}`).join('; ')}`);
        continue;
      }
      parsed++;
      expect(r.format).toBe('markdown');
      const d = r.definition;
      expect(d.system_prompt.length).toBeGreaterThan(0);
      expect(d.capabilities.length).toBeGreaterThan(0);
      // No Claude Code built-in names survive the mapping
      for (const t of d.tools) expect(t).not.toMatch(/^(Read|Write|Edit|Bash|Glob|Grep|WebFetch|WebSearch|TodoWrite)$/);
      names.add(agentKey(d.name));
    }
    expect(failures, failures.join('\n')).toEqual([]);
    expect(parsed).toBe(EXPECTED_FIXTURE_COUNT);
    // Names are unique case-insensitively, so all of them can be deployed side by side.
    expect(names.size).toBe(EXPECTED_FIXTURE_COUNT);
  });
});
