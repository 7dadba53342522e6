/**
 * Claude Code agents doing their job through a real server: Markdown agent files listing Claude's
 * tools (Read, Grep, Glob, Edit, WebFetch), driven by a stand-in model that calls those tools by
 * the names it was offered and answers from what they returned. A code reviewer finds a planted
 * bug with file and line, a refactorer's Edit is checked on disk, a researcher fetches a page from
 * a local server; the same reviewer on a server that grants no workspace is refused, the setting
 * named.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openaiProvider, removeTempDirs, setTestKeys, startCaxton, tempDir, type Caxton } from './helpers/caxton.js';
import { startLlmStub, type LlmStub, type Reply, type StubHit } from './helpers/llm-stub.js';
import { offeredTools, toolResultsOf } from './helpers/wire.js';

/** The name the model was offered for Caxton's tool `name`. */
function wire(hit: StubHit, name: string): string {
  const plain = name.replace(/[^A-Za-z0-9_-]/g, '_');
  const offered = offeredTools(hit).find((n) => n === plain);
  if (!offered) throw new Error(`${name} was not offered: ${offeredTools(hit).join(', ')}`);
  return offered;
}

const md = (name: string, tools: string, prompt: string) =>
  `---\nname: ${name}\ndescription: "${name} for the tests"\ntools: ${tools}\nmodel: inherit\n---\n\n${prompt}\n`;

async function deployMd(cx: Caxton, text: string): Promise<void> {
  const res = await fetch(`${cx.url}/api/v1/agents`, {
    method: 'POST',
    headers: { 'content-type': 'text/markdown' },
    body: text,
  });
  expect(res.status, await res.clone().text()).toBe(201);
}

/** Glob for the sources, grep for the suspicious line, read around it, report file and line. */
function reviewer(hit: StubHit, n: number): Reply {
  const results = toolResultsOf(hit);
  if (n === 0)
    return { tool_calls: [{ id: 'g1', name: wire(hit, 'workspace.glob'), arguments: { pattern: 'src/**/*.ts' } }] };
  if (n === 1)
    return {
      tool_calls: [
        {
          id: 'g2',
          name: wire(hit, 'workspace.grep'),
          arguments: { pattern: 'return a - b', output_mode: 'content', '-n': true, glob: '*.ts' },
        },
      ],
    };
  const hitLine = /^(.+?):(\d+):/.exec(results[1]?.content ?? '');
  if (n === 2) {
    if (!hitLine) return { content: `no suspicious line: ${results.map((r) => r.content).join(' | ')}` };
    return {
      tool_calls: [
        {
          id: 'r1',
          name: wire(hit, 'workspace.read'),
          arguments: { file_path: hitLine[1], offset: Number(hitLine[2]) - 1, limit: 3 },
        },
      ],
    };
  }
  const read = results[2]?.content ?? '';
  const inAdd = /function add/.test(read);
  return {
    content: `Bug: ${hitLine![1]}:${hitLine![2]} subtracts ${inAdd ? 'inside add()' : 'somewhere'}; return a + b instead. Files reviewed: ${results[0]!.content.split('\n').filter(Boolean).length}.`,
  };
}

let llm: LlmStub;
let cx: Caxton;
let bare: Caxton;
let ws: string;
let web: Server;
let webUrl: string;

beforeAll(async () => {
  setTestKeys();
  llm = await startLlmStub();
  ws = tempDir('caxton-claude-ws-');
  mkdirSync(join(ws, 'src'), { recursive: true });
  writeFileSync(
    join(ws, 'src/math.ts'),
    'export function mul(a: number, b: number) {\n  return a * b;\n}\nexport function add(a: number, b: number) {\n  return a - b;\n}\n',
  );
  writeFileSync(join(ws, 'src/util.ts'), 'export const twice = (x: number) => x * 2;\n');
  writeFileSync(join(ws, 'README.md'), '# demo\n');
  web = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(
      '<html><head><title>Release notes</title></head><body><h1>Caxton 2.0</h1><p>The <b>wire names</b> release: tools reach every provider.</p><script>ignored()</script></body></html>',
    );
  });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  webUrl = `http://127.0.0.1:${(web.address() as AddressInfo).port}/notes.html`;
  const llmConfig = { default_provider: 'oai', providers: { oai: openaiProvider(llm.url) } };
  cx = await startCaxton({
    config: {
      llm: llmConfig,
      workspace: { path: ws, write: true },
      tools: { http_client: { allowed_hosts: ['127.0.0.1'] } },
    },
  });
  bare = await startCaxton({ config: { llm: llmConfig } });
  const review = md(
    'code-reviewer',
    'Read, Grep, Glob',
    'You are a senior code reviewer. Report bugs with file and line.',
  );
  await deployMd(cx, review);
  await deployMd(bare, review);
  await deployMd(cx, md('refactorer', 'Read, Edit', 'You fix the bug you are told about, in place.'));
  await deployMd(cx, md('researcher', 'WebFetch', 'You read the page you are given and summarise it.'));
});

