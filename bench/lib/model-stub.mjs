/**
 * An OpenAI-compatible model that answers at once, alone in its process so that its CPU is not
 * the client's: `POST …/chat/completions` gets a short completion, or the same as an event
 * stream when the request asks for one. Prints its base URL on stdout, then serves until its
 * stdin closes.
 */
import { createServer } from 'node:http';

const COMPLETION = JSON.stringify({
  id: 'chatcmpl-bench',
  object: 'chat.completion',
  created: 0,
  model: 'stub',
  choices: [{ index: 0, message: { role: 'assistant', content: 'ok: hello' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 20, completion_tokens: 3, total_tokens: 23 },
});
const chunk = (delta, finish) =>
  `data: ${JSON.stringify({ id: 'chatcmpl-bench', object: 'chat.completion.chunk', model: 'stub', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
const STREAM =
  chunk({ role: 'assistant', content: 'ok: ' }, null) +
  chunk({ content: 'hello' }, null) +
  chunk({}, 'stop') +
  `data: ${JSON.stringify({ id: 'chatcmpl-bench', object: 'chat.completion.chunk', model: 'stub', choices: [], usage: { prompt_tokens: 20, completion_tokens: 3, total_tokens: 23 } })}\n\n` +
  'data: [DONE]\n\n';

const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  const parts = [];
  req.on('data', (c) => parts.push(c));
  req.on('end', () => {
    if (!req.url.endsWith('/chat/completions')) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"message":"not found"}}');
      return;
    }
    const stream = Buffer.concat(parts).includes('"stream":true');
    const body = stream ? STREAM : COMPLETION;
    res
      .writeHead(200, {
        'content-type': stream ? 'text/event-stream' : 'application/json',
        'content-length': Buffer.byteLength(body),
      })
      .end(body);
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`http://127.0.0.1:${server.address().port}/v1\n`);
});
process.stdin.resume();
process.stdin.on('end', () => {
  server.close();
  server.closeAllConnections();
  process.exit(0);
});
