/**
 * Agents calling WebAssembly tools through a real server, driven by a scripted OpenAI-compatible
 * LLM stub (a real HTTP server): an agent may call only the tools its `tools` list allows, in
 * every isolation mode, and every call is audited with the agent and execution. Then the
 * demo: an agent fetches CSV with http_client from a local HTTP server, parses it with csv_parser
 * and answers with the SVG chart_generator renders.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLlmStub, type LlmStub, type Reply, type StubHit } from '../../execution/helpers/llm-stub.js';
import {
  openaiProvider,
  removeTempDirs,
  setTestKeys,
  startCaxton,
  type Caxton,
} from '../../execution/helpers/caxton.js';
import { assistantTurns, offeredTools, toolResultsOf } from '../../execution/helpers/wire.js';
import { ensureToolsBuilt, workerHttpServer, type WorkerHttpServer } from './helpers.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const SALES_CSV = 'month,sales\nJan,120\nFeb,95\nMar,143\n';

let llm: LlmStub;
let cx: Caxton;
let web: WorkerHttpServer;

beforeAll(async () => {
  ensureToolsBuilt();
  setTestKeys();
  llm = await startLlmStub();
  web = await workerHttpServer({ '/sales.csv': { type: 'text/csv', body: SALES_CSV } });
  cx = await startCaxton({
    config: {
      llm: { default_provider: 'stub', providers: { stub: openaiProvider(llm.url) } },
      tools: { http_client: { allowed_hosts: ['127.0.0.1'] } },
    },
    agents: [
      { name: 'analyst', tools: ['csv_parser.*'] },
      { name: 'analyst-worker', tools: ['csv_parser.parse'], execution: { isolation: 'worker' } },
      { name: 'outsider', tools: ['chart_generator.render'] },
      { name: 'charts', tools: ['http_client.get', 'csv_parser.parse', 'chart_generator.render'] },
    ],
  });
});

afterAll(async () => {
  await cx?.close();
  await llm?.close();
  await web?.close();
  removeTempDirs();
});

const audit = async (q: string): Promise<Json[]> => {
  cx.server.toolAudit.flush();
  const res = await fetch(`${cx.url}/api/v1/tools/audit?${q}`);
  return ((await res.json()) as { records: Json[] }).records;
};

/** Turn 0 asks for csv_parser.parse; turn 1 answers with what the tool returned. */
const parseScript = (hit: StubHit): Reply =>
  assistantTurns(hit) === 0
    ? // The name it was offered, else (an agent not given the tool) the name Caxton knows it by.
      {
        tool_calls: [
          {
            id: 'p1',
            name: offeredTools(hit).includes('csv_parser_parse') ? 'csv_parser_parse' : 'csv_parser.parse',
            arguments: { text: 'a,b\n1,2\n', infer_types: true },
          },
        ],
      }
    : { content: `tool said: ${toolResultsOf(hit).at(-1)!.content}` };

