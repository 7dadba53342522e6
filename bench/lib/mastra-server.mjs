// The Mastra side of `npm run bench -- mastra` (bench/mastra.ts): an Agent with one calculator tool
// and a zero-latency model written to the AI SDK v2 model interface (no call log kept, unlike the
// SDK's mock, so memory does not grow with the run), served over node:http. MASTRA_DIR names the
// directory where the bench installed @mastra/core.
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

const usage = { inputTokens: 10, outputTokens: 5, totalTokens: 15 };
function parts(prompt) {
  const sawTool = prompt.some((m) => m.role === 'tool');
  const text = JSON.stringify(prompt).includes('calculate') && !sawTool ? undefined : 'The answer is 42.';
  const out = [{ type: 'stream-start', warnings: [] }];
  if (text === undefined) {
    out.push({
      type: 'tool-call',
      toolCallId: 'call_1',
      toolName: 'calculator',
      input: JSON.stringify({ expression: '6*7' }),
    });
    out.push({ type: 'finish', finishReason: 'tool-calls', usage });
  } else {
    out.push(
      { type: 'text-start', id: 't' },
      { type: 'text-delta', id: 't', delta: text },
      { type: 'text-end', id: 't' },
    );
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
    const content = p.flatMap((x) =>
      x.type === 'text-delta' ? [{ type: 'text', text: x.delta }] : x.type === 'tool-call' ? [x] : [],
    );
    const fin = p.at(-1);
    return { content, finishReason: fin.finishReason, usage, warnings: [] };
  },
  async doStream({ prompt }) {
    const p = parts(prompt);
    return {
      stream: new ReadableStream({
        start(c) {
          for (const x of p) c.enqueue(x);
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
