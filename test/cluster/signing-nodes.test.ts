/**
 * Signed messages on a cluster (ADR 0059): two `caxton serve` nodes in this process on one
 * nats-server and one PostgreSQL schema, `[messaging] signing = true` on both, the same `worker`
 * agent file on each. Requests are sent to node A until node B's worker answers one: node B then
 * verified what node A signed, with a public key that travelled between the nodes, and node A shows
 * node B's reply as validly signed. A message changed in the shared store is refused on replay.
 * Both nodes read a copy of one trust anchor file (`[messaging] signing_anchor`, ADR 0114).
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { TestServer } from '../helpers/server.js';
import { makeTempDir } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';
import { clusterFixture, clusterToml, servers } from './helpers/serve-nodes.js';

const cluster = clusterFixture('signing');
const { run, schema } = cluster;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

async function call(
  node: TestServer,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: Json }> {
  const res = await fetch(node.url + path, {
    method,
    ...(body !== undefined && { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  return { status: res.status, json: await res.json() };
}

describe.skipIf(!run)('signed messages across two nodes', () => {
  const start = servers();
  let a: TestServer;
  let b: TestServer;

  beforeAll(async () => {
    const anchor = join(makeTempDir('caxton-sign-anchor-'), 'anchor.pem');
    writeFileSync(anchor, generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }), {
      mode: 0o600,
    });
    const toml = (node: string) => `${clusterToml(node, cluster.nats.url, schema)}
[messaging]
signing = true
signing_anchor = ${JSON.stringify(anchor)}
max_attempts = 1
[llm]
default_provider = "s"
[llm.providers.s]
type = "scripted"
script = "replies.toml"
`;
    const node = async (name: string) => {
      const dir = makeTempDir('caxton-sign-node-');
      // No fallback: a request the rule does not match fails, so its delivery is dead-lettered.
      writeFileSync(
        join(dir, 'replies.toml'),
        `[[rules]]\nmatch = "sign this"\ncontent = "signed work done on ${name}"\n`,
      );
      return start({
        dir,
        toml: toml(name),
        agentFiles: { 'worker.toml': 'name = "worker"\nsystem_prompt = "You work."\n' },
      });
    };
    a = await node('node-a');
    b = await node('node-b');
  }, 90_000);

  it('refuses to start a node with signing on a cluster but no shared trust anchor, naming the setting', async () => {
    const toml = clusterToml('node-c', cluster.nats.url, schema) + '\n[messaging]\nsigning = true\n';
    await expect(start({ dir: makeTempDir('caxton-sign-node-'), toml })).rejects.toThrow(
      /\[messaging\] signing on a cluster needs \[messaging\] signing_anchor/,
    );
  });

  it("verifies on node B what node A signed, with node A's public key", async () => {
    // Deliveries go to whichever node pulls them: 20 tries all on node A would be 1 in a million.
    let reply: Json;
    let request: Json;
    for (let i = 0; i < 20 && reply?.content !== 'signed work done on node-b'; i++) {
      const sent = await call(a, 'POST', '/api/v1/messages?wait=30', {
        performative: 'request',
        protocol: 'fipa-request',
        receivers: ['worker'],
        content: `sign this (${i})`,
      });
      expect(sent.status, JSON.stringify(sent.json)).toBe(200);
      reply = (sent.json.messages as Json[]).find((m) => m.sender === 'worker' && m.performative === 'inform');
      request = (sent.json.messages as Json[]).find((m) => m.sender !== 'worker');
      expect(String(reply?.content), JSON.stringify(sent.json.messages)).toMatch(/^signed work done on node-[ab]$/);
    }
    expect(reply.content).toBe('signed work done on node-b');
    const onB = await call(b, 'GET', `/api/v1/messages/${request.id}`);
    expect(onB.json.signer).toMatchObject({ owner: 'node', node: 'node-a', valid: true });
    const replyOnA = await call(a, 'GET', `/api/v1/messages/${reply.id}`);
    expect(replyOnA.json.signer).toMatchObject({ owner: 'agent:worker', node: 'node-b', valid: true });
    const keysOnB = await call(b, 'GET', '/api/v1/signing-keys');
    expect([...new Set((keysOnB.json.keys as Json[]).map((k) => k.node))].sort()).toEqual(['node-a', 'node-b']);
  });

  it('refuses a delivered row set back to pending in PostgreSQL: replayed, audited, never run again', async () => {
    const sent = await call(a, 'POST', '/api/v1/messages?wait=30', {
      performative: 'request',
      protocol: 'fipa-request',
      receivers: ['worker'],
      content: 'sign this once',
    });
    expect(sent.status, JSON.stringify(sent.json)).toBe(200);
    const request = (sent.json.messages as Json[]).find((m) => m.sender !== 'worker');
    const answers = async () =>
      ((await call(a, 'GET', `/api/v1/messages/${request.id}`)).json.deliveries as Json[]).length;
    expect(await answers()).toBe(1);
    // What a writer of the shared store does to have it run again: the row pending, as if its publish was lost.
    const reset = await cluster.pool.query(
      `UPDATE "${schema}".deliveries SET state = 'pending', attempts = 0, next_at = 0, unpublished_since = 1, publish_tag = 'reset'
       WHERE message_id = $1 AND receiver = 'worker'`,
      [request.id],
    );
    expect(reset.rowCount).toBe(1);
    let dead: Json;
    await waitUntil(
      async () => {
        const list = await call(a, 'GET', `/api/v1/dead-letters?receiver=worker`);
        dead = (list.json.dead_letters as Json[]).find((d) => d.message_id === request.id);
        return dead !== undefined;
      },
      { timeoutMs: 30_000 },
    );
    expect(dead.last_error).toBe('replayed: worker has had this signed message already');
    const refusals: Json[] = [];
    for (const n of [a, b])
      refusals.push(...(await call(n, 'GET', '/api/v1/audit?action=message.replay_refused')).json.records);
    expect(refusals).toEqual([expect.objectContaining({ target: request.id, outcome: 'denied' })]);
    const conv = await call(a, 'GET', `/api/v1/conversations/${request.conversation_id}`);
    const replies = (conv.json.messages as Json[]).filter((m) => m.sender === 'worker' && m.performative === 'inform');
    expect(replies).toHaveLength(1);
  });

  it('refuses on replay a message changed in the shared store, with signature_invalid', async () => {
    const sent = await call(a, 'POST', '/api/v1/messages?wait=30', {
      performative: 'request',
      protocol: 'fipa-request',
      receivers: ['worker'],
      content: 'please fail',
    });
    expect(sent.status, JSON.stringify(sent.json)).toBe(200);
    const request = (sent.json.messages as Json[]).find((m) => m.sender !== 'worker');
    let dead: Json;
    await waitUntil(
      async () => {
        const list = await call(b, 'GET', `/api/v1/dead-letters?receiver=worker`);
        dead = (list.json.dead_letters as Json[]).find((d) => d.message_id === request.id);
        return dead !== undefined;
      },
      { timeoutMs: 20_000 },
    );
    // One byte of content changed, as someone with write access to PostgreSQL would.
    const changed = await cluster.pool.query(
      `UPDATE "${schema}".messages SET body = replace(body, 'please fail', 'please sign') WHERE id = $1`,
      [request.id],
    );
    expect(changed.rowCount).toBe(1);
    const replayed = await call(a, 'POST', `/api/v1/dead-letters/${dead.id}/replay`);
    expect(replayed.status, JSON.stringify(replayed.json)).toBeLessThan(300);
    await waitUntil(
      async () => {
        const list = await call(a, 'GET', `/api/v1/dead-letters?receiver=worker`);
        return (list.json.dead_letters as Json[]).some(
          (d) => d.message_id === request.id && String(d.last_error).startsWith('signature_invalid'),
        );
      },
      { timeoutMs: 20_000 },
    );
    const view = await call(b, 'GET', `/api/v1/messages/${request.id}`);
    expect(view.json.signer).toMatchObject({ node: 'node-a', valid: false, problem: /changed after it was signed/ });
  });
  it("accepts a caller's signed message once across the nodes: its key travels, a copy sent to the other node is a replay", async () => {
    const caller = generateKeyPairSync('ed25519');
    const reg = await call(a, 'POST', '/api/v1/signing-keys/principals', {
      principal: 'local:anonymous',
      public_key: caller.publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    });
    expect(reg.status, JSON.stringify(reg.json)).toBe(201);
    const keyId = reg.json.key.id as string;
    await waitUntil(async () =>
      ((await call(b, 'GET', '/api/v1/signing-keys')).json.keys as Json[]).some((k) => k.id === keyId),
    );
    const message = {
      id: `signed-across-${Date.now()}`,
      sender: 'local:anonymous',
      performative: 'request',
      protocol: 'fipa-request',
      receivers: ['worker'],
      content: 'sign this from outside',
    };
    const signedAt = new Date().toISOString();
    const sorted = Object.fromEntries(Object.entries(message).sort(([x], [y]) => (x < y ? -1 : 1)));
    const bytes = Buffer.from(JSON.stringify(['caxton-signed-message-v1', keyId, signedAt, sorted]));
    const body = {
      ...message,
      signature: { key: keyId, signed_at: signedAt, value: sign(null, bytes, caller.privateKey).toString('base64') },
    };
    const first = await call(b, 'POST', '/api/v1/messages?wait=30', body);
    expect(first.status, JSON.stringify(first.json)).toBe(200);
    expect((first.json.messages as Json[]).find((m) => m.id === message.id).signed_by).toMatchObject({
      key: keyId,
      principal: 'local:anonymous',
    });
    expect((first.json.messages as Json[]).some((m) => m.sender === 'worker' && m.performative === 'inform')).toBe(
      true,
    );
    const again = await call(a, 'POST', '/api/v1/messages', body);
    expect(again.status, JSON.stringify(again.json)).toBe(409);
    expect(again.json.error.details.reason).toBe('replayed');
    const onA = await call(a, 'GET', `/api/v1/messages/${message.id}`);
    expect(onA.json.signer).toMatchObject({ owner: 'node', node: 'node-b', valid: true });
  });
});
