// The floor of bench/latency.ts's in-flight ramp: a bare server with nothing between the request
// and the wait but its HTTP framework. POST /api/v1/agents/slow/invoke parses the JSON body,
// waits FLOOR_WAIT_MS (the stand-in model's whole answer) and answers a JSON body the size of
// Caxton's invoke answer. FLOOR_HTTP=fastify (default) serves it with fastify, the framework
// Caxton's API is built on; FLOOR_HTTP=node with node:http alone. What its p99 reaches at N in
// flight is what the machine and the client allow any server on one event loop.
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';

const WAIT_MS = Number(process.env.FLOOR_WAIT_MS ?? 580);
const ANSWER = process.env.FLOOR_ANSWER ?? 'The answer is forty two.';
const PATH = '/api/v1/agents/slow/invoke';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** An answer shaped and sized as Caxton's (about 360 bytes). */
function answer(started) {
  return {
    id: `resp_${randomUUID()}`,
    execution_id: `exec_${randomUUID()}`,
    agent: 'slow',
    content: ANSWER,
    tool_calls: [],
    usage: { input_tokens: 3, output_tokens: 6, total_tokens: 9 },
    execution_time_ms: performance.now() - started,
    finish_reason: 'stop',
    provider: 'slow',
    model: 'scripted',
    turns: 1,
    isolation: 'context',
  };
}

function listening(port) {
  process.stderr.write(`listening on http://127.0.0.1:${port}\n`);
}

if ((process.env.FLOOR_HTTP ?? 'fastify') === 'node') {
  const server = createServer((rq, rs) => {
    let body = '';
    rq.setEncoding('utf8');
    rq.on('data', (d) => (body += d));
    rq.on('end', async () => {
      const started = performance.now();
      JSON.parse(body);
      await sleep(WAIT_MS);
      const text = JSON.stringify(answer(started));
      rs.writeHead(200, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(text),
      });
      rs.end(text);
    });
  });
  server.listen(0, '127.0.0.1', () => listening(server.address().port));
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
} else {
  const { default: Fastify } = await import('fastify');
  const app = Fastify({ logger: false });
  app.post(PATH, async (req) => {
    const started = performance.now();
    if (typeof req.body !== 'object' || req.body === null) throw new Error('body: expected a JSON object');
    await sleep(WAIT_MS);
    return answer(started);
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  listening(app.server.address().port);
  process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
}
