import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson } from '../helpers/http.js';
import {
  assertBuilt,
  cleanup,
  markdownAgent,
  startServe,
  tempDir,
  tomlAgent,
  type ServeProcess,
} from '../cli/helpers/cli.js';

// A repository of agents often holds skills and slash commands in the same Markdown beside them.
// Only the agents are loaded; the rest is skipped, counted and named once in the log.
interface Status {
  agents: { total: number; from_files: number };
  agent_files: { loaded: number; invalid: { path: string }[]; ignored: string[] };
}

const SKILL = '---\nname: pdf-tools\ndescription: Extract text from PDF files\n---\n\n# PDF tools\n\nUse pdftotext.\n';
const COMMAND =
  '---\ndescription: Review the staged changes\nallowed-tools: Bash(git diff:*)\n---\n\nReview $ARGUMENTS\n';

let dir: string;
let agentsDir: string;
let serve: ServeProcess;
const write = (rel: string, text: string) => {
  mkdirSync(dirname(join(agentsDir, rel)), { recursive: true });
  writeFileSync(join(agentsDir, rel), text);
};

beforeAll(async () => {
  assertBuilt();
  dir = tempDir();
  agentsDir = join(dir, 'agents');
  write('researcher.toml', tomlAgent('researcher'));
  write('team/writer.md', markdownAgent('writer'));
  write('skills/pdf/SKILL.md', SKILL);
  write('skills/pdf/reference.md', '# Reference\n\nNot an agent either.\n');
  write('plugins/review/SKILL.md', SKILL.replace('pdf-tools', 'review-tools'));
  write('commands/review.md', COMMAND);
  write('plugins/review/commands/fix.md', COMMAND);
  writeFileSync(join(dir, 'caxton.toml'), '[logging]\nlevel = "info"\n\n[auth]\nenabled = false\n');
  serve = await startServe({ cwd: dir, args: [] });
}, 60_000);
afterAll(cleanup);

describe('agents_dir skips skills and slash commands', () => {
  it('loads only the agents, and marks nothing invalid', async () => {
    const s = (await getJson<Status>(serve.url, '/api/v1/status')).json;
    expect(s.agent_files.loaded).toBe(2);
    expect(s.agent_files.invalid).toEqual([]);
    expect(s.agent_files.ignored).toEqual([]);
    expect(s.agents.from_files).toBe(2);
  });

  it('names the skipped files once in the log, counted by kind', () => {
    const lines = serve
      .stdout()
      .split('\n')
      .filter((l) => l.includes('agents_dir: skipped'));
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0]!) as { msg: string; skills: number; commands: number; files: string[] };
    expect(line.msg).toMatch(/^agents_dir: skipped 3 skill files and 2 slash-command files/);
    expect({ skills: line.skills, commands: line.commands }).toEqual({ skills: 3, commands: 2 });
    expect(line.files).toEqual([
      'commands/review.md',
      'plugins/review/SKILL.md',
      'plugins/review/commands/fix.md',
      'skills/pdf/SKILL.md',
      'skills/pdf/reference.md',
    ]);
    expect(serve.stdout()).not.toContain('agent file is invalid');
  });

  it('a skill or command added while it runs is not loaded either, while a new agent is', async () => {
    write('skills/new/SKILL.md', SKILL.replace('pdf-tools', 'new-skill'));
    write('commands/ship.md', COMMAND);
    write('late.toml', tomlAgent('late'));
    const deadline = Date.now() + 5000;
    let s = (await getJson<Status>(serve.url, '/api/v1/status')).json;
    while (s.agent_files.loaded < 3 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      s = (await getJson<Status>(serve.url, '/api/v1/status')).json;
    }
    await new Promise((r) => setTimeout(r, 300));
    s = (await getJson<Status>(serve.url, '/api/v1/status')).json;
    expect(s.agent_files.loaded).toBe(3);
    expect(s.agent_files.invalid).toEqual([]);
  });
});
