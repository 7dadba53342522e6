/**
 * Signed messages through a real server (127.0.0.1, port 0): the message view shows the signer and
 * whether the stored message still verifies; signing keys are listed and rotated over REST.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

let srv: TestServer;

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }> {
  const res = await fetch(srv.url + path, {
    method,
    ...(body !== undefined && { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  return { status: res.status, json: await res.json() };
}

beforeAll(async () => {
  srv = await startTestServer({ toml: '[messaging]\nsigning = true\n' });
});
afterAll(async () => {
  await srv?.close();
});

describe('signed messages over REST', () => {
  it('shows the signer of a stored message, and that a changed row no longer verifies', async () => {
    const sent = await call('POST', '/api/v1/messages', {
      performative: 'inform',
      receivers: ['nobody'],
      content: 'hello',
    });
    expect(sent.status).toBe(202);
    const view = await call('GET', `/api/v1/messages/${sent.json.id}`);
    expect(view.status).toBe(200);
    expect(view.json.signature.key).toMatch(/^sk_/);
    expect(view.json.signer).toEqual({ key: view.json.signature.key, owner: 'node', node: 'local', valid: true });
    srv.server.db.prepare("UPDATE messages SET body = replace(body, 'hello', 'hellp') WHERE id = ?").run(sent.json.id);
    const changed = await call('GET', `/api/v1/messages/${sent.json.id}`);
    expect(changed.json.signer).toMatchObject({ owner: 'node', valid: false, problem: /changed after it was signed/ });
  });

  it('lists the public halves and rotates a key; what the old key signed still verifies', async () => {
    const sent = await call('POST', '/api/v1/messages', {
      performative: 'inform',
      receivers: ['nobody'],
      content: 'kept',
    });
    const before = await call('GET', '/api/v1/signing-keys');
    expect(before.json.node).toBe('local');
    const [old] = before.json.keys;
    expect(old).toMatchObject({ owner: 'node', state: 'active', retired_at: null });
    expect(JSON.stringify(before.json)).not.toMatch(/PRIVATE/);
    const rotated = await call('POST', '/api/v1/signing-keys/node/rotate');
    expect(rotated.status).toBe(200);
    expect(rotated.json.retired).toMatchObject({ id: old.id, state: 'retired' });
    expect(rotated.json.key.id).not.toBe(old.id);
    expect(existsSync(join(srv.dataDir, 'signing', `${old.id}.pem`))).toBe(false);
    expect(statSync(join(srv.dataDir, 'signing', `${rotated.json.key.id}.pem`)).mode & 0o777).toBe(0o600);
    const view = await call('GET', `/api/v1/messages/${sent.json.id}`);
    expect(view.json.signer).toMatchObject({ key: old.id, valid: true });
    const bad = await call('POST', '/api/v1/signing-keys/agent:-x/rotate');
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toMatch(/not a signing key owner/);
  });
});
