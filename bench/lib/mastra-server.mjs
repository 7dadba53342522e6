// The Mastra side of `npm run bench -- mastra` (bench/mastra.ts): an Agent with one calculator tool
// and a zero-latency model written to the AI SDK v2 model interface (no call log kept, unlike the
// SDK's mock, so memory does not grow with the run), served over node:http. MASTRA_DIR names the
// directory where the bench installed @mastra/core. For bench/latency.ts the model is slow, as
// Caxton's scripted provider there: MASTRA_MODEL_LATENCY_MS before its first part, then one text
// piece every MASTRA_MODEL_CHUNK_MS, and MASTRA_TOOL_TURNS calls of the tool before the answer.
// POST /stream answers as server-sent events, one `token` event per piece of text.
import { createServer } from 'node:http';
import { ReadableStream } from 'node:stream/web';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';

const dir = process.env.MASTRA_DIR;
const req = createRequire(join(dir, 'package.json'));
const load = (name) => import(pathToFileURL(req.resolve(name)).href);
const { Agent } = await load('@mastra/core/agent');
const { createTool } = await load('@mastra/core/tools');
const { z } = await load('zod');

const LATENCY_MS = Number(process.env.MASTRA_MODEL_LATENCY_MS ?? 0);
const CHUNK_MS = Number(process.env.MASTRA_MODEL_CHUNK_MS ?? 0);
const TOOL_TURNS = Number(process.env.MASTRA_TOOL_TURNS ?? 1);
const ANSWER = process.env.MASTRA_ANSWER ?? 'The answer is 42.';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const usage = { inputTokens: 10, outputTokens: 5, totalTokens: 15 };
function parts(prompt) {
  // Mastra may merge the steps' tool messages into one: count the results.
  const toolResults = prompt
    .filter((m) => m.role === 'tool')
    .reduce((n, m) => n + (Array.isArray(m.content) ? m.content.filter((c) => c.type === 'tool-result').length : 1), 0);
  const text = JSON.stringify(prompt).includes('calculate') && toolResults < TOOL_TURNS ? undefined : ANSWER;
  const out = [{ type: 'stream-start', warnings: [] }];
  if (text === undefined) {
    out.push({
      type: 'tool-call',
      toolCallId: `call_${toolResults + 1}`,
      toolName: 'calculator',
      input: JSON.stringify({ expression: '6*7' }),
    });
    out.push({ type: 'finish', finishReason: 'tool-calls', usage });
  } else {
    out.push({ type: 'text-start', id: 't' });
    // One piece per word with the white space after it, as the scripted provider streams.
    for (const delta of CHUNK_MS > 0 ? text.split(/(?<=\s)(?=\S)/) : [text])
      out.push({ type: 'text-delta', id: 't', delta });
    out.push({ type: 'text-end', id: 't' });
    out.push({ type: 'finish', finishReason: 'stop', usage });
  }
  return out;
}
const model = {
  specificationVersion: 'v2',
  provider: 'fake',
  modelId: 'fake-model',
  supportedUrls: {},
  async doGenerate({ prompt }) {
    const p = parts(prompt);
    const pieces = p.filter((x) => x.type === 'text-delta').length;
    if (LATENCY_MS > 0 || CHUNK_MS > 0) await sleep(LATENCY_MS + CHUNK_MS * Math.max(0, pieces - 1));
    const content = p.flatMap((x) =>
      x.type === 'text-delta' ? [{ type: 'text', text: x.delta }] : x.type === 'tool-call' ? [x] : [],
    );
    const fin = p.at(-1);
    return { content, finishReason: fin.finishReason, usage, warnings: [] };
  },
  async doStream({ prompt }) {
    const p = parts(prompt);
    if (LATENCY_MS === 0 && CHUNK_MS === 0)
      return {
        stream: new ReadableStream({
          start(c) {
            for (const x of p) c.enqueue(x);
            c.close();
          },
        }),
      };
    return {
      stream: new ReadableStream({
        async start(c) {
          await sleep(LATENCY_MS);
          let deltas = 0;
          for (const x of p) {
            if (x.type === 'text-delta' && deltas++ > 0) await sleep(CHUNK_MS);
            c.enqueue(x);
          }
          c.close();
        },
      }),
    };
  },
};
const calculator = createTool({
  id: 'calculator',
  description: 'Evaluates a product of two integers like 6*7',
  inputSchema: z.object({ expression: z.string() }),
  execute: async ({ context }) => {
    const [a, b] = context.expression.split('*').map(Number);
    return { result: a * b };
  },
});
const agent = new Agent({ name: 'echo', instructions: 'Answer.', model, tools: { calculator } });

const server = createServer((rq, rs) => {
  let body = '';
  rq.on('data', (d) => (body += d));
  rq.on('end', async () => {
    try {
      const { request } = JSON.parse(body);
      if (rq.url === '/stream') {
        const r = await agent.stream(request);
        rs.writeHead(200, { 'content-type': 'text/event-stream' });
        for await (const t of r.textStream) rs.write(`event: token\ndata: ${JSON.stringify({ text: t })}\n\n`);
        rs.end('event: response\ndata: {}\n\n');
        return;
      }
      const r = await agent.generate(request);
      rs.writeHead(200, { 'content-type': 'application/json' });
      rs.end(JSON.stringify({ content: r.text, tool_calls: r.toolCalls?.length ?? 0, steps: r.steps?.length }));
    } catch (e) {
      rs.writeHead(500, { 'content-type': 'application/json' });
      rs.end(JSON.stringify({ error: String(e?.message ?? e) }));
    }
  });
});
server.listen(0, '127.0.0.1', () => process.stderr.write(`listening on http://127.0.0.1:${server.address().port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
