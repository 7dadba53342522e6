import { mkdirSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson, http, postAgent, putAgent, tomlAgent } from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';
import {
  assertBuilt,
  cleanup as cleanupChildren,
  startServe,
  stopServe,
  tempDir,
  type ServeProcess,
} from '../cli/helpers/cli.js';

/**
 * The requirement is that a file change shows in the API within 1 s. The assertions allow 1500 ms
 * so a loaded 2-core CI machine does not make them flaky; in practice it takes ~100-200 ms.
 */
const WATCH_LIMIT_MS = 1500;

interface Detail {
  name: string;
  revision: number;
  origin: { kind: string; path?: string };
  capabilities: string[];
  definition: { system_prompt: string };
}
interface Status {
  agents: { total: number; from_files: number; from_api: number };
  agent_files: {
    loaded: number;
    invalid: {
      path: string;
      agent?: string;
      errors: { code: string; line?: number; column?: number; message: string }[];
    }[];
    ignored: string[];
  };
}

let t: TestServer;
const file = (rel: string) => join(t.agentsDir, rel);
function write(rel: string, text: string) {
  mkdirSync(dirname(file(rel)), { recursive: true });
  writeFileSync(file(rel), text);
}
const agent = (name: string) => getJson<Detail>(t.url, `/api/v1/agents/${name}`);
const status = async () => (await getJson<Status>(t.url, '/api/v1/status')).json;

/** Waits for `name` to be served with a system prompt satisfying `ok`; returns how long it took. */
async function waitForAgent(
  name: string,
  ok: (d: Detail) => boolean = () => true,
): Promise<{ value: Detail; elapsedMs: number }> {
  return waitUntil(
    async () => {
      const r = await agent(name);
      return r.status === 200 && ok(r.json) ? r.json : undefined;
    },
    { timeoutMs: WATCH_LIMIT_MS + 500, what: `agent ${name}` },
  );
}

beforeAll(async () => {
  t = await startTestServer({
    agentFiles: {
      'top.toml': tomlAgent('top-agent'),
      'team/nested.toml': tomlAgent('nested-agent'),
      'team/deeper/deep.md': '---\nname: deep-agent\ndescription: deep\ntools: Read\n---\nDeep prompt\n',
      'team/json-agent.json': JSON.stringify({ name: 'json-file-agent', system_prompt: 'J' }),
      'README.md': '# Our agents\n\nThis folder holds the agents.\n',
      'notes.txt': 'not an agent file',
      '.hidden/secret.toml': tomlAgent('hidden-agent'),
      'dup-a.toml': tomlAgent('dup', 'version = "1.0.0"\n'),
      'dup-b.toml': tomlAgent('DUP', 'version = "9.9.9"\n'),
      'broken.toml': 'name = "broken"\nsystem_prompt = "oops\n',
      // Claude Code reads neither of these: frontmatter must start on line 1, column 1.
      'indented.md': '  ---\n  name: indented-agent\n  description: d\n  ---\n  Prompt\n',
      'claude/bold.md':
        '---\nname: bold-agent\ndescription: **BOLD SPECIALIST**: does things\ntools:\nmodel: sonnet\n---\nPrompt\n',
    },
  });
});
afterAll(async () => {
  await t.close();
  removeTempDirs();
  await cleanupChildren();
});

describe('agents_dir at start', () => {
  it('loads TOML, Markdown and JSON files recursively, skipping hidden folders and other files', async () => {
    for (const n of ['top-agent', 'nested-agent', 'deep-agent', 'json-file-agent']) {
      const r = await agent(n);
      expect(r.status, n).toBe(200);
      expect(r.json.origin.kind).toBe('file');
    }
    expect((await agent('nested-agent')).json.origin.path).toBe(file('team/nested.toml'));
    expect((await agent('hidden-agent')).status).toBe(404);
  });

  it('ignores a README.md without frontmatter (not an error)', async () => {
    const s = await status();
    expect(s.agent_files.ignored).toEqual([file('README.md')]);
    expect(s.agent_files.invalid.map((f) => f.path)).not.toContain(file('README.md'));
  });

  it('two files with the same agent name: the second is invalid (duplicate_name), the first keeps serving', async () => {
    const d = await agent('dup');
    expect(d.status).toBe(200);
    expect(d.json.origin.path).toBe(file('dup-a.toml'));
    const s = await status();
    const inv = s.agent_files.invalid.find((f) => f.path === file('dup-b.toml'));
    expect(inv?.errors.map((e) => e.code)).toEqual(['duplicate_name']);
    expect(inv?.errors[0]!.message).toContain('dup-a.toml');
  });

  it('an invalid file at start is reported with its error position, and not loaded', async () => {
    const s = await status();
    const inv = s.agent_files.invalid.find((f) => f.path === file('broken.toml'));
    expect(inv?.errors[0]).toMatchObject({ code: 'toml_syntax', line: 2 });
    expect((await agent('broken')).status).toBe(404);
  });
});

