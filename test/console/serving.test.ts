/**
 * The web console's files at /ui: public (they hold no data), with a content security
 * policy that allows no inline script and no framing, the right content types and caching, the
 * build's compressed copies, index.html for client-side routes, and a 503 page without a build.
 * Everything else still needs credentials.
 */
import { request } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CONSOLE_DIR } from '../../src/api/index.js';
import { http } from '../helpers/http.js';
import { adminKeyOf, bearer } from '../helpers/keys.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

const AUTH_ON = '[auth]\nenabled = true\n';

/** A raw GET (no automatic decompression), so the encoding the server chose is visible. */
function rawRequest(
  url: string,
  headers: Record<string, string> = {},
  method = 'GET',
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    request(url, { headers, method }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

let srv: TestServer;
let index: string;
beforeAll(async () => {
  expect(
    existsSync(join(DEFAULT_CONSOLE_DIR, 'index.html')),
    'dist/console is missing: run npm run build (npm test does it first)',
  ).toBe(true);
  index = readFileSync(join(DEFAULT_CONSOLE_DIR, 'index.html'), 'utf8');
  srv = await startTestServer({ toml: AUTH_ON });
});
afterAll(async () => {
  await srv?.close();
  removeTempDirs();
});

const scriptOf = (html: string): string => {
  const m = /<script type="module" src="([^"]+)"><\/script>/.exec(html);
  expect(m, html).not.toBeNull();
  return m![1]!;
};

describe('GET /ui', () => {
  it('serves index.html without credentials, with the security headers', async () => {
    const r = await http(srv.url, 'GET', '/ui');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(r.text).toBe(index);
    const csp = r.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("connect-src 'self'");
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    expect(r.headers.get('x-frame-options')).toBe('DENY');
    expect(r.headers.get('cache-control')).toBe('no-cache');
    // No inline script: every <script> names a file of the build.
    expect(index).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/);
  });

  it('answers index.html for client-side routes, and a 404 for a missing file', async () => {
    for (const path of ['/ui/', '/ui/agents', '/ui/agents/helper', '/ui/agents/helper/chat']) {
      const r = await http(srv.url, 'GET', path);
      expect(r.status, path).toBe(200);
      expect(r.text, path).toBe(index);
    }
    const missing = await http(srv.url, 'GET', '/ui/assets/main-DOESNOTEXIST.js');
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toContain('text/plain');
  });

  it('serves the scripts and stylesheet with their content types, cached for a year (their names carry their hash)', async () => {
    const js = scriptOf(index);
    const r = await http(srv.url, 'GET', js);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(r.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(r.text).toBe(readFileSync(join(DEFAULT_CONSOLE_DIR, js.replace('/ui/', '')), 'utf8'));
    const css = /<link rel="stylesheet" href="([^"]+)">/.exec(index)![1]!;
    const c = await http(srv.url, 'GET', css);
    expect(c.status).toBe(200);
    expect(c.headers.get('content-type')).toBe('text/css; charset=utf-8');
  });

  it('sends the brotli or gzip copy the browser accepts, and 304 for a known ETag', async () => {
    const js = scriptOf(index);
    const plain = readFileSync(join(DEFAULT_CONSOLE_DIR, js.replace('/ui/', '')));
    const br = await rawRequest(srv.url + js, { 'accept-encoding': 'gzip, deflate, br' });
    expect(br.headers['content-encoding']).toBe('br');
    expect(br.headers.vary).toContain('accept-encoding');
    expect(brotliDecompressSync(br.body).equals(plain)).toBe(true);
    const gz = await rawRequest(srv.url + js, { 'accept-encoding': 'gzip' });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(gz.body).equals(plain)).toBe(true);
    const none = await rawRequest(srv.url + js);
    expect(none.headers['content-encoding']).toBeUndefined();
    expect(none.body.equals(plain)).toBe(true);
    const again = await rawRequest(srv.url + js, { 'if-none-match': String(none.headers.etag) });
    expect(again.status).toBe(304);
  });

  it('is public while the API behind it is not: the console has no data of its own', async () => {
    const table = srv.server.app.accessTable.filter((r) => r.url.startsWith('/ui')).map((r) => `${r.method} ${r.url}`);
    expect(table.sort()).toEqual(['GET /ui', 'GET /ui/*']);
    const head = await rawRequest(`${srv.url}/ui/`, {}, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
    expect((await http(srv.url, 'GET', '/api/v1/agents')).status).toBe(401);
    expect((await http(srv.url, 'GET', '/api/v1/agents', { headers: bearer(adminKeyOf(srv.dataDir)) })).status).toBe(
      200,
    );
  });

  it('still checks the Host header (DNS rebinding)', async () => {
    const r = await rawRequest(`${srv.url}/ui`, { host: 'evil.example.com' });
    expect(r.status).toBe(403);
  });

  it('whoami names the permissions of the role, which the console uses to hide what the key may not do', async () => {
    const r = await http<{ role: string; permissions: string[] }>(srv.url, 'GET', '/api/v1/whoami', {
      headers: bearer(adminKeyOf(srv.dataDir)),
    });
    expect(r.json.role).toBe('admin');
    expect(r.json.permissions).toContain('keys:manage');
    expect(r.json.permissions).toContain('agents:write');
  });
});

describe('without a build', () => {
  it('answers a 503 page that says to run npm run build', async () => {
    const s = await startTestServer({ consoleDir: makeTempDir('caxton-no-console-') });
    try {
      for (const path of ['/ui', '/ui/agents']) {
        const r = await http(s.url, 'GET', path);
        expect(r.status).toBe(503);
        expect(r.headers.get('content-type')).toBe('text/html; charset=utf-8');
        expect(r.text).toContain('npm run build');
        expect(r.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
      }
    } finally {
      await s.close();
    }
  });
});