describe('agents and WASM tools', () => {
  it.each(['analyst', 'analyst-worker'])(
    '%s: a tool in its list is offered, runs in the sandbox and is audited',
    async (agent) => {
      llm.reset();
      llm.setScript(parseScript);
      const res = await cx.invoke(agent, { request: 'parse this', conversation_id: `conv-${agent}` });
      expect(res.status, res.text).toBe(200);
      expect(res.json.isolation).toBe(agent === 'analyst' ? 'context' : 'worker');
      expect(offeredTools(llm.hits[0]!)).toEqual(['csv_parser_parse']);
      expect(res.json.tool_calls.map((c: Json) => [c.name, c.is_error])).toEqual([['csv_parser.parse', false]]);
      expect(JSON.parse(res.json.tool_calls[0].result)).toEqual({
        columns: ['a', 'b'],
        rows: [{ a: 1, b: 2 }],
        row_count: 1,
        truncated: false,
      });
      expect(res.json.content).toBe(
        'tool said: {"columns":["a","b"],"rows":[{"a":1,"b":2}],"row_count":1,"truncated":false}',
      );
      const recs = await audit(`agent=${agent}`);
      expect(recs).toHaveLength(1);
      expect(recs[0]).toMatchObject({
        agent,
        tool: 'csv_parser.parse',
        server: 'csv_parser',
        outcome: 'ok',
        execution_id: res.json.execution_id,
        conversation_id: `conv-${agent}`,
      });
      expect(recs[0].fuel_used).toBeGreaterThan(0);
    },
  );

  it('a tool not in its list is neither offered nor run; the refusal is in the audit as not_allowed', async () => {
    llm.reset();
    llm.setScript(parseScript);
    const res = await cx.invoke('outsider', { request: 'parse this' });
    expect(res.status, res.text).toBe(200);
    expect(offeredTools(llm.hits[0]!)).toEqual(['chart_generator_render']);
    expect(res.json.tool_calls.map((c: Json) => [c.name, c.is_error])).toEqual([['csv_parser.parse', true]]);
    expect(res.json.tool_calls[0].result).toMatch(
      /tool "csv_parser\.parse" is not allowed for agent "outsider"; allowed tools: chart_generator\.render/,
    );
    // Refusals were missing from the tool audit.
    expect(await audit('agent=outsider')).toEqual([
      expect.objectContaining({
        tool: 'csv_parser.parse',
        server: 'csv_parser',
        outcome: 'not_allowed',
        fuel_used: 0,
        error: expect.stringMatching(/is not allowed for agent "outsider"/),
      }),
    ]);
    expect(await audit('outcome=not_allowed&agent=outsider')).toHaveLength(1);
  });

  it('demo: fetches CSV with http_client, parses it with csv_parser and answers with an SVG from chart_generator', async () => {
    llm.reset();
    llm.setScript((hit: StubHit): Reply => {
      const last = toolResultsOf(hit).at(-1);
      switch (assistantTurns(hit)) {
        case 0:
          return { tool_calls: [{ id: 't1', name: 'http_client_get', arguments: { url: `${web.url}/sales.csv` } }] };
        case 1: {
          const fetched = JSON.parse(last!.content) as { status: number; body: string };
          return {
            tool_calls: [{ id: 't2', name: 'csv_parser_parse', arguments: { text: fetched.body, infer_types: true } }],
          };
        }
        case 2: {
          const parsed = JSON.parse(last!.content) as { rows: Record<string, unknown>[] };
          return {
            tool_calls: [
              {
                id: 't3',
                name: 'chart_generator_render',
                arguments: {
                  type: 'bar',
                  title: 'Sales per month',
                  rows: parsed.rows,
                  label_key: 'month',
                  value_keys: ['sales'],
                },
              },
            ],
          };
        }
        default:
          return { content: last!.content };
      }
    });
    const res = await cx.invoke('charts', { request: 'Chart the monthly sales', conversation_id: 'conv-demo' });
    expect(res.status, res.text).toBe(200);
    expect(offeredTools(llm.hits[0]!)).toEqual(['chart_generator_render', 'csv_parser_parse', 'http_client_get']);
    const calls = res.json.tool_calls as Json[];
    expect(calls.map((c) => [c.name, c.is_error])).toEqual([
      ['http_client.get', false],
      ['csv_parser.parse', false],
      ['chart_generator.render', false],
    ]);
    expect(JSON.parse(calls[0].result)).toMatchObject({ status: 200, ok: true, body: SALES_CSV });
    expect(JSON.parse(calls[1].result).rows).toEqual([
      { month: 'Jan', sales: 120 },
      { month: 'Feb', sales: 95 },
      { month: 'Mar', sales: 143 },
    ]);
    const svg = res.json.content as string;
    expect(svg.trimStart()).toMatch(/^(<\?xml[^>]*>\s*)?<svg[\s>]/);
    expect(svg.trimEnd()).toMatch(/<\/svg>$/);
    for (const text of ['Sales per month', 'Jan', 'Feb', 'Mar']) expect(svg).toContain(text);
    const recs = await audit('conversation=conv-demo');
    expect(recs.map((r) => [r.tool, r.outcome, r.agent]).reverse()).toEqual([
      ['http_client.get', 'ok', 'charts'],
      ['csv_parser.parse', 'ok', 'charts'],
      ['chart_generator.render', 'ok', 'charts'],
    ]);
    expect(new Set(recs.map((r) => r.execution_id))).toEqual(new Set([res.json.execution_id]));
  });

  it('demo: a host the operator did not grant is refused by http_client, and the agent sees why', async () => {
    llm.reset();
    llm.setScript((hit: StubHit): Reply =>
      assistantTurns(hit) === 0
        ? {
            tool_calls: [
              {
                id: 'x1',
                name: 'http_client_get',
                arguments: { url: `http://localhost:${new URL(web.url).port}/sales.csv` },
              },
            ],
          }
        : { content: `failed: ${toolResultsOf(hit).at(-1)!.content}` },
    );
    const res = await cx.invoke('charts', { request: 'Chart it from localhost' });
    expect(res.status, res.text).toBe(200);
    expect(res.json.tool_calls[0].is_error).toBe(true);
    expect(res.json.content).toMatch(/host "localhost"/);
    const recs = await audit(`agent=charts&outcome=failed`);
    expect(recs[0]).toMatchObject({ tool: 'http_client.get', execution_id: res.json.execution_id });
  });
});