afterAll(async () => {
  await cx?.close();
  await bare?.close();
  await llm?.close();
  await new Promise<void>((r) => web?.close(() => r()));
  removeTempDirs();
});

describe('Claude Code agents with a granted workspace', () => {
  it('a code reviewer Globs, Greps and Reads a small repository and reports the planted bug with file and line', async () => {
    llm.reset();
    llm.setScript(reviewer);
    const r = await cx.invoke('code-reviewer', { request: 'Review src/ for bugs.' });
    expect(r.status, r.text).toBe(200);
    expect(r.json.content).toBe(
      `Bug: ${join(ws, 'src/math.ts')}:5 subtracts inside add(); return a + b instead. Files reviewed: 2.`,
    );
    expect((r.json.tool_calls as { name: string; is_error: boolean }[]).map((c) => [c.name, c.is_error])).toEqual([
      ['workspace.glob', false],
      ['workspace.grep', false],
      ['workspace.read', false],
    ]);
    // The model was offered exactly the three tools it lists, under names the API accepts.
    expect(offeredTools(llm.hits[0]!)).toEqual(['workspace_glob', 'workspace_grep', 'workspace_read']);
  });

  it('the same reviewer on a server that grants no workspace is refused, the setting named', async () => {
    llm.reset();
    llm.setScript(reviewer);
    const r = await bare.invoke('code-reviewer', { request: 'Review src/ for bugs.' });
    expect(r.status, r.text).toBe(200);
    const [glob] = r.json.tool_calls as { name: string; is_error: boolean; result: string }[];
    expect(glob).toMatchObject({ name: 'workspace.glob', is_error: true });
    expect(glob!.result).toContain('[workspace] path');
  });

  it('a refactorer Edits the file, and the change is on disk', async () => {
    llm.reset();
    llm.setScript((hit, n) => {
      if (n === 0)
        return {
          tool_calls: [{ id: 'r1', name: wire(hit, 'workspace.read'), arguments: { file_path: 'src/math.ts' } }],
        };
      if (n === 1)
        return {
          tool_calls: [
            {
              id: 'e1',
              name: wire(hit, 'workspace.edit'),
              arguments: {
                file_path: join(ws, 'src/math.ts'),
                old_string: 'return a - b;',
                new_string: 'return a + b;',
              },
            },
          ],
        };
      return { content: `Fixed: ${toolResultsOf(hit).at(-1)!.content}` };
    });
    const r = await cx.invoke('refactorer', { request: 'add() subtracts; fix it.' });
    expect(r.status, r.text).toBe(200);
    expect((r.json.tool_calls as { is_error: boolean }[]).every((c) => !c.is_error)).toBe(true);
    expect(readFileSync(join(ws, 'src/math.ts'), 'utf8')).toContain('  return a + b;\n');
    expect(readFileSync(join(ws, 'src/math.ts'), 'utf8')).not.toContain('a - b');
  });

  it('a researcher WebFetches a page from a local server and answers from its text', async () => {
    llm.reset();
    llm.setScript((hit, n) => {
      if (n === 0)
        return {
          tool_calls: [
            {
              id: 'f1',
              name: wire(hit, 'web.fetch'),
              arguments: { url: webUrl, prompt: 'What is this release about?' },
            },
          ],
        };
      const page = toolResultsOf(hit)[0]!.content;
      const heading = /^# (.+)$/m.exec(page)?.[1];
      return { content: `${heading}: ${/\*\*(.+?)\*\*/.exec(page)?.[1] ?? '?'}` };
    });
    const r = await cx.invoke('researcher', { request: `Summarise ${webUrl}` });
    expect(r.status, r.text).toBe(200);
    expect(r.json.content).toBe('Caxton 2.0: wire names');
    expect((r.json.tool_calls as { result: string }[])[0]!.result).not.toContain('ignored()');
  });
});
