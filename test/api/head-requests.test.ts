import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminKeyOf, bearer } from '../helpers/keys.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';

let t: TestServer;
let admin: string;
beforeAll(async () => {
  t = await startTestServer({
    toml: `[auth]\nenabled = true\n`,
    agentFiles: { 'echo.toml': 'name = "echo"\ndescription = "echoes"\nsystem_prompt = "Echo."\n' },
  });
  admin = adminKeyOf(t.dataDir);
});
afterAll(async () => {
  await t.close();
  removeTempDirs();
});

/** One request on its own connection; HEAD's response has headers only. */
async function call(method: string, path: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${t.url}${path}`, { method, headers });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

describe('HEAD on GET routes', () => {
  it("answers as the GET would, with the GET's headers and no body", async () => {
    for (const path of ['/health', '/api/v1/agents/echo', '/api/v1/agents?limit=1']) {
      const get = await call('GET', path, bearer(admin));
      const head = await call('HEAD', path, bearer(admin));
      expect(get.status, path).toBe(200);
      expect(head.status, path).toBe(200);
      expect(head.body, path).toBe('');
      expect(head.headers.get('content-type'), path).toBe(get.headers.get('content-type'));
      expect(Number(head.headers.get('content-length')), path).toBe(Buffer.byteLength(get.body));
      expect(head.headers.get('x-request-id'), path).toMatch(/\S/);
    }
  });

  it('is refused where the GET is: no key 401, an unknown agent 404, a POST-only route 404', async () => {
    const noKey = await call('HEAD', '/api/v1/agents');
    expect(noKey.status).toBe(401);
    expect(noKey.headers.get('www-authenticate')).toBe('Bearer realm="caxton"');
    expect(noKey.body).toBe('');
    expect((await call('HEAD', '/api/v1/agents/nobody', bearer(admin))).status).toBe(404);
    expect((await call('HEAD', '/api/v1/agents/validate', bearer(admin))).status).toBe(404);
    // A public GET route's HEAD needs no key either.
    for (const path of ['/health', '/ready', '/ui/']) {
      const head = await call('HEAD', path);
      expect(head.status, path).toBe((await call('GET', path)).status);
      expect(head.body, path).toBe('');
    }
    // The connection still serves the next request in order after a HEAD answer.
    const after = await call('GET', '/health');
    expect(after.status).toBe(200);
    expect(JSON.parse(after.body)).toMatchObject({ status: 'ok' });
  });
});
