/**
 * A JavaScript tool whose output, error and log echo the secret the operator granted it
 * (`[tools.NAME.config] api_key`): scrubbed before the caller, the audit or the database sees
 * them (ADR 0017). A real server (startTestServer), the package deployed through the REST API.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../../helpers/server.js';
import { removeTempDirs } from '../../helpers/tmp.js';
import { jsManifestText } from './helpers.js';

const SECRET = 'tool-secret-5f2c9a7e41d03b86';
const FORMS = [
  SECRET,
  encodeURIComponent(SECRET),
  Buffer.from(SECRET).toString('base64').slice(0, -4),
  Buffer.from(SECRET).toString('hex'),
];

const SOURCE = `
export function show() {
  const k = caxton.config('api_key');
  return 'configured with ' + k + ' (' + encodeURIComponent(k) + ')';
}
export function boom() {
  caxton.log.info('about to fail with ' + caxton.config('api_key'));
  throw new Error('upstream refused key ' + caxton.config('api_key'));
}
`;

let t: TestServer;
const post = async (path: string, body: unknown) => {
  const res = await fetch(t.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, text: await res.text() };
};
const expectClean = (where: string, text: string | Buffer) => {
  const hay = typeof text === 'string' ? Buffer.from(text) : text;
  for (const f of FORMS) expect(hay.includes(Buffer.from(f)), `${where} contains the secret as "${f}"`).toBe(false);
};

beforeAll(async () => {
  t = await startTestServer({ toml: `[tools.leaky-js.config]\napi_key = "${SECRET}"\n` });
});
afterAll(async () => {
  await t?.close();
  removeTempDirs();
});

describe('a JavaScript tool that echoes its granted secret', () => {
  it('its output and its error reach the REST caller and the audit without the secret', async () => {
    const manifest = jsManifestText('leaky-js', ['show', 'boom'], '\n[config]\napi_key = { required = true }\n');
    const deployed = await post('/api/v1/tools', { manifest, wasm: Buffer.from(SOURCE).toString('base64') });
    expect(deployed.status, deployed.text).toBe(201);
    const shown = await post('/api/v1/tools/leaky-js/show/call', { args: {} });
    expect(shown.status).toBe(200);
    expect(JSON.parse(shown.text)).toMatchObject({ content: 'configured with *** (***)', is_error: false });
    const failed = await post('/api/v1/tools/leaky-js/boom/call', { args: {} });
    expect(JSON.parse(failed.text)).toMatchObject({ is_error: true });
    expect(failed.text).toContain('upstream refused key ***');
    const audit = await fetch(`${t.url}/api/v1/tools/audit?server=leaky-js`).then((r) => r.text());
    expect(audit).toContain('upstream refused key ***');
    for (const [where, text] of [
      ['show', shown.text],
      ['boom', failed.text],
      ['audit', audit],
    ] as const)
      expectClean(where, text);
  });

  it('caxton.db and its WAL hold no copy of it', async () => {
    const db = join(t.dataDir, 'caxton.db');
    for (const f of [db, `${db}-wal`].filter((p) => existsSync(p))) expectClean(f, readFileSync(f));
    await t.close();
    for (const f of [db, `${db}-wal`].filter((p) => existsSync(p))) expectClean(`${f} after close`, readFileSync(f));
  });
});
