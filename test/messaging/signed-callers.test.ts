/**
 * Messages signed by their caller (ADR 0115), on a real server (port 0, SQLite, authentication and
 * `[messaging] signing` on): an operator registers a caller's Ed25519 public key; a message the
 * caller signs with nothing but node:crypto is accepted, stored with who signed it and delivered;
 * changed content, a copy sent again, another private key, another principal's key, a signature
 * too old and a signature without the fields it must cover are refused with the reason, nothing
 * stored — in a single send and in a batch.
 */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http } from '../helpers/http.js';
import { adminKeyOf, bearer, createKey } from '../helpers/keys.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';

let srv: TestServer;
let admin: string;
let ci: string;
let ops: string;
const ciKeys = generateKeyPairSync('ed25519');
const opsKeys = generateKeyPairSync('ed25519');
let ciKeyId: string;
let opsKeyId: string;
let n = 0;

/** What the caller signs: the form's name, the key id, when, and the message without `signature`, keys sorted. */
function canonical(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(canonical);
  return Object.fromEntries(
    Object.keys(v)
      .sort()
      .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
  );
}

function signed(
  message: Record<string, unknown>,
  key: string,
  privateKey: KeyObject,
  signedAt = new Date().toISOString(),
): Record<string, unknown> {
  const bytes = Buffer.from(JSON.stringify(['caxton-signed-message-v1', key, signedAt, canonical(message)]));
  return {
    ...message,
    signature: { key, signed_at: signedAt, value: sign(null, bytes, privateKey).toString('base64') },
  };
}

const message = (sender = 'key:ci'): Record<string, unknown> => ({
  id: `signed-${++n}`,
  sender,
  performative: 'inform',
  receiver: 'ledger',
  content: { amount: 100, to: 'acct-7' },
});

const send = (body: unknown, key: string) =>
  http<{ id: string; error?: { code: string; message: string; details: { reason?: string } } }>(
    srv.url,
    'POST',
    '/api/v1/messages',
    { body: JSON.stringify(body), contentType: 'application/json', headers: bearer(key) },
  );

const stored = (id: string) =>
  http<{
    signed_by?: { key: string; principal: string; signed_at: string };
    signer?: { owner: string; valid: boolean };
    deliveries: { state: string }[];
  }>(srv.url, 'GET', `/api/v1/messages/${id}`, { headers: bearer(admin) });

const rawPublic = (k: KeyObject): string => k.export({ format: 'der', type: 'spki' }).subarray(12).toString('base64');

beforeAll(async () => {
  const dir = makeTempDir('caxton-signed-callers-');
  writeFileSync(
    join(dir, 'replies.toml'),
    'fallback = "noted"\n\n[[rules]]\nmatch = "Signed by: key:ci \\\\(key sk_"\ncontent = "I see who signed it"\n',
  );
  srv = await startTestServer({
    dir,
    toml: '[auth]\nenabled = true\n\n[messaging]\nsigning = true\n\n[llm]\ndefault_provider = "s"\n[llm.providers.s]\ntype = "scripted"\nscript = "replies.toml"\n',
    agentFiles: { 'ledger.toml': 'name = "ledger"\nsystem_prompt = "You keep the ledger."\n' },
  });
  admin = adminKeyOf(srv.dataDir);
  ci = await createKey(srv.url, admin, 'ci', { role: 'operator' });
  ops = await createKey(srv.url, admin, 'ops', { role: 'operator' });
  const reg = async (principal: string, public_key: string) => {
    const r = await http<{ key: { id: string; owner: string; node: string; state: string } }>(
      srv.url,
      'POST',
      '/api/v1/signing-keys/principals',
      { body: JSON.stringify({ principal, public_key }), contentType: 'application/json', headers: bearer(admin) },
    );
    expect(r.status, r.text).toBe(201);
    return r.json.key;
  };
  const k = await reg('key:ci', ciKeys.publicKey.export({ format: 'pem', type: 'spki' }).toString());
  expect(k).toMatchObject({ owner: 'principal:key:ci', node: 'outside', state: 'active' });
  ciKeyId = k.id;
  opsKeyId = (await reg('key:ops', rawPublic(opsKeys.publicKey))).id;
}, 30_000);

afterAll(async () => {
  await srv?.close();
  removeTempDirs();
});

