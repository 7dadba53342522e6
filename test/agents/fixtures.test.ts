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
        failures.push(
          `${relative(claudeAgentsDir, file)}: ${r.errors.map((e) => `${e.line ?? '?'}:${e.column ?? '?'} ${e.code} ${e.message}`).join('; ')}`,
        );
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

  // An independent, deliberately simple reading of each file — what Claude Code shows for it:
  // the one-line `name:`, `description:` and `model:` values (a double-quoted one unescaped as
  // JSON), and the body after the closing ---, trimmed. Caxton must agree on every file.
  it('keeps name, description, body and model exactly as written in every file', () => {
    const mismatches: string[] = [];
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      const end = text.indexOf('\n---', 4);
      const front = text.slice(4, end).split('\n');
      const body = text.slice(text.indexOf('\n', end + 1) + 1).trim();
      const value = (key: string): string | undefined => {
        const line = front.find((l) => l.startsWith(`${key}:`));
        if (line === undefined) return undefined;
        const v = line.slice(key.length + 1).trim();
        return v.startsWith('"') && v.endsWith('"') ? (JSON.parse(v) as string) : v;
      };
      const r = parseAgent(readFileSync(file), { file });
      if (!r.ok) continue; // reported by the test above
      const d = r.definition;
      const rel = relative(claudeAgentsDir, file);
      if (d.name !== value('name')) mismatches.push(`${rel}: name ${JSON.stringify(d.name)}`);
      if (d.description !== value('description'))
        mismatches.push(`${rel}: description ${JSON.stringify(d.description.slice(0, 80))}`);
      if (d.system_prompt !== body) mismatches.push(`${rel}: body differs`);
      const model = value('model');
      if (model !== undefined && d.metadata.claude_model !== model)
        mismatches.push(`${rel}: model ${String(d.metadata.claude_model)}`);
      if (model !== undefined && model !== 'inherit' && d.llm.model !== model)
        mismatches.push(`${rel}: llm.model ${String(d.llm.model)}`);
      if (model === 'inherit' && d.llm.model !== undefined) mismatches.push(`${rel}: inherit became ${d.llm.model}`);
    }
    expect(mismatches, mismatches.join('\n')).toEqual([]);
  });
});
