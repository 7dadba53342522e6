/**
 * Built-in `http_client`: real HTTP to a real server on 127.0.0.1 (port 0) through the sandbox's
 * HTTP host function. The server runs in a worker thread because the sandbox's HTTP call blocks
 * the calling thread until the answer arrives.
 */
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBuiltin, type Loaded } from './helpers.js';

const SERVER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const http = require('node:http');
let hits = 0;
const s = http.createServer((req, res) => {
  hits++;
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    if (req.url === '/data.csv') { res.writeHead(200, { 'content-type': 'text/csv' }); return res.end('month,sales\\nJan,10\\nFeb,"1,5"\\n'); }
    if (req.url === '/missing') { res.writeHead(404, { 'content-type': 'text/plain' }); return res.end('no such thing'); }
    if (req.url === '/redirect') { res.writeHead(302, { location: 'http://evil.example.com/' }); return res.end(); }
    if (req.url === '/hang') return;
    res.writeHead(200, { 'content-type': 'application/json', 'x-test': 'yes' });
    res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body }));
  });
});
s.listen(0, '127.0.0.1', () => parentPort.postMessage({ port: s.address().port }));
parentPort.on('message', (m) => { if (m === 'hits') parentPort.postMessage({ hits }); if (m === 'close') { s.closeAllConnections(); s.close(); } });
`;

let worker: Worker;
let base: string;
let http: Loaded;

beforeAll(async () => {
  worker = new Worker(SERVER_SOURCE, { eval: true });
  const { port } = await new Promise<{ port: number }>((resolve) => worker.once('message', resolve));
  base = `http://127.0.0.1:${port}`;
  http = loadBuiltin('http_client', { allowed_hosts: ['127.0.0.1'] });
});
afterAll(async () => {
  worker.postMessage('close');
  await worker.terminate();
});

const hits = async () => {
  worker.postMessage('hits');
  return (await new Promise<{ hits: number }>((resolve) => worker.once('message', resolve))).hits;
};

interface Answer {
  status: number;
  ok: boolean;
  headers: Record<string, string>;
  body: string;
}
interface Echo {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string;
}

