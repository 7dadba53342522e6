// The floor of the startup bench (bench/startup.ts): a fastify hello-world started as `caxton
// serve` is, a fresh node process, answering the same JSON POST once listening.
import Fastify from 'fastify';

const app = Fastify({ logger: false });
app.post('/api/v1/agents/:name/invoke', async (req) => ({ content: 'hello', request: req.body }));
await app.listen({ host: '127.0.0.1', port: 0 });
process.stderr.write(`listening on http://127.0.0.1:${app.server.address().port}\n`);
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
