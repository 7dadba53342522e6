/**
 * A2A push notifications on a cluster (docs/a2a.md): two nodes in this process on one nats-server
 * and one PostgreSQL schema, the real @a2a-js/sdk client. A config sent with a message through
 * node A is a row of the cluster's PostgreSQL, node B's client reads it, and the task's end
 * reaches the webhook on 127.0.0.1 signed with the config's token.
 */
import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SendMessageRequest, type Message, type Task } from '@a2a-js/sdk';
import { stringify } from 'smol-toml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestServer } from '../helpers/server.js';
import { waitUntil } from '../helpers/wait.js';
import { clusterFixture, clusterToml, servers } from '../cluster/helpers/serve-nodes.js';
import { openaiProvider, setTestKeys } from '../execution/helpers/caxton.js';
import { startLlmStub, type LlmStub } from '../execution/helpers/llm-stub.js';
import { clientFor } from './helpers/client.js';

const cluster = clusterFixture('a2a_push');
const { run, schema } = cluster;

describe.runIf(run)('A2A push notifications on a cluster', () => {
  const serve = servers();
  let stub: LlmStub;
  let hook: Server;
  let hookUrl: string;
  const hits: { headers: IncomingHttpHeaders; body: string }[] = [];
  let a: TestServer;
  let b: TestServer;

  beforeAll(async () => {
    setTestKeys();
    stub = await startLlmStub(() => ({ content: 'hello back' }));
    hook = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        hits.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`;
    const rest = stringify({
      a2a: { expose: ['p-*'], push_notifications: true, push_allowed_hosts: ['127.0.0.1'] },
      llm: { default_provider: 'stub', providers: { stub: openaiProvider(stub.url, { max_retries: 0 }) } },
    });
    const agentFiles = { 'p-chat.toml': stringify({ name: 'p-chat', system_prompt: 'CHAT' }) };
    a = await serve({ toml: `${rest}\n${clusterToml('node-a', cluster.nats.url, schema)}`, agentFiles });
    b = await serve({ toml: `${rest}\n${clusterToml('node-b', cluster.nats.url, schema)}`, agentFiles });
  }, 90_000);

  afterAll(async () => {
    await stub?.close();
    await new Promise((r) => hook?.close(r));
  });

  it("keeps a config set through one node in the cluster's PostgreSQL, read through another, and sends it signed", async () => {
    const client = await clientFor(a.url, 'unused', 'p-chat');
    const got = (await client.sendMessage(
      SendMessageRequest.fromJSON({
        message: { messageId: 'cl-1', role: 'ROLE_USER', parts: [{ text: 'hi' }] },
        configuration: {
          blocking: true,
          taskPushNotificationConfig: { id: 'hook-1', url: hookUrl, token: 'tok-cluster' },
        },
      }),
    )) as Message | Task;
    if (!('status' in got)) throw new Error(`expected a task, got ${JSON.stringify(got)}`);
    const { rows } = await cluster.pool.query<{ task_id: string; id: string }>(
      `SELECT task_id, id FROM "${schema}".a2a_push_configs`,
    );
    expect(rows).toEqual([{ task_id: got.id, id: 'hook-1' }]);
    const onB = await (
      await clientFor(b.url, 'unused', 'p-chat')
    ).getTaskPushNotificationConfig({
      tenant: '',
      taskId: got.id,
      id: 'hook-1',
    });
    expect(onB.url).toBe(hookUrl);
    await waitUntil(() => hits.some((h) => h.body.includes('TASK_STATE_COMPLETED')), { timeoutMs: 15_000 });
    for (const h of hits) {
      const ts = String(h.headers['x-caxton-timestamp']);
      const want = `sha256=${createHmac('sha256', 'tok-cluster').update(`${ts}.${h.body}`).digest('hex')}`;
      expect(h.headers['x-caxton-signature']).toBe(want);
    }
  });
});