describe('http_client', () => {
  it('declares request and get, asks for every host and needs the operator to narrow it', () => {
    expect(http.server.tools.map((t) => t.name)).toEqual(['http_client.request', 'http_client.get']);
    expect(http.server.manifest.permissions.allowed_hosts).toEqual(['*']);
    expect(http.server.warnings).toEqual([]);
  });

  it('GETs from an allowed host: status, headers and body text', async () => {
    const r = await http.json<Answer>('get', { url: `${base}/data.csv` });
    expect(r).toMatchObject({ status: 200, ok: true, body: 'month,sales\nJan,10\nFeb,"1,5"\n' });
    expect(r.headers['content-type']).toBe('text/csv');
    const echo = await http.json<Answer>('request', { url: `${base}/echo?q=1`, headers: { 'X-Api-Key': 'k1' } });
    expect(JSON.parse(echo.body)).toMatchObject({ method: 'GET', url: '/echo?q=1', headers: { 'x-api-key': 'k1' } });
    expect(echo.headers['x-test']).toBe('yes');
  });

  it('POSTs text and JSON bodies, PUTs, DELETEs and HEADs', async () => {
    const text = await http.json<Answer>('request', {
      url: `${base}/t`,
      method: 'POST',
      body: 'héllo',
      headers: { 'content-type': 'text/plain' },
    });
    expect(JSON.parse(text.body) as Echo).toMatchObject({
      method: 'POST',
      body: 'héllo',
      headers: { 'content-type': 'text/plain' },
    });
    const json = await http.json<Answer>('request', {
      url: `${base}/j`,
      method: 'PUT',
      json: { a: [1, 'two', null], b: true },
    });
    const echo = JSON.parse(json.body) as Echo;
    expect(echo).toMatchObject({ method: 'PUT', headers: { 'content-type': 'application/json' } });
    expect(JSON.parse(echo.body)).toEqual({ a: [1, 'two', null], b: true });
    expect(JSON.parse((await http.json<Answer>('request', { url: `${base}/d`, method: 'DELETE' })).body)).toMatchObject(
      { method: 'DELETE' },
    );
    expect(await http.json<Answer>('request', { url: `${base}/h`, method: 'HEAD' })).toMatchObject({
      status: 200,
      body: '',
    });
  });

  it('returns non-2xx answers and redirects as results (ok false), without following', async () => {
    expect(await http.json<Answer>('get', { url: `${base}/missing` })).toMatchObject({
      status: 404,
      ok: false,
      body: 'no such thing',
    });
    const before = await hits();
    const r = await http.json<Answer>('get', { url: `${base}/redirect` });
    expect(r).toMatchObject({ status: 302, ok: false });
    expect(r.headers.location).toBe('http://evil.example.com/');
    expect(await hits()).toBe(before + 1);
  });

  it('a host outside the operator allowlist fails clearly, without any request; the server keeps answering', async () => {
    const before = await hits();
    const r = await http.call('get', { url: 'http://evil.example.com/steal' });
    expect(r.is_error).toBe(true);
    expect(r.content).toBe(
      'tool "http_client.get" failed (denied): HTTP request to host "evil.example.com" refused: the host is not in the allowlist; allow it with [tools.SERVER] allowed_hosts = ["evil.example.com"] in caxton.toml (SERVER: the tool name before the dot; the tool manifest must list the host too) and restart the server',
    );
    const local = await http.call('request', {
      url: base.replace('127.0.0.1', 'localhost') + '/x',
      method: 'POST',
      body: 'x',
    });
    expect(local.content).toMatch(
      /\(denied\): HTTP request to host "localhost" refused: the host is not in the allowlist/,
    );
    expect(await hits()).toBe(before);
    expect(await http.json<Answer>('get', { url: `${base}/after` })).toMatchObject({ status: 200 });
    expect(http.audit.records.slice(-3).map((a) => a.outcome)).toEqual(['denied', 'denied', 'ok']);
  });

  it('without an operator grant every host is refused', async () => {
    const ungranted = loadBuiltin('http_client');
    expect(ungranted.server.warnings.map((w) => w.message).join()).toMatch(
      /asks for HTTP to \*, which the operator has not granted/,
    );
    expect((await ungranted.call('get', { url: `${base}/x` })).content).toMatch(
      /\(denied\): HTTP request to host "127\.0\.0\.1" refused: HTTP is not granted to this tool server/,
    );
  });

  it('malformed arguments get a clear error naming the field', async () => {
    const err = async (tool: string, args: Record<string, unknown>) => {
      const r = await http.call(tool, args);
      expect(r.is_error).toBe(true);
      return r.content;
    };
    expect(await err('get', {})).toMatch(/\(invalid_input\): .*must have required property 'url'/);
    expect(await err('get', { url: 42 })).toMatch(/\(invalid_input\): .*\/url must be string/);
    expect(await err('request', { url: `${base}/`, method: 'FETCH' })).toMatch(
      /\(invalid_input\): .*\/method must be equal to one of the allowed values \("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"\)/,
    );
    expect(await err('request', { url: `${base}/`, headers: { a: 1 } })).toMatch(
      /\(invalid_input\): .*\/headers\/a must be string/,
    );
    expect(await err('request', { url: `${base}/`, bogus: 1 })).toMatch(
      /\(invalid_input\): .*\(root\) must NOT have additional properties: "bogus"/,
    );
    expect(await err('get', { url: 'ftp://127.0.0.1/x' })).toBe(
      'tool "http_client.get" failed (error): "url" must be an absolute http:// or https:// URL, not "ftp://127.0.0.1/x"',
    );
    expect(await err('get', { url: '127.0.0.1/x' })).toMatch(
      /\(error\): "url" must be an absolute http:\/\/ or https:\/\/ URL/,
    );
    expect(await err('get', { url: 'http:///x' })).toMatch(/\(error\): "url" has no host name/);
    expect(await err('get', { url: `${base}/a b` })).toMatch(/\(error\): "url" contains a space/);
    expect(await err('request', { url: `${base}/`, headers: { 'bad name': 'x' } })).toMatch(
      /\(error\): "headers": "bad name" is not a valid header name/,
    );
    expect(await err('request', { url: `${base}/`, headers: { 'x-a': 'a\r\nx-b: b' } })).toMatch(
      /\(error\): "headers\.x-a" must not contain line breaks/,
    );
    expect(await err('request', { url: `${base}/`, body: 'x' })).toMatch(
      /\(error\): "body" and "json" cannot be sent with GET/,
    );
    expect(await err('request', { url: `${base}/`, method: 'POST', body: 'x', json: {} })).toMatch(
      /\(error\): give either "body" \(text\) or "json"/,
    );
  });

  it('feeds csv_parser and chart_generator: fetched CSV becomes an SVG chart', async () => {
    const fetched = await http.json<Answer>('get', { url: `${base}/data.csv` });
    const parsed = await loadBuiltin('csv_parser').json<{ rows: Record<string, string>[] }>('parse', {
      text: fetched.body,
    });
    expect(parsed.rows).toEqual([
      { month: 'Jan', sales: '10' },
      { month: 'Feb', sales: '1,5' },
    ]);
    const chart = await loadBuiltin('chart_generator').call('render', {
      type: 'bar',
      rows: parsed.rows.slice(0, 1),
      label_key: 'month',
    });
    expect(chart.is_error).toBeUndefined();
    expect(chart.content).toMatch(/^<svg [^>]*>.*data-label="Jan" data-value="10".*<\/svg>$/s);
  });

  it('a request that outlives the deadline times out; the next one works', async () => {
    const short = loadBuiltin('http_client', { allowed_hosts: ['127.0.0.1'], limits: { timeout_ms: 300 } });
    const t0 = Date.now();
    expect((await short.call('get', { url: `${base}/hang` })).content).toMatch(
      /\(timeout\): HTTP GET .*\/hang timed out/,
    );
    expect(Date.now() - t0).toBeLessThan(3_000);
    // Not wedged by the timeout: a request after it is answered. Its own 300 ms can be spent waiting
    // for a core on a loaded machine, so a slow try is tried again.
    let next = await short.call('get', { url: `${base}/ok` });
    for (let i = 0; i < 3 && next.is_error && /\(timeout\)/.test(next.content); i++)
      next = await short.call('get', { url: `${base}/ok` });
    expect(next.is_error, next.content).toBeFalsy();
    expect(JSON.parse(next.content)).toMatchObject({ status: 200 });
  });
});
