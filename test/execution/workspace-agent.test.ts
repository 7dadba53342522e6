/**
 * The workspace tools through a real server: a TOML agent with tools workspace.read,
 * workspace.grep and workspace.glob, driven by the scripted stand-in LLM, greps a string planted
 * in the granted workspace, in each isolation mode (the tools are host tools, so a worker thread
 * or a child process reaches them through the host call). The calls are in the tool audit
 * (GET /api/v1/tools/audit), and the catalogue lists the groups workspace, web and todo.
 * Worker and process modes load the task from dist/: run `npm run build` first (npm test does).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openaiProvider, removeTempDirs, setTestKeys, startCaxton, tempDir, type Caxton } from './helpers/caxton.js';
import { startLlmStub, type LlmStub, type StubHit } from './helpers/llm-stub.js';
import { offeredTools, toolResultsOf } from './helpers/wire.js';

const PLANTED = 'PLANTED-needle-7431';
let llm: LlmStub;
let cx: Caxton;
let ws: string;

beforeAll(async () => {
  setTestKeys();
  llm = await startLlmStub();
  ws = tempDir('caxton-ws-agent-');
  mkdirSync(join(ws, 'src/deep'), { recursive: true });
  writeFileSync(join(ws, 'src/deep/config.ts'), `export const a = 1;\nexport const marker = '${PLANTED}';\n`);
  writeFileSync(join(ws, 'README.md'), 'nothing to see\n');
  cx = await startCaxton({
    config: { llm: { default_provider: 'oai', providers: { oai: openaiProvider(llm.url) } }, workspace: { path: ws } },
  });
});

afterAll(async () => {
  await cx?.close();
  await llm?.close();
  removeTempDirs();
});

/** The wire name the model was offered for `tool` (names are mapped for the providers' APIs). */
function wireName(hit: StubHit, tool: string): string {
  const offered = offeredTools(hit);
  const name = offered.find((n) => n === tool || n === tool.replace('.', '_') || n.startsWith(tool.replace('.', '_')));
  if (!name) throw new Error(`${tool} was not offered: ${offered.join(', ')}`);
  return name;
}

describe('an agent with workspace.read, workspace.grep and workspace.glob', () => {
  for (const mode of ['context', 'worker', 'process'] as const) {
    it(`greps a planted string in the granted workspace (${mode})`, async () => {
      llm.reset();
      llm.setScript((hit, n) => {
        if (n === 0)
          return {
            tool_calls: [
              {
                id: 'g1',
                name: wireName(hit, 'workspace.grep'),
                arguments: { pattern: 'PLANTED-\\w+', output_mode: 'content' },
              },
            ],
          };
        if (n === 1)
          return {
            tool_calls: [
              {
                id: 'r1',
                name: wireName(hit, 'workspace.read'),
                arguments: { file_path: 'src/deep/config.ts', offset: 2, limit: 1 },
              },
            ],
          };
        return { content: 'found it' };
      });
      const name = `ws-${mode}`;
      await cx.deploy({
        name,
        tools: ['workspace.read', 'workspace.grep', 'workspace.glob'],
        llm: { provider: 'oai' },
        ...(mode !== 'context' && { execution: { isolation: mode } }),
      });
      const r = await cx.invoke(name, { request: `find ${PLANTED.slice(0, 7)}` });
      expect(r.status, r.text).toBe(200);
      expect(offeredTools(llm.hits[0]!)).toHaveLength(3);
      const results = toolResultsOf(llm.hits[2]!);
      expect(results[0]!.content).toBe(`${join(ws, 'src/deep/config.ts')}:2:export const marker = '${PLANTED}';`);
      expect(results[1]!.content).toBe(`     2\texport const marker = '${PLANTED}';\n`);
    });
  }

  it('audits every call under server "workspace" and lists the toolkit groups in the catalogue', async () => {
    const audit = await fetch(`${cx.url}/api/v1/tools/audit?server=workspace`);
    expect(audit.status).toBe(200);
    const { records } = (await audit.json()) as { records: { tool: string; agent: string; outcome: string }[] };
    const mine = records.filter((x) => x.agent.startsWith('ws-'));
    expect(mine.filter((x) => x.tool === 'workspace.grep' && x.outcome === 'ok')).toHaveLength(3);
    expect(mine.filter((x) => x.tool === 'workspace.read' && x.outcome === 'ok')).toHaveLength(3);
    const list = (await (await fetch(`${cx.url}/api/v1/tools`)).json()) as unknown;
    const text = JSON.stringify(list);
    for (const g of ['"workspace"', '"web"', '"todo"', 'workspace.bash', 'web.fetch', 'todo.write'])
      expect(text).toContain(g);
    // A direct call through the catalogue is audited once, by the tool.
    const call = await fetch(`${cx.url}/api/v1/tools/workspace/glob/call`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ args: { pattern: '**/*.ts' } }),
    });
    const callText = await call.text();
    expect(call.status, callText).toBe(200);
    expect(callText).toContain('config.ts');
    const after = (await (await fetch(`${cx.url}/api/v1/tools/audit?tool=workspace.glob`)).json()) as {
      records: { agent: string }[];
    };
    expect(after.records.filter((x) => x.agent === 'api')).toHaveLength(1);
  });
});

describe('a [workspace] path that is not a directory', () => {
  it('stops the start with an error naming the setting', async () => {
    await expect(startCaxton({ config: { workspace: { path: 'does-not-exist' } } })).rejects.toThrow(
      '[workspace] path',
    );
  });
});

describe("the server's own directories and the workspace", () => {
  it('a workspace inside data_dir stops the start, naming both settings', async () => {
    const data = tempDir('caxton-ws-data-');
    mkdirSync(join(data, 'ws'));
    await expect(startCaxton({ config: { data_dir: data, workspace: { path: join(data, 'ws') } } })).rejects.toThrow(
      /\[workspace\] path = ".*" is the server's data directory or inside it \(data_dir = /,
    );
  });

  it('a writable workspace holding agents_dir stops the start unless agents_dir_writable = true', async () => {
    const root = tempDir('caxton-ws-agents-');
    mkdirSync(join(root, 'agents'));
    const config = { agents_dir: join(root, 'agents'), workspace: { path: root, write: true } };
    await expect(startCaxton({ config })).rejects.toThrow(/agents_dir = ".*" is inside the writable workspace/);
    // Read-only, agents_dir inside the workspace is what `caxton init` grants: it starts.
    const readOnly = await startCaxton({ config: { ...config, workspace: { path: root } } });
    await readOnly.close();
    const optedIn = await startCaxton({
      config: { ...config, workspace: { path: root, write: true, agents_dir_writable: true } },
    });
    await optedIn.close();
  });
});
