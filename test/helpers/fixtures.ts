import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (test/helpers/ is two levels below it). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Community Claude Code subagents, kept in the repository with their licence and source commit (README.md there). */
export const claudeAgentsDir = resolve(repoRoot, 'test/fixtures/claude-agents');

/** How many agent files the voltagent fixture set holds. */
export const EXPECTED_FIXTURE_COUNT = 158;

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** Every `.md` agent file under voltagent/ (README.md and LICENSE excluded), sorted. Throws if the fixtures are missing. */
export function claudeAgentFiles(): string[] {
  const dir = join(claudeAgentsDir, 'voltagent');
  if (!existsSync(dir)) {
    throw new Error(
      `Claude agent fixtures not found at ${dir}; they are part of the repository (test/fixtures/claude-agents)`,
    );
  }
  return walk(dir)
    .filter((p) => p.endsWith('.md') && !/(^|[\\/])README\.md$/i.test(p))
    .sort();
}