describe('Claude Code files in agents_dir', () => {
  it('a file whose frontmatter is indented is counted as invalid, with an error that says why (not ignored)', async () => {
    const s = await status();
    expect(s.agent_files.ignored).not.toContain(file('indented.md'));
    const inv = s.agent_files.invalid.find((f) => f.path === file('indented.md'));
    expect(inv?.errors[0]).toMatchObject({ code: 'frontmatter_not_at_start', line: 1, column: 3 });
    expect(inv?.errors[0]!.message).toContain('line 1');
    expect((await agent('indented-agent')).status).toBe(404);
  });

  it('a file with a **BOLD**: description and an empty tools: loads as Claude Code loads it', async () => {
    const r = await getJson<Detail & { description: string; tools: string[] }>(t.url, '/api/v1/agents/bold-agent');
    expect(r.status).toBe(200);
    expect(r.json.description).toBe('**BOLD SPECIALIST**: does things');
    expect(r.json.tools).toEqual([]);
  });
});

describe('agents_dir while running', () => {
  it('a new file appears within 1 s', async () => {
    write('live.toml', tomlAgent('live-agent'));
    const { value, elapsedMs } = await waitForAgent('live-agent');
    expect(elapsedMs).toBeLessThan(WATCH_LIMIT_MS);
    expect(value.origin).toEqual({ kind: 'file', path: file('live.toml') });
  });

  it('a new file in a new subfolder appears within 1 s', async () => {
    write('new-team/sub/fresh.md', '---\nname: fresh-agent\ncapabilities: [fresh]\n---\nFresh prompt\n');
    const { elapsedMs } = await waitForAgent('fresh-agent');
    expect(elapsedMs).toBeLessThan(WATCH_LIMIT_MS);
  });

  it('a changed file is updated within 1 s', async () => {
    write('live.toml', 'name = "live-agent"\ncapabilities = ["changed"]\nsystem_prompt = "Second version."\n');
    const { value, elapsedMs } = await waitForAgent(
      'live-agent',
      (d) => d.definition.system_prompt === 'Second version.',
    );
    expect(elapsedMs).toBeLessThan(WATCH_LIMIT_MS);
    expect(value.capabilities).toEqual(['changed']);
    expect(value.revision).toBe(2);
    const byCap = await getJson<{ agents: { name: string }[] }>(t.url, '/api/v1/agents?capability=changed');
    expect(byCap.json.agents.map((a) => a.name)).toEqual(['live-agent']);
  });

  it('an invalid edit keeps the last good version serving and is listed in /api/v1/status; fixing it applies again', async () => {
    write('live.toml', 'name = "live-agent"\ncapabilities = ["changed"]\nsystem_prompt = "Third version\n');
    const { value: inv } = await waitUntil(
      async () => (await status()).agent_files.invalid.find((f) => f.path === file('live.toml')),
      {
        timeoutMs: WATCH_LIMIT_MS + 500,
        what: 'live.toml reported invalid',
      },
    );
    expect(inv.agent).toBe('live-agent');
    expect(inv.errors[0]).toMatchObject({ code: 'toml_syntax', line: 3 });
    expect(inv.errors[0]!.column).toBeGreaterThan(1);

    const still = await agent('live-agent');
    expect(still.status).toBe(200);
    expect(still.json.definition.system_prompt).toBe('Second version.');
    expect(still.json.revision).toBe(2);

    // A schema error (not just syntax) is handled the same way
    write('live.toml', 'name = "live-agent"\ncapabilities = "changed"\nsystem_prompt = "Third version"\n');
    await waitUntil(
      async () =>
        (await status()).agent_files.invalid.find((f) => f.path === file('live.toml'))?.errors[0]?.code ===
        'invalid_type',
      {
        timeoutMs: WATCH_LIMIT_MS + 500,
        what: 'invalid_type reported',
      },
    );
    expect((await agent('live-agent')).json.definition.system_prompt).toBe('Second version.');

    write('live.toml', 'name = "live-agent"\ncapabilities = ["changed"]\nsystem_prompt = "Third version, fixed."\n');
    const { value, elapsedMs } = await waitForAgent(
      'live-agent',
      (d) => d.definition.system_prompt === 'Third version, fixed.',
    );
    expect(elapsedMs).toBeLessThan(WATCH_LIMIT_MS);
    expect(value.revision).toBe(3);
    expect((await status()).agent_files.invalid.map((f) => f.path)).not.toContain(file('live.toml'));
  });

  it('deleting the file removes the agent within 1 s', async () => {
    unlinkSync(file('live.toml'));
    const { elapsedMs } = await waitUntil(async () => (await agent('live-agent')).status === 404, {
      timeoutMs: WATCH_LIMIT_MS + 500,
      what: 'live-agent removed',
    });
    expect(elapsedMs).toBeLessThan(WATCH_LIMIT_MS);
    const byCap = await getJson<{ total: number }>(t.url, '/api/v1/agents?capability=changed');
    expect(byCap.json.total).toBe(0);
  });

  it('a third file with a taken name is reported invalid while the holder keeps serving', async () => {
    write('dup-c.toml', tomlAgent('Dup', 'version = "3.0.0"\n'));
    const { value: inv } = await waitUntil(
      async () => (await status()).agent_files.invalid.find((f) => f.path === file('dup-c.toml')),
      {
        timeoutMs: WATCH_LIMIT_MS + 500,
        what: 'dup-c.toml reported invalid',
      },
    );
    expect(inv.errors[0]!.code).toBe('duplicate_name');
    const d = await agent('dup');
    expect(d.json.origin.path).toBe(file('dup-a.toml'));
  });

  it('deleting the file that holds a name lets a file refused as its duplicate load', async () => {
    unlinkSync(file('dup-a.toml'));
    const { value } = await waitUntil(
      async () => {
        const r = await agent('dup');
        return r.status === 200 && r.json.origin.path !== file('dup-a.toml') ? r.json : undefined;
      },
      { timeoutMs: WATCH_LIMIT_MS + 500, what: 'a duplicate taking over the name' },
    );
    expect([file('dup-b.toml'), file('dup-c.toml')]).toContain(value.origin.path);
    const s = await status();
    expect(s.agent_files.invalid.filter((f) => f.path === value.origin.path)).toEqual([]);
  });

  it('a file using the name of an API-deployed agent is invalid; the API agent is untouched', async () => {
    expect((await postAgent(t.url, tomlAgent('api-owned'))).status).toBe(201);
    write('api-owned.toml', 'name = "api-owned"\ncapabilities = ["x"]\nsystem_prompt = "From a file"\n');
    const { value: inv } = await waitUntil(
      async () => (await status()).agent_files.invalid.find((f) => f.path === file('api-owned.toml')),
      {
        timeoutMs: WATCH_LIMIT_MS + 500,
        what: 'api-owned.toml reported invalid',
      },
    );
    expect(inv.errors[0]!.code).toBe('duplicate_name');
    const a = await agent('api-owned');
    expect(a.json.origin.kind).toBe('api');
    expect(a.json.definition.system_prompt).toBe('You are api-owned.');
  });

  it('file agents cannot be changed through the API', async () => {
    const before = await agent('top-agent');
    const put = await putAgent(t.url, 'top-agent', tomlAgent('top-agent', 'version = "2.0.0"\n'));
    expect(put.status).toBe(409);
    expect((put.json as { error: { code: string } }).error.code).toBe('agent_managed_by_file');
    expect((await http(t.url, 'DELETE', '/api/v1/agents/top-agent')).status).toBe(409);
    expect((await agent('top-agent')).json).toEqual(before.json);
  });

  it('a file renamed is the agent at its new path; an editor saving through a renamed temporary file updates it', async () => {
    write('moving/one.toml', tomlAgent('moving-agent'));
    await waitForAgent('moving-agent', (d) => d.origin.path === file('moving/one.toml'));
    renameSync(file('moving/one.toml'), file('moving/two.toml'));
    await waitForAgent('moving-agent', (d) => d.origin.path === file('moving/two.toml'));
    expect((await status()).agent_files.invalid.map((f) => f.path)).not.toContain(file('moving/one.toml'));
    // vim, VS Code and friends write a hidden sibling, then rename it over the file.
    writeFileSync(file('moving/.two.toml.swp'), 'name = "moving-agent"\nsystem_prompt = "Saved."\n');
    renameSync(file('moving/.two.toml.swp'), file('moving/two.toml'));
    const { value } = await waitForAgent('moving-agent', (d) => d.definition.system_prompt === 'Saved.');
    expect(value.origin.path).toBe(file('moving/two.toml'));
  });

  it('a folder moved out of agents_dir takes its agents away; moved back in, they load again', async () => {
    write('travel/deep/a.toml', tomlAgent('travel-a'));
    write('travel/b.md', '---\nname: travel-b\n---\nB prompt\n');
    await waitForAgent('travel-a');
    await waitForAgent('travel-b');
    const away = join(dirname(t.agentsDir), `travel-away-${Date.now()}`);
    renameSync(file('travel'), away);
    await waitUntil(async () => (await agent('travel-a')).status === 404 && (await agent('travel-b')).status === 404, {
      timeoutMs: WATCH_LIMIT_MS + 500,
      what: 'the moved-out agents removed',
    });
    renameSync(away, file('travel-back'));
    await waitForAgent('travel-a', (d) => d.origin.path === file('travel-back/deep/a.toml'));
    await waitForAgent('travel-b', (d) => d.origin.path === file('travel-back/b.md'));
    // A file written into the moved-in folder afterwards is seen: the folder is watched.
    write('travel-back/deep/c.toml', tomlAgent('travel-c'));
    await waitForAgent('travel-c');
    rmSync(file('travel-back'), { recursive: true });
    await waitUntil(async () => (await agent('travel-c')).status === 404, {
      timeoutMs: WATCH_LIMIT_MS + 500,
      what: 'the deleted folder’s agents removed',
    });
  });
});

