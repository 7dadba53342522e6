// The Mastra side of bench/agent-heap.ts (mode `mastra`): the agent files Caxton loads, each made
// into a Mastra Agent with what the file says (name, description, instructions, model id,
// temperature and max_tokens as its default options, its two tools, shared like Caxton's
// built-ins), held by one Mastra instance as a server holds its agents. Heap after full GCs with
// the first WARM agents, then with all of them; prints the difference ÷ N as JSON.
//
//   MASTRA_DIR=… node --expose-gc bench/lib/mastra-agent-heap.mjs <agents dir> <WARM> <N>
//
// MASTRA_SHARED_MODEL=1: one model object for every agent instead of a model id each.
//
// Not given to Mastra: the [memory] table (a Mastra Memory needs a storage of its own per agent:
// leaving it out favours Mastra) and the capabilities (Mastra has no such index).
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { setImmediate as tick } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { parse } from 'smol-toml';

const [dir, warmArg, nArg] = process.argv.slice(2);
const WARM = Number(warmArg);
const N = Number(nArg);
const req = createRequire(join(process.env.MASTRA_DIR, 'package.json'));
const load = (name) => import(pathToFileURL(req.resolve(name)).href);
const { Agent } = await load('@mastra/core/agent');
const { Mastra } = await load('@mastra/core/mastra');
const { createTool } = await load('@mastra/core/tools');
const { z } = await load('zod');

const TOOL_NAMES = ['calculator', 'current_time', 'todo.write', 'web.fetch', 'llm.chat'];
const tools = Object.fromEntries(
  TOOL_NAMES.map((id) => [
    id,
    createTool({
      id,
      description: `the ${id} tool`,
      inputSchema: z.object({ input: z.string() }),
      execute: async () => ({ ok: true }),
    }),
  ]),
);

const SHARED_MODEL = {
  specificationVersion: 'v2',
  provider: 'fake',
  modelId: 'fake',
  supportedUrls: {},
  doGenerate() {},
  doStream() {},
};
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.toml'))
  .sort();
if (files.length !== WARM + N) throw new Error(`${dir} holds ${files.length} agent files, not ${WARM + N}`);

function agentOf(file) {
  const d = parse(readFileSync(join(dir, file), 'utf8'));
  return new Agent({
    name: d.name,
    description: d.description,
    instructions: d.system_prompt,
    model: process.env.MASTRA_SHARED_MODEL === '1' ? SHARED_MODEL : `openai/${d.llm?.model ?? 'gpt-4o-mini'}`,
    tools: Object.fromEntries(d.tools.map((t) => [t, tools[t]])),
    ...(d.llm && { defaultGenerateOptions: { temperature: d.llm.temperature, maxTokens: d.llm.max_tokens } }),
  });
}

const agents = {};
let mastra;
function add(from, to) {
  for (let i = from; i < to; i++) agents[files[i].replace(/\.toml$/, '')] = agentOf(files[i]);
  // One instance holds them all, as one server does: a new one replaces the old.
  mastra = new Mastra({ agents: { ...agents }, logger: false });
}

async function heapUsed() {
  for (let i = 0; i < 4; i++) {
    await tick();
    globalThis.gc();
  }
  await new Promise((r) => setTimeout(r, 50));
  globalThis.gc();
  return process.memoryUsage().heapUsed;
}

add(0, WARM);
const before = await heapUsed();
add(WARM, WARM + N);
const after = await heapUsed();
if (Object.keys(mastra.getAgents()).length !== WARM + N) throw new Error('Mastra does not hold every agent');
console.log(
  JSON.stringify({
    mode: 'mastra',
    agents: N,
    file_chars: readFileSync(join(dir, files[WARM]), 'utf8').length,
    heap_per_agent_bytes: Math.round((after - before) / N),
    load: loadavg()[0],
  }),
);
