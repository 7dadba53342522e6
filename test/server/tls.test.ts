import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { clientCertMappingsSchema, principalFromSocket } from '../../src/auth/cert.js';
import { isLoopbackHost } from '../../src/server/tls.js';
import { createCa, type Pem, type TestCa } from '../helpers/certs.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';

interface Reply {
  status: number;
  body: string;
  /** The serial number of the certificate the server presented. */
  serial: string;
}

/** One GET on a fresh connection (no agent: every call is a new TLS handshake). */
function get(url: string, tls: { ca?: string; cert?: string; key?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { agent: false, ...tls }, (res) => {
      const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, serial }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** The error a request ends with (a refused handshake), or "ok <status>" when it was served. */
async function outcome(url: string, tls: { ca?: string; cert?: string; key?: string }): Promise<string> {
  try {
    return `ok ${(await get(url, tls)).status}`;
  } catch (e) {
    return `refused ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
  }
}

const mapping = clientCertMappingsSchema.parse([
  { cn: 'ci-*', san: 'URI:spiffe://caxton/ci', role: 'operator', agents: ['build-*'] },
  { cn: '*', role: 'viewer' },
]);

/** GET /api/v1/test/whoami: what the connection's client certificate says, and the principal it maps to. */
const whoami = async (app: FastifyInstance) => {
  app.get('/test/whoami', { config: { access: { public: true } } }, async (req) => {
    const socket = req.raw.socket as TLSSocket;
    const cert = socket.getPeerCertificate();
    return {
      authorized: socket.authorized,
      cn: cert.subject?.CN ?? null,
      principal: principalFromSocket(socket, mapping) ?? null,
    };
  });
};

let ca: TestCa;
let otherCa: TestCa;
let server1: Pem;
let server2: Pem;
let client: Pem;
let expired: Pem;
let foreign: Pem;

beforeAll(async () => {
  ca = await createCa('Caxton Test CA');
  otherCa = await createCa('Somebody Else CA');
  const serverNames = { cn: 'caxton.test', dns: ['localhost'], ips: ['127.0.0.1'] };
  server1 = await ca.issue(serverNames);
  server2 = await ca.issue(serverNames);
  client = await ca.issue({ cn: 'ci-runner', uris: ['spiffe://caxton/ci'] });
  expired = await ca.issue({
    cn: 'ci-runner',
    uris: ['spiffe://caxton/ci'],
    notBefore: new Date(Date.now() - 400 * 86_400_000),
    notAfter: new Date(Date.now() - 30 * 86_400_000),
  });
  foreign = await otherCa.issue({ cn: 'ci-runner', uris: ['spiffe://caxton/ci'] });
});

const servers: TestServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});
afterAll(() => removeTempDirs());

/** A project dir with tls/server.crt, tls/server.key and tls/ca.crt, and a server started from `toml`. */
async function start(toml: string, plugins?: ((app: FastifyInstance) => Promise<void>)[]): Promise<TestServer> {
  const dir = makeTempDir('caxton-tls-');
  writeTls(dir, server1);
  const t = await startTestServer({ dir, toml, ...(plugins && { plugins }) });
  servers.push(t);
  return t;
}

function writeTls(dir: string, pem: Pem, key = pem.key): void {
  mkdirSync(join(dir, 'tls'), { recursive: true });
  writeFileSync(join(dir, 'tls', 'server.crt'), pem.cert);
  writeFileSync(join(dir, 'tls', 'server.key'), key);
  writeFileSync(join(dir, 'tls', 'ca.crt'), ca.cert);
}

const TLS = '[server.tls]\ncert = "tls/server.crt"\nkey = "tls/server.key"\n';

describe('[server.tls]', () => {
  it('serves the API over HTTPS with the configured certificate (paths relative to caxton.toml)', async () => {
    const t = await start(TLS);
    expect(t.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const r = await get(`${t.url}/health`, { ca: ca.cert });
    expect(r.status).toBe(200);
    expect(r.serial).toBe(server1.serial);
    // Not trusted without the CA: the certificate is really checked by the client.
    expect(await outcome(`${t.url}/health`, {})).toMatch(
      /^refused (UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)$/,
    );
    // Plain HTTP on the TLS port gets no API answer.
    const plain = await new Promise<string>((resolve) => {
      const req = request(t.url.replace('https:', 'http:') + '/health', (res) => resolve(`status ${res.statusCode}`));
      req.on('error', (e: NodeJS.ErrnoException) => resolve(`error ${e.code}`));
      req.end();
    });
    expect(plain).not.toBe('status 200');
  });

  it('reloads the certificate when the files change; a key that does not match keeps the running one', async () => {
    const t = await start(TLS);
    expect((await get(`${t.url}/health`, { ca: ca.cert })).serial).toBe(server1.serial);
    writeTls(t.dir, server2);
    await waitUntil(async () => (await get(`${t.url}/health`, { ca: ca.cert })).serial === server2.serial, {
      timeoutMs: 10_000,
      what: 'the new certificate on a new connection',
    });
    expect(t.server.tls.api?.status()).toMatchObject({ serial: server2.serial, reloads: 1 });

    // A certificate with somebody else's key: logged, and the last good pair stays in use.
    writeTls(t.dir, server1, server2.key);
    const keyFile = join(t.dir, 'tls', 'server.key');
    const { value: error } = await waitUntil(() => t.server.tls.api?.status().last_error, {
      timeoutMs: 10_000,
      what: 'the reload error',
    });
    expect(error).toContain(keyFile);
    expect(error).toMatch(/does not belong to the certificate/);
    const r = await get(`${t.url}/health`, { ca: ca.cert });
    expect(r.status).toBe(200);
    expect(r.serial).toBe(server2.serial);

    // Fixed: picked up again.
    writeTls(t.dir, server1);
    await waitUntil(async () => (await get(`${t.url}/health`, { ca: ca.cert })).serial === server1.serial, {
      timeoutMs: 10_000,
      what: 'the fixed certificate',
    });
    expect(t.server.tls.api?.status().last_error).toBeUndefined();
  });
});

describe('client certificates (mTLS)', () => {
  it('client_auth = "require": a certificate from the CA is served and maps to its principal; expired, unknown-CA or missing certificates are refused at the handshake', async () => {
    const t = await start(`${TLS}ca = "tls/ca.crt"\nclient_auth = "require"\n`, [whoami]);
    const good = { ca: ca.cert, cert: client.cert, key: client.key };
    expect((await get(`${t.url}/health`, good)).status).toBe(200);
    const me = await get(`${t.url}/api/v1/test/whoami`, good);
    expect(me.status).toBe(200);
    expect(JSON.parse(me.body)).toEqual({
      authorized: true,
      cn: 'ci-runner',
      principal: {
        id: 'cert:ci-runner',
        kind: 'cert',
        name: 'ci-runner',
        role: 'operator',
        scope: { agents: ['build-*'] },
      },
    });

    expect(await outcome(`${t.url}/health`, { ca: ca.cert, cert: expired.cert, key: expired.key })).toMatch(
      /^refused /,
    );
    expect(await outcome(`${t.url}/health`, { ca: ca.cert, cert: foreign.cert, key: foreign.key })).toMatch(
      /^refused /,
    );
    expect(await outcome(`${t.url}/health`, { ca: ca.cert })).toMatch(/^refused /);
    // The same server still serves the good certificate after the refusals.
    expect(await outcome(`${t.url}/health`, good)).toBe('ok 200');
  });

  it('with authentication on, a verified client certificate is the principal; without one the request is a 401', async () => {
    const t = await start(
      `${TLS}ca = "tls/ca.crt"\nclient_auth = "optional"\n\n[auth]\nenabled = true\n\n[[auth.client_certs]]\ncn = "ci-*"\nsan = "URI:spiffe://caxton/ci"\nrole = "operator"\nagents = ["build-*"]\n`,
    );
    const me = await get(`${t.url}/api/v1/whoami`, { ca: ca.cert, cert: client.cert, key: client.key });
    expect(me.status, me.body).toBe(200);
    expect(JSON.parse(me.body)).toMatchObject({
      id: 'cert:ci-runner',
      kind: 'cert',
      role: 'operator',
      scope: { agents: ['build-*'] },
    });
    // The role decides: operator may read the configuration, not manage keys.
    expect((await get(`${t.url}/api/v1/config`, { ca: ca.cert, cert: client.cert, key: client.key })).status).toBe(200);
    expect((await get(`${t.url}/api/v1/keys`, { ca: ca.cert, cert: client.cert, key: client.key })).status).toBe(403);
    // An expired or foreign certificate is no principal: 401.
    expect((await get(`${t.url}/api/v1/whoami`, { ca: ca.cert, cert: expired.cert, key: expired.key })).status).toBe(
      401,
    );
    expect((await get(`${t.url}/api/v1/whoami`, { ca: ca.cert, cert: foreign.cert, key: foreign.key })).status).toBe(
      401,
    );
    expect((await get(`${t.url}/api/v1/whoami`, { ca: ca.cert })).status).toBe(401);
  });

  it('client_auth = "optional": without a valid certificate the request is served with no certificate principal', async () => {
    const t = await start(`${TLS}ca = "tls/ca.crt"\nclient_auth = "optional"\n`, [whoami]);
    const ask = async (tls: { cert?: string; key?: string }) =>
      JSON.parse((await get(`${t.url}/api/v1/test/whoami`, { ca: ca.cert, ...tls })).body) as {
        authorized: boolean;
        principal: { id: string } | null;
      };
    expect((await ask({ cert: client.cert, key: client.key })).principal?.id).toBe('cert:ci-runner');
    expect(await ask({ cert: expired.cert, key: expired.key })).toMatchObject({ authorized: false, principal: null });
    expect(await ask({ cert: foreign.cert, key: foreign.key })).toMatchObject({ authorized: false, principal: null });
    expect(await ask({})).toMatchObject({ authorized: false, principal: null });
  });
});

describe('[metrics.tls]', () => {
  it('serves /metrics over HTTPS and reloads its certificate', async () => {
    const t = await start('[metrics.tls]\ncert = "tls/server.crt"\nkey = "tls/server.key"\n');
    expect(t.url).toMatch(/^http:/); // the API port is not affected
    expect(t.server.metricsUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const r = await get(t.server.metricsUrl!, { ca: ca.cert });
    expect(r.status).toBe(200);
    expect(r.body).toContain('caxton_');
    expect(r.serial).toBe(server1.serial);
    // Replaced the way certificate tools do it: new files renamed over the old ones.
    for (const [name, text] of [
      ['server.crt', server2.cert],
      ['server.key', server2.key],
    ] as const) {
      writeFileSync(join(t.dir, 'tls', `.${name}.tmp`), text);
      renameSync(join(t.dir, 'tls', `.${name}.tmp`), join(t.dir, 'tls', name));
    }
    await waitUntil(async () => (await get(t.server.metricsUrl!, { ca: ca.cert })).serial === server2.serial, {
      timeoutMs: 10_000,
      what: 'the new metrics certificate',
    });
    expect(t.server.tls.metrics?.status()).toMatchObject({
      section: 'metrics.tls',
      serial: server2.serial,
      reloads: 1,
    });
  });
});

describe('TLS configuration errors stop the start with a message naming the file', () => {
  async function failure(toml: string, prepare?: (dir: string) => void): Promise<{ message: string; dir: string }> {
    const dir = makeTempDir('caxton-tls-bad-');
    writeTls(dir, server1);
    prepare?.(dir);
    try {
      const t = await startTestServer({ dir, toml });
      servers.push(t);
    } catch (e) {
      expect(e).toBeInstanceOf(Error);
      expect((e as Error).message).not.toMatch(/\n\s+at /); // no stack trace in the message
      return { message: (e as Error).message, dir };
    }
    throw new Error('the server started');
  }

  it('a missing certificate file', async () => {
    const { message, dir } = await failure('[server.tls]\ncert = "tls/nope.crt"\nkey = "tls/server.key"\n');
    expect(message).toContain(join(dir, 'tls', 'nope.crt'));
    expect(message).toMatch(/\[server\.tls\.cert\] the TLS certificate file does not exist/);
  });

  it('a key that does not belong to the certificate', async () => {
    const { message, dir } = await failure(TLS, (d) => writeFileSync(join(d, 'tls', 'server.key'), server2.key));
    expect(message).toContain(join(dir, 'tls', 'server.key'));
    expect(message).toMatch(/does not belong to the certificate/);
  });

  it('a file that is not PEM, and cert and key swapped', async () => {
    const notPem = await failure(TLS, (d) => writeFileSync(join(d, 'tls', 'server.crt'), 'hello'));
    expect(notPem.message).toContain(join(notPem.dir, 'tls', 'server.crt'));
    expect(notPem.message).toMatch(/is not PEM/);
    const swapped = await failure('[server.tls]\ncert = "tls/server.key"\nkey = "tls/server.crt"\n');
    expect(swapped.message).toMatch(/holds no PEM certificate.*it holds a private key/);
  });

  it('a metrics certificate problem names [metrics.tls]', async () => {
    const { message } = await failure('[metrics.tls]\ncert = "tls/server.crt"\nkey = "tls/missing.key"\n');
    expect(message).toMatch(/\[metrics\.tls\.key\] the TLS private key file does not exist/);
  });

  it('client_auth without a CA bundle', async () => {
    const { message } = await failure(`${TLS}client_auth = "require"\n`);
    expect(message).toMatch(/server\.tls\.ca.*needs ca = "PATH"/);
  });
});

describe('isLoopbackHost', () => {
  it('is true only for addresses reachable from this machine alone', () => {
    for (const h of [
      '127.0.0.1',
      '127.1.2.3',
      'localhost',
      'LOCALHOST',
      '::1',
      '[::1]',
      '0:0:0:0:0:0:0:1',
      '::ffff:127.0.0.1',
    ])
      expect([h, isLoopbackHost(h)]).toEqual([h, true]);
    for (const h of [
      '0.0.0.0',
      '::',
      '10.0.0.1',
      '192.168.1.2',
      '::ffff:10.0.0.1',
      'localhost.evil.example',
      'example.com',
      '',
      '128.0.0.1',
      '::2',
    ])
      expect([h, isLoopbackHost(h)]).toEqual([h, false]);
  });
});