// -----------------------------------------------------------------------------------------------
// A hostile file in agents_dir must not throw out of the watcher's timer or stop a start without
// naming itself: any failure of one file makes that file invalid — in /api/v1/status, the log and
// an `agent.invalid_file` event — and nothing else.

const deepJson = (n: number) =>
  `{"name":"deep","system_prompt":"x","parameters":{"p":${'['.repeat(n)}${']'.repeat(n)}}}`;
const LAUGHS = [
  'l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]',
  ...Array.from({ length: 8 }, (_, i) => `l${i + 1}: &l${i + 1} [${Array(9).fill(`*l${i}`).join(', ')}]`),
];
const BOMB_MD = `---\nname: bomb\nmetadata:\n${LAUGHS.map((l) => `  ${l}`).join('\n')}\n---\nhello\n`;

describe('agents_dir: hostile files (in-process watcher)', () => {
  it('a 100,000-deep .json and a YAML alias bomb written while running become invalid files; the watcher keeps working', async () => {
    write('hostile/deep.json', deepJson(100_000));
    write('hostile/bomb.md', BOMB_MD);
    write('hostile/big.toml', `name = "big"\nsystem_prompt = "${'x'.repeat(1024 * 1024)}"\n`);
    const { value: inv } = await waitUntil(
      async () => {
        const s = await status();
        const found = ['hostile/deep.json', 'hostile/bomb.md', 'hostile/big.toml'].map((rel) =>
          s.agent_files.invalid.find((f) => f.path === file(rel)),
        );
        return found.every((f) => f !== undefined) ? found : undefined;
      },
      { timeoutMs: WATCH_LIMIT_MS + 1500, what: 'the three hostile files reported invalid' },
    );
    expect(inv[0]!.errors[0]).toMatchObject({ code: 'input_too_deep', line: 1 });
    expect(inv[0]!.errors[0]!.message).toContain('"parameters" is nested more than 64 levels deep');
    expect(inv[1]!.errors[0]).toMatchObject({ code: 'yaml_alias_limit', line: 5 });
    expect(inv[2]!.errors[0]).toMatchObject({ code: 'file_too_large' });
    // The watcher still applies the next good file.
    write('hostile/after.toml', tomlAgent('after-hostile'));
    await waitForAgent('after-hostile');
    const ev = await getJson<{ events: { agent: string; data: { file: string; errors: string[] } }[] }>(
      t.url,
      '/api/v1/events?type=agent.invalid_file&limit=1000',
    );
    expect(ev.json.events.map((e) => e.data.file)).toEqual(
      expect.arrayContaining([file('hostile/deep.json'), file('hostile/bomb.md')]),
    );
  });
});

