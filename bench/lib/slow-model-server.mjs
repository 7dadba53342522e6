// The stand-in model of bench/latency.ts called directly, without a server in between: POST (any
// path) waits MODEL_LATENCY_MS, then streams the answer one word every MODEL_CHUNK_MS as
// server-sent `token` events (Accept: text/event-stream), or answers it whole as JSON after the
// same time. Its time to the first token is the floor the servers' are compared with, measured by
// the same client in the same run: what a client waits for the model's first piece over HTTP.
import { createServer } from 'node:http';

const LATENCY_MS = Number(process.env.MODEL_LATENCY_MS ?? 500);
const CHUNK_MS = Number(process.env.MODEL_CHUNK_MS ?? 20);
const ANSWER = process.env.MODEL_ANSWER ?? 'The answer is 42.';
const PIECES = ANSWER.split(/(?<=\s)(?=\S)/);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const server = createServer((rq, rs) => {
  let body = '';
  rq.on('data', (d) => (body += d));
  rq.on('end', async () => {
    JSON.parse(body);
    if ((rq.headers.accept ?? '').includes('text/event-stream')) {
      rs.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
      rs.flushHeaders();
      await sleep(LATENCY_MS);
      for (let i = 0; i < PIECES.length; i++) {
        if (i > 0) await sleep(CHUNK_MS);
        if (rs.destroyed) return;
        rs.write(`event: token\ndata: ${JSON.stringify({ text: PIECES[i] })}\n\n`);
      }
      rs.end('event: response\ndata: {}\n\n');
      return;
    }
    await sleep(LATENCY_MS + CHUNK_MS * (PIECES.length - 1));
    rs.writeHead(200, { 'content-type': 'application/json' });
    rs.end(JSON.stringify({ content: ANSWER }));
  });
});
server.listen(0, '127.0.0.1', () => process.stderr.write(`listening on http://127.0.0.1:${server.address().port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
