/**
 * Every tool an agent calls is in the tool audit, built-in and host tools included: a real server
 * (memory on, its own SQLite), an agent whose model is the strict OpenAI stub calls the memory
 * tools `read_graph` and `search_nodes` and the built-in `calculator`, in context, worker and
 * process isolation; GET /api/v1/tools/audit then lists each call with its execution, once, under
 * the source the catalogue lists the tool in (what the console's tools page asks for). In
 * worker and process isolation the built-in runs in the task (a worker thread, a child process),
 * which reports the call to the server; the host tools (memory) run in the server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openaiProvider, removeTempDirs, setTestKeys, startCaxton, type Caxton } from '../execution/helpers/caxton.js';
import { startLlmStub, type LlmStub, type StubHit } from '../execution/helpers/llm-stub.js';
import { toolResultsOf } from '../execution/helpers/wire.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const TOOLS = ['read_graph', 'search_nodes', 'calculator'];

describe('tool audit of built-in and memory tools', () => {
  let stub: LlmStub;
  let cx: Caxton;

  beforeAll(async () => {
    setTestKeys();
    // First turn: the three calls; once their results are back, the answer.
    stub = await startLlmStub((hit: StubHit) =>
      toolResultsOf(hit).length > 0
        ? { content: 'looked it up' }
        : {
            tool_calls: [
              { id: 'c1', name: 'read_graph', arguments: {} },
              { id: 'c2', name: 'search_nodes', arguments: { query: 'engine' } },
              { id: 'c3', name: 'calculator', arguments: { expression: '2+3' } },
            ],
          },
    );
    cx = await startCaxton({
      config: { llm: { default_provider: 'stub', providers: { stub: openaiProvider(stub.url) } } },
      agents: [
        { name: 'reader', tools: TOOLS },
        { name: 'reader-worker', tools: TOOLS, execution: { isolation: 'worker' } },
        { name: 'reader-process', tools: TOOLS, execution: { isolation: 'process' } },
      ],
    });
  }, 60_000);

  afterAll(async () => {
    await cx?.close();
    await stub?.close();
    removeTempDirs();
  });

  const get = async (path: string): Promise<Json> => {
    const r = await fetch(`${cx.url}${path}`);
    expect(r.status, path).toBe(200);
    return r.json();
  };
  const invoke = async (agent: string): Promise<string> => {
    const r = await fetch(`${cx.url}/api/v1/agents/${agent}/invoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ request: 'what do you know about engines?' }),
    });
    const body = (await r.json()) as Json;
    expect(r.status, JSON.stringify(body)).toBe(200);
    return body.execution_id as string;
  };

  for (const agent of ['reader', 'reader-worker', 'reader-process']) {
    it(`${agent}: each call is recorded once, with its execution`, async () => {
      const execution = await invoke(agent);
      const recorded = async (): Promise<Json[]> =>
        ((await get(`/api/v1/tools/audit?agent=${agent}&limit=50`)).records as Json[]).filter(
          (r) => r.execution_id === execution,
        );
      let records: Json[] = [];
      for (let i = 0; i < 50; i++) {
        records = await recorded();
        if (records.length >= TOOLS.length) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      // A second record would come from the same turn: a short wait shows there is none.
      await new Promise((r) => setTimeout(r, 200));
      records = await recorded();
      expect(records.map((r) => [r.tool, r.outcome]).sort()).toEqual(TOOLS.map((t) => [t, 'ok']).sort());
      for (const r of records) expect(r.agent).toBe(agent);
      // Filed under the source the catalogue lists each tool in, as a direct call from the API or
      // the console is: the built-in under "builtin", the memory tools under "host".
      expect(Object.fromEntries(records.map((r) => [r.tool, r.server]))).toEqual({
        read_graph: 'host',
        search_nodes: 'host',
        calculator: 'builtin',
      });
      const builtin = (await get(`/api/v1/tools/audit?server=builtin&agent=${agent}&limit=50`)).records as Json[];
      expect(builtin.filter((r) => r.execution_id === execution).map((r) => r.tool)).toEqual(['calculator']);
    });
  }
});
