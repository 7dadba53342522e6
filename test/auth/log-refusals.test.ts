/**
 * The server log read by a key with an agents scope: another key's refusal that names an agent
 * outside that scope (its line says which agent) is left out, as every line naming such an agent
 * is; the key's own in-scope refusals and an unscoped reader see theirs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http } from '../helpers/http.js';
import { adminKeyOf, bearer, createKey } from '../helpers/keys.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';

let srv: TestServer;
let admin: string;

beforeAll(async () => {
  // At info, so refusals ("request rejected") reach the log buffer.
  srv = await startTestServer({
    toml: '[auth]\nenabled = true\n',
    flags: { logLevel: 'info' },
    agentFiles: {
      'a-one.toml': 'name = "a-one"\nsystem_prompt = "You are a."\n',
      'b-secret.toml': 'name = "b-secret"\nsystem_prompt = "You keep secrets."\n',
      'c-hidden.toml': 'name = "c-hidden"\nsystem_prompt = "You are c."\n',
    },
  });
  admin = adminKeyOf(srv.dataDir);
}, 30_000);

afterAll(async () => {
  await srv?.close();
  removeTempDirs();
});

type Lines = { logs: { msg?: string; message?: string; agent?: string }[] };
const rejected = async (key: string) =>
  (await http<Lines>(srv.url, 'GET', '/api/v1/logs?limit=10000', { headers: bearer(key) })).json.logs
    .filter((l) => l.msg === 'request rejected')
    .map((l) => l.message ?? '');

describe('refusals in the log', () => {
  it("a scoped reader does not see another key's refusal naming an agent outside its scope", async () => {
    const reader = await createKey(srv.url, admin, 'reader-a', { role: 'operator', agents: ['a-*'] });
    const other = await createKey(srv.url, admin, 'other-c', { role: 'operator', agents: ['c-*'] });
    const open = await createKey(srv.url, admin, 'reader-all', { role: 'operator' });
    // Another key refused an out-of-scope agent (b-secret): the refusal names it.
    const refused = await http(srv.url, 'GET', '/api/v1/agents/b-secret', { headers: bearer(other) });
    expect(refused.status, refused.text).toBe(403);
    expect(refused.text).toContain('b-secret');
    // And refused for an agent the reader sees (a-one).
    expect((await http(srv.url, 'GET', '/api/v1/agents/a-one', { headers: bearer(other) })).status).toBe(403);

    const seen = await rejected(reader);
    expect(seen.some((m) => m.includes('"a-one"'))).toBe(true);
    expect(seen.filter((m) => m.includes('b-secret'))).toEqual([]);
    const all = await rejected(open);
    expect(all.some((m) => m.includes('"b-secret"'))).toBe(true);
  });
});