describe('agents_dir: hostile files with a real `caxton serve` (the crash-and-restart case)', () => {
  let dir: string;
  let serve: ServeProcess;
  const agentsDir = () => join(dir, 'agents');
  const serveStatus = async () => (await getJson<Status>(serve.url, '/api/v1/status')).json;

  beforeAll(() => {
    assertBuilt();
    dir = tempDir('caxton-hostile-dir-');
    mkdirSync(join(dir, 'agents'), { recursive: true });
    // Authentication off: this file is about agent files (test/auth covers the keys).
    writeFileSync(join(dir, 'caxton.toml'), '[auth]\nenabled = false\n');
    writeFileSync(join(dir, 'agents', 'good.toml'), tomlAgent('good-agent'));
    writeFileSync(join(dir, 'agents', 'deep.json'), deepJson(100_000));
    writeFileSync(join(dir, 'agents', 'bomb.md'), BOMB_MD);
  });

  it('starts with the hostile files present (it exited 1 before), reports each by name and serves the good agent', async () => {
    serve = await startServe({ cwd: dir, args: ['--config', join(dir, 'caxton.toml')], readyTimeoutMs: 60_000 });
    const s = await serveStatus();
    expect(s.agent_files.loaded).toBe(1);
    expect(Object.fromEntries(s.agent_files.invalid.map((f) => [f.path, f.errors[0]!.code]))).toEqual({
      [join(agentsDir(), 'bomb.md')]: 'yaml_alias_limit',
      [join(agentsDir(), 'deep.json')]: 'input_too_deep',
    });
    expect((await getJson(serve.url, '/api/v1/agents/good-agent')).status).toBe(200);
    // The log names each file.
    await waitUntil(
      () =>
        serve.stdout().includes(`"file":"${join(agentsDir(), 'deep.json')}"`) &&
        serve.stdout().includes(`"file":"${join(agentsDir(), 'bomb.md')}"`),
      {
        timeoutMs: 3000,
        what: 'log lines naming the files',
      },
    );
  }, 90_000);

  it('a hostile file written while it runs is reported; the process stays up, with no stack trace', async () => {
    writeFileSync(join(agentsDir(), 'deeper.json'), deepJson(200_000));
    writeFileSync(join(agentsDir(), 'bomb2.md'), BOMB_MD.replace('name: bomb', 'name: bomb2'));
    await waitUntil(
      async () => {
        const s = await serveStatus();
        return s.agent_files.invalid.length === 4;
      },
      { timeoutMs: 5000, what: 'four invalid files' },
    );
    expect(serve.child.exitCode).toBeNull();
    expect((await fetch(`${serve.url}/health`)).status).toBe(200);
    expect(serve.stderr()).not.toMatch(/Maximum call stack|Excessive alias|^\s+at /m);
  });

  it('restarts on the same folder with the hostile files still there', async () => {
    const stopped = await stopServe(serve, 'SIGTERM');
    expect(stopped.code).toBe(0);
    serve = await startServe({ cwd: dir, args: ['--config', join(dir, 'caxton.toml')], readyTimeoutMs: 60_000 });
    const s = await serveStatus();
    expect(s.agent_files.invalid.length).toBe(4);
    expect(s.agent_files.loaded).toBe(1);
  }, 90_000);
});
