/**
 * web.fetch against a real HTTP server on 127.0.0.1 (allowlist of [tools.http_client], redirects,
 * HTML to Markdown, size and paging), web.search against a stand-in SearXNG and Brave endpoint
 * (and its refusal when unconfigured), todo.write's list, and the audit rows of all three.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serverConfigSchema } from '../../../src/config/index.js';
import type { ToolContext } from '../../../src/tools/index.js';
import { todoTools } from '../../../src/tools/todo/index.js';
import type { ToolAuditRecord } from '../../../src/audit/index.js';
import { htmlToMarkdown, webTools } from '../../../src/tools/web/index.js';
import type { PermissionSet } from '../../../src/tools/permissions/index.js';
import { noteListener } from '../../../src/shared/host-grants.js';

const ctx = (o: Partial<ToolContext> = {}): ToolContext => ({
  agent: 'tester',
  execution_id: 'exec-1',
  deadline: Date.now() + 20_000,
  signal: new AbortController().signal,
  ...o,
});

const PAGE = `<!doctype html><html><head><title>Caxton &amp; friends</title><style>body{color:red}</style><script>var secret = "script text";</script></head>
<body><nav><a href="/home">Home</a></nav><h1>Release notes</h1><p>Version <strong>2.0</strong> adds <em>workspace</em> tools. See <a href="/docs/ws">the docs</a>.</p>
<ul><li>read</li><li>grep<ul><li>nested</li></ul></li></ul><ol><li>one</li><li>two</li></ol>
<pre><code>npm   run build
</code></pre><!-- a comment --><p>Tom &lt;3 &#x263A;</p><img src="/logo.png" alt="Logo"></body></html>`;

let server: ReturnType<typeof createServer>;
let base: string;
const seen: { url: string; headers: IncomingMessage['headers'] }[] = [];
beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    const u = new URL(req.url ?? '/', 'http://x');
    if (u.pathname === '/page') return res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE);
    if (u.pathname === '/text') return res.writeHead(200, { 'content-type': 'text/plain' }).end('x'.repeat(5000));
    if (u.pathname === '/hop') return res.writeHead(302, { location: '/page' }).end();
    if (u.pathname === '/to-internal')
      return res.writeHead(302, { location: `http://127.0.0.2:${u.searchParams.get('port')}/page` }).end();
    if (u.pathname === '/away') return res.writeHead(302, { location: 'http://elsewhere.invalid/' }).end();
    if (u.pathname === '/bin') return res.writeHead(200, { 'content-type': 'image/png' }).end(Buffer.alloc(10));
    if (u.pathname === '/slow') return; // never answers
    if (u.pathname === '/missing') return res.writeHead(404, { 'content-type': 'text/plain' }).end('not here');
    if (u.pathname === '/search') {
      const results = [
        { title: 'Caxton docs', url: 'https://docs.caxton.dev/ws', content: 'The <b>workspace</b> tools' },
        { title: 'Blog', url: 'https://blog.example.com/post', content: 'A post' },
        { title: 'Sub', url: 'https://a.docs.caxton.dev/x', content: 'Sub page' },
      ];
      return res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ query: u.searchParams.get('q'), results }));
    }
    if (u.pathname === '/brave') {
      if (req.headers['x-subscription-token'] !== 'brave-key') return res.writeHead(401).end('no key');
      return res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(
          JSON.stringify({ web: { results: [{ title: 'B', url: 'https://b.example/', description: 'from brave' }] } }),
        );
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => server.close());

function web(
  webCfg: Record<string, unknown>,
  hosts: string[],
  records: ToolAuditRecord[] = [],
  env: NodeJS.ProcessEnv = {},
  permissions?: PermissionSet,
) {
  const config = serverConfigSchema.parse({ web: webCfg, tools: { http_client: { allowed_hosts: hosts } } });
  const [fetchT, searchT] = webTools(
    config.web,
    () => config.tools.http_client?.allowed_hosts ?? [],
    { record: (r) => records.push(r) },
    { env, ...(permissions && { permissions }) },
  );
  return { fetch: fetchT!, search: searchT! };
}

describe('web.fetch', () => {
  it('returns an allowed page as Markdown, with its title and the prompt', async () => {
    const r = await web({}, ['127.0.0.1']).fetch.invoke({ url: `${base}/page`, prompt: 'What is new?' }, ctx());
    expect(r.is_error).toBeUndefined();
    expect(r.content).toContain('Title: Caxton & friends');
    expect(r.content).toContain('Prompt: What is new?');
    expect(r.content).toContain('# Release notes');
    expect(r.content).toContain(`Version **2.0** adds _workspace_ tools. See [the docs](${base}/docs/ws).`);
    expect(r.content).toContain('- read\n- grep\n  - nested');
    expect(r.content).toContain('1. one\n2. two');
    expect(r.content).toContain('```\nnpm   run build\n```');
    expect(r.content).toContain('Tom <3 ☺');
    expect(r.content).toContain(`![Logo](${base}/logo.png)`);
    expect(r.content).not.toContain('script text');
    expect(r.content).not.toContain('color:red');
  });

  it('refuses hosts outside [tools.http_client] allowed_hosts, naming the setting, and with none allowed', async () => {
    const r = await web({}, ['docs.example.com']).fetch.invoke({ url: `${base}/page`, prompt: 'x' }, ctx());
    expect(r.is_error).toBe(true);
    expect(r.content).toContain('[tools.http_client] allowed_hosts');
    const none = await web({}, []).fetch.invoke({ url: `${base}/page`, prompt: 'x' }, ctx());
    expect(none.content).toContain('[tools.http_client] allowed_hosts');
    expect((await web({}, ['*']).fetch.invoke({ url: 'file:///etc/passwd', prompt: 'x' }, ctx())).content).toContain(
      'only http and https',
    );
  });

  it('follows redirects only to allowed hosts', async () => {
    const ok = await web({}, ['127.0.0.1']).fetch.invoke({ url: `${base}/hop`, prompt: 'x' }, ctx());
    expect(ok.content).toContain(`URL: ${base}/page`);
    const away = await web({}, ['127.0.0.1']).fetch.invoke({ url: `${base}/away`, prompt: 'x' }, ctx());
    expect(away.is_error).toBe(true);
    expect(away.content).toContain('"elsewhere.invalid" is not in [tools.http_client] allowed_hosts');
  });

  it('judges the address connected to, not the name: internal addresses only by address, own listeners only by address and port', async () => {
    const port = (server.address() as AddressInfo).port;
    // "localhost" is a granted name that resolves to loopback: refused, whatever the port.
    const named = await web({}, ['localhost']).fetch.invoke(
      { url: `http://localhost:${port}/page`, prompt: 'x' },
      ctx(),
    );
    expect(named.is_error).toBe(true);
    expect(named.content).toMatch(/is an internal address .*naming the address itself/);
    // "*" grants public names, never an internal address, in any spelling.
    for (const url of [
      `${base}/page`,
      `http://[::ffff:127.0.0.1]:${port}/page`,
      `http://[::ffff:7f00:1]:${port}/page`,
    ]) {
      const r = await web({}, ['*']).fetch.invoke({ url, prompt: 'x' }, ctx());
      expect(r.is_error, url).toBe(true);
      expect(r.content, url).toContain('is an internal address');
    }
    // A port on the entry: that port only.
    const otherPort = await web({}, [`127.0.0.1:${port + 1}`]).fetch.invoke(
      { url: `${base}/page`, prompt: 'x' },
      ctx(),
    );
    expect(otherPort.content).toContain(`(port ${port}) is not in [tools.http_client] allowed_hosts`);
    expect(
      (await web({}, [`127.0.0.1:${port}`]).fetch.invoke({ url: `${base}/page`, prompt: 'x' }, ctx())).is_error,
    ).toBe(undefined);
    // This process listening on the port (as a Caxton server does): the address alone no longer reaches it.
    const forget = noteListener({ host: '127.0.0.1', port });
    try {
      const own = await web({}, ['127.0.0.1']).fetch.invoke({ url: `${base}/page`, prompt: 'x' }, ctx());
      expect(own.is_error).toBe(true);
      expect(own.content).toContain(`127.0.0.1:${port} is this Caxton server's own listener`);
      const wild = noteListener({ host: '0.0.0.0', port });
      wild();
      const exact = await web({}, [`127.0.0.1:${port}`]).fetch.invoke({ url: `${base}/page`, prompt: 'x' }, ctx());
      expect(exact.is_error).toBeUndefined();
    } finally {
      forget();
    }
  });

  it('a redirect is judged as the first request: "*" follows it to no internal address', async () => {
    const port = (server.address() as AddressInfo).port;
    const r = await web({}, ['127.0.0.1', '*']).fetch.invoke(
      { url: `${base}/to-internal?port=${port}`, prompt: 'x' },
      ctx(),
    );
    expect(r.is_error).toBe(true);
    expect(r.content).toContain(`http://127.0.0.2:${port}/page refused`);
    expect(r.content).toContain('127.0.0.2 is an internal address');
  });

  it('pages long text with offset, cuts at max_bytes, refuses binary, reports HTTP errors', async () => {
    const w = web({ fetch: { max_chars: 1000, max_bytes: 4096 } }, ['127.0.0.1']);
    const first = await w.fetch.invoke({ url: `${base}/text`, prompt: 'x' }, ctx());
    expect(first.content).toContain('(The response was cut at 4096 bytes.)');
    expect(first.content).toContain('Call again with offset=1000');
    const next = await w.fetch.invoke({ url: `${base}/text`, prompt: 'x', offset: 4000 }, ctx());
    expect(next.content).not.toContain('offset=');
    expect((await w.fetch.invoke({ url: `${base}/bin`, prompt: 'x' }, ctx())).content).toContain('image/png, not text');
    const missing = await w.fetch.invoke({ url: `${base}/missing`, prompt: 'x' }, ctx());
    expect(missing.is_error).toBe(true);
    expect(missing.content).toContain('Status: 404');
  });

  it('gives up at [web.fetch] timeout on a server that never answers', async () => {
    const records: ToolAuditRecord[] = [];
    const t0 = Date.now();
    const r = await web({ fetch: { timeout: '300ms' } }, ['127.0.0.1'], records).fetch.invoke(
      { url: `${base}/slow`, prompt: 'x' },
      ctx(),
    );
    expect(r.is_error).toBe(true);
    expect(r.content).toContain('no complete answer within 300 ms');
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(records[0]!.outcome).toBe('timeout');
  });
});

describe('web.search', () => {
  it('is refused naming [web.search] when no backend is configured', async () => {
    const r = await web({}, []).search.invoke({ query: 'caxton' }, ctx());
    expect(r.is_error).toBe(true);
    expect(r.content).toContain('[web.search]');
  });

  it('queries a SearXNG-style endpoint and filters by allowed and blocked domains', async () => {
    const w = web({ search: { kind: 'searxng', url: `${base}/search` } }, []);
    const all = await w.search.invoke({ query: 'caxton workspace' }, ctx());
    expect(all.content).toBe(
      'Web search results for query: "caxton workspace"\n\n1. [Caxton docs](https://docs.caxton.dev/ws)\n   The workspace tools\n2. [Blog](https://blog.example.com/post)\n   A post\n3. [Sub](https://a.docs.caxton.dev/x)\n   Sub page',
    );
    expect(seen.at(-1)!.url).toBe('/search?q=caxton+workspace&format=json');
    const only = await w.search.invoke(
      { query: 'caxton', allowed_domains: ['caxton.dev'], blocked_domains: ['a.docs.caxton.dev'] },
      ctx(),
    );
    expect(only.content).toContain('docs.caxton.dev/ws');
    expect(only.content).not.toContain('blog.example.com');
    expect(only.content).not.toContain('a.docs.caxton.dev');
  });

  it('queries a Brave-style endpoint with the key from api_key_env', async () => {
    const w = web({ search: { kind: 'brave', url: `${base}/brave`, api_key_env: 'BRAVE_KEY' } }, [], [], {
      BRAVE_KEY: 'brave-key',
    });
    expect((await w.search.invoke({ query: 'caxton' }, ctx())).content).toContain(
      '[B](https://b.example/)\n   from brave',
    );
    const unset = web({ search: { kind: 'brave', url: `${base}/brave`, api_key_env: 'BRAVE_KEY' } }, [], [], {});
    expect((await unset.search.invoke({ query: 'caxton' }, ctx())).content).toContain('BRAVE_KEY');
    expect(
      serverConfigSchema.safeParse({ web: { search: { kind: 'brave', url: `${base}/brave` } } }).error?.issues[0]?.path,
    ).toEqual(['web', 'search', 'api_key_env']);
  });
});

describe('todo.write and the audit', () => {
  it('keeps the list and returns it; refuses a bad status', async () => {
    const records: ToolAuditRecord[] = [];
    const [todo] = todoTools({ record: (r) => records.push(r) });
    const r = await todo!.invoke(
      {
        todos: [
          { content: 'Read the code', status: 'completed', activeForm: 'Reading the code' },
          { content: 'Run the tests', status: 'in_progress', activeForm: 'Running the tests' },
          { content: 'Write the docs', status: 'pending', activeForm: 'Writing the docs' },
        ],
      },
      ctx(),
    );
    expect(r.content).toContain('Todos have been modified successfully');
    expect(r.content).toContain('[x] Read the code\n[~] Running the tests\n[ ] Write the docs');
    const bad = await todo!.invoke({ todos: [{ content: 'x', status: 'done', activeForm: 'y' }] }, ctx());
    expect(bad.is_error).toBe(true);
    expect(records.map((x) => [x.server, x.tool, x.outcome])).toEqual([
      ['todo', 'todo.write', 'ok'],
      ['todo', 'todo.write', 'invalid_input'],
    ]);
  });

  it('web calls are audited under server "web", refusals as denied', async () => {
    const records: ToolAuditRecord[] = [];
    const w = web({}, ['127.0.0.1'], records);
    await w.fetch.invoke({ url: `${base}/page`, prompt: 'x' }, ctx());
    await w.fetch.invoke({ url: 'http://example.com/', prompt: 'x' }, ctx());
    await w.search.invoke({ query: 'x y' }, ctx());
    expect(records.map((x) => [x.server, x.tool, x.outcome])).toEqual([
      ['web', 'web.fetch', 'ok'],
      ['web', 'web.fetch', 'denied'],
      ['web', 'web.search', 'denied'],
    ]);
  });

  it('a call a WebFetch(domain:...) deny rule refuses is audited as denied, the rule named', async () => {
    const records: ToolAuditRecord[] = [];
    const deny = { allow: [], ask: [], deny: [{ rule: 'WebFetch(domain:127.0.0.1)', source: 'caxton.toml' }] };
    const r = await web({}, ['127.0.0.1'], records, {}, deny).fetch.invoke({ url: `${base}/page`, prompt: 'x' }, ctx());
    expect(r).toEqual({
      content:
        'Permission to use WebFetch has been denied: the rule "WebFetch(domain:127.0.0.1)" (caxton.toml) refuses this call.',
      is_error: true,
      refused: true,
    });
    expect(records.map((x) => [x.server, x.tool, x.outcome, x.error])).toEqual([
      ['web', 'web.fetch', 'denied', r.content],
    ]);
  });
});

describe('htmlToMarkdown', () => {
  it('stays linear on hostile input', () => {
    const hostile =
      '<!--'.repeat(50_000) + '<a href='.repeat(50_000) + ' \t'.repeat(100_000) + '<pre>' + ' '.repeat(200_000) + 'x';
    const t0 = Date.now();
    htmlToMarkdown(hostile);
    htmlToMarkdown('<div>'.repeat(100_000) + 'deep' + '</div>'.repeat(100_000));
    expect(Date.now() - t0).toBeLessThan(3000);
  });
});