describe('messages signed by their caller', () => {
  it('accepts a signed message, stores who signed it, and delivers it', async () => {
    const m = message();
    const r = await send(signed(m, ciKeyId, ciKeys.privateKey), ci);
    expect(r.status, r.text).toBe(202);
    const { value: s } = await waitUntil(async () => {
      const got = await stored(r.json.id);
      return got.json.deliveries[0]?.state !== 'pending' && got;
    });
    expect(s.json.deliveries, JSON.stringify(s.json)).toMatchObject([{ state: 'done' }]);
    expect(s.json.signed_by).toMatchObject({ key: ciKeyId, principal: 'key:ci' });
    // The node's signature covers who signed it: the stored message verifies as a whole.
    expect(s.json.signer).toMatchObject({ owner: 'node', valid: true });
    const audit = await http<{ records: { action: string; target: string | null }[] }>(
      srv.url,
      'GET',
      '/api/v1/audit?action=signing_key.register',
      { headers: bearer(admin) },
    );
    expect(audit.json.records.map((e) => e.target)).toEqual(expect.arrayContaining(['key:ci', 'key:ops']));
  });

  it('tells the receiving agent who signed the message', async () => {
    const m = { ...message(), performative: 'request', content: 'who wrote this?' };
    const r = await http<{ messages: { sender: string; performative: string; content: unknown }[] }>(
      srv.url,
      'POST',
      '/api/v1/messages?wait=30',
      {
        body: JSON.stringify(signed(m, ciKeyId, ciKeys.privateKey)),
        contentType: 'application/json',
        headers: bearer(ci),
      },
    );
    expect(r.status, r.text).toBe(200);
    expect(r.json.messages.find((x) => x.sender === 'ledger' && x.performative === 'inform')?.content, r.text).toBe(
      'I see who signed it',
    );
  });

  it('refuses changed content, another private key, and the key of another principal; nothing is stored', async () => {
    const tampered = { ...signed(message(), ciKeyId, ciKeys.privateKey), content: { amount: 100_000, to: 'acct-7' } };
    const other = generateKeyPairSync('ed25519');
    const wrongKey = signed(message(), ciKeyId, other.privateKey);
    const notMine = signed(message(), opsKeyId, opsKeys.privateKey);
    const cases: [Record<string, unknown>, string][] = [
      [tampered, 'signature_invalid'],
      [wrongKey, 'signature_invalid'],
      [notMine, 'signature_key'],
    ];
    for (const [body, reason] of cases) {
      const r = await send(body, ci);
      expect(r.status, r.text).toBe(403);
      expect(r.json.error?.details.reason).toBe(reason);
      expect((await stored(body.id as string)).status).toBe(404);
    }
    // The ops principal's own key, sent by ci with impersonation refused by the key anyway.
    const opsOwn = signed(message('key:ops'), opsKeyId, opsKeys.privateKey);
    expect((await send(opsOwn, ops)).status).toBe(202);
  });

  it('refuses a copy sent again, a signature too old, and one missing what it must cover', async () => {
    const body = signed(message(), ciKeyId, ciKeys.privateKey);
    expect((await send(body, ci)).status).toBe(202);
    const again = await send(body, ci);
    expect(again.status, again.text).toBe(409);
    expect(again.json.error?.details.reason).toBe('replayed');

    const old = signed(message(), ciKeyId, ciKeys.privateKey, new Date(Date.now() - 10 * 60_000).toISOString());
    const late = await send(old, ci);
    expect(late.status, late.text).toBe(403);
    expect(late.json.error?.details.reason).toBe('signature_expired');

    const { id: _id, ...noId } = message();
    const r1 = await send(signed(noId, ciKeyId, ciKeys.privateKey), ci);
    expect(r1.status, r1.text).toBe(400);
    expect(r1.json.error?.message).toContain('id: a signed message carries its own id');
    const { sender: _s, ...noSender } = message();
    const r2 = await send(signed(noSender, ciKeyId, ciKeys.privateKey), ci);
    expect(r2.status, r2.text).toBe(400);
    expect(r2.json.error?.message).toContain('sender: a signed message names its sender (you: key:ci)');
    const r3 = await send({ ...message(), signature: { key: ciKeyId } }, ci);
    expect(r3.status, r3.text).toBe(400);
    expect(r3.json.error?.message).toContain('signature: expected');
  });

  it('checks each message of a batch: the signed one is accepted, the changed one refused', async () => {
    const good = signed(message(), ciKeyId, ciKeys.privateKey);
    const bad = { ...signed(message(), ciKeyId, ciKeys.privateKey), content: 'changed' };
    const r = await http<{ results: { status: number; error?: { details: { reason: string } } }[] }>(
      srv.url,
      'POST',
      '/api/v1/messages',
      { body: JSON.stringify([good, bad]), contentType: 'application/json', headers: bearer(ci) },
    );
    expect(r.status, r.text).toBe(202);
    expect(r.json.results.map((x) => x.status)).toEqual([202, 403]);
    expect(r.json.results[1]!.error?.details.reason).toBe('signature_invalid');
    expect((await stored(good.id as string)).json.signed_by?.principal).toBe('key:ci');
  });

  it('registering: a second key retires the first, a bad key or principal is refused naming the field', async () => {
    const next = generateKeyPairSync('ed25519');
    const r = await http<{ key: { id: string }; retired: { id: string; state: string } | null }>(
      srv.url,
      'POST',
      '/api/v1/signing-keys/principals',
      {
        body: JSON.stringify({ principal: 'key:ops', public_key: rawPublic(next.publicKey) }),
        contentType: 'application/json',
        headers: bearer(admin),
      },
    );
    expect(r.status, r.text).toBe(201);
    expect(r.json.retired).toMatchObject({ id: opsKeyId, state: 'retired' });
    const retired = await send(signed(message('key:ops'), opsKeyId, opsKeys.privateKey), ops);
    expect(retired.status, retired.text).toBe(403);
    expect(retired.json.error?.message).toContain('is retired');
    for (const [body, text] of [
      [{ principal: 'key:ops', public_key: 'AAAA' }, 'public_key: expected an Ed25519 public key'],
      [{ principal: 'ops', public_key: rawPublic(next.publicKey) }, 'is not a principal id'],
    ] as const) {
      const bad = await http<{ error: { message: string } }>(srv.url, 'POST', '/api/v1/signing-keys/principals', {
        body: JSON.stringify(body),
        contentType: 'application/json',
        headers: bearer(admin),
      });
      expect(bad.status, bad.text).toBe(400);
      expect(bad.json.error.message).toContain(text);
    }
    // An operator cannot register keys: keys:manage is the admin's.
    const denied = await http(srv.url, 'POST', '/api/v1/signing-keys/principals', {
      body: JSON.stringify({ principal: 'key:ci', public_key: rawPublic(next.publicKey) }),
      contentType: 'application/json',
      headers: bearer(ci),
    });
    expect(denied.status).toBe(403);
  });
});
