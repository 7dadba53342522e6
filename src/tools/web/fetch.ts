/**
 * web.fetch: Claude Code's WebFetch. A GET of an http(s) URL whose host the operator allows for
 * the `http_client` tool server (`[tools.http_client] allowed_hosts`, judged as every tool
 * server's HTTP is: the name against the entries, then the address connected to; see
 * src/tools/egress.ts), redirects followed only to allowed hosts, bounded in time and bytes; HTML comes back as Markdown, other text as it is. Claude Code runs `prompt`
 * on the page with a small model; here the page itself is returned with the prompt beside it,
 * and the calling model answers it.
 */
import type { WebConfig } from '../../config/index.js';
import { toolError, type AuditedResult, type AuditedTool } from '../audited.js';
import { hostGranted, ownListeners, parseHostGrants, portOfUrl } from '../../shared/host-grants.js';
import { loadUndici } from '../../shared/undici.js';
import { egressAgent, egressRefusalOf, literalRefusal } from '../egress.js';
import { htmlTitle, htmlToMarkdown } from './html.js';

export const FETCH_NOT_GRANTED =
  'web.fetch reaches no host: list the hosts it may fetch from in [tools.http_client] allowed_hosts = ["docs.example.com", "*.example.org"] in caxton.toml (the same allowlist as the http_client tool server)';
const MAX_REDIRECTS = 5;

/** Reads at most `max` bytes of `body`; `cut` when there was more. */
export async function readCapped(res: Response, max: number): Promise<{ bytes: Uint8Array; cut: boolean }> {
  const chunks: Uint8Array[] = [];
  let n = 0;
  if (!res.body) return { bytes: new Uint8Array(0), cut: false };
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return { bytes: Buffer.concat(chunks), cut: false };
    if (n + value.length > max) {
      chunks.push(value.subarray(0, max - n));
      await reader.cancel().catch(() => undefined);
      return { bytes: Buffer.concat(chunks), cut: true };
    }
    chunks.push(value);
    n += value.length;
  }
}

function isText(type: string): boolean {
  return type === '' || type.startsWith('text/') || /\b(json|xml|javascript|yaml|toml|csv)\b/.test(type);
}

export function fetchTool(cfg: WebConfig['fetch'], allowedHosts: () => readonly string[]): AuditedTool {
  return {
    name: 'web.fetch',
    idempotent: true,
    description: `Fetches a web page (GET) and returns its content as Markdown (HTML converted; other text as is), at most ${cfg.max_chars} characters per call: read on with offset. Only hosts the operator allows can be reached. Answer the prompt from the returned content.`,
    input_schema: {
      type: 'object',
      properties: {
        url: { type: 'string', format: 'uri', description: 'The URL to fetch content from' },
        prompt: { type: 'string', description: 'The prompt to run on the fetched content' },
        offset: {
          type: 'number',
          description: 'Character position in the page text to start reading from (the previous result says it)',
        },
      },
      required: ['url', 'prompt'],
    },
    async invoke(args, ctx): Promise<AuditedResult> {
      const { url: rawUrl, prompt, offset: rawOffset } = args;
      if (typeof rawUrl !== 'string' || rawUrl === '') return toolError('"url" must be a URL string', 'invalid_input');
      if (prompt !== undefined && typeof prompt !== 'string')
        return toolError('"prompt" must be a string', 'invalid_input');
      const offset = rawOffset === undefined ? 0 : rawOffset;
      if (typeof offset !== 'number' || !Number.isInteger(offset) || offset < 0)
        return toolError('"offset" must be a whole number ≥ 0', 'invalid_input');
      let url: URL;
      try {
        url = new URL(rawUrl);
      } catch {
        return toolError(`"${rawUrl}" is not a valid URL`, 'invalid_input');
      }
      const hosts = allowedHosts();
      if (hosts.length === 0) return toolError(FETCH_NOT_GRANTED, 'denied');
      const grants = parseHostGrants(hosts);
      const agents: { close(): Promise<void> }[] = [];
      const signal = AbortSignal.any([
        ctx.signal,
        AbortSignal.timeout(Math.max(1, Math.min(cfg.timeout, ctx.deadline - Date.now() - 50))),
      ]);
      let res: Response | undefined;
      try {
        for (let hop = 0; ; hop++) {
          if (url.protocol !== 'http:' && url.protocol !== 'https:')
            return toolError(`${url.href} refused: only http and https URLs are fetched`, 'denied');
          const port = portOfUrl(url);
          if (!hostGranted(url.hostname, port, grants))
            return toolError(
              `${url.href} refused: host "${url.hostname}"${url.port !== '' ? ` (port ${port})` : ''} is not in [tools.http_client] allowed_hosts in caxton.toml (allowed: ${hosts.join(', ')})`,
              'denied',
            );
          const own = ownListeners();
          const literal = literalRefusal(url.hostname, port, [grants], own);
          if (literal !== undefined) return toolError(`${url.href} refused: ${literal}`, 'denied');
          const undici = await loadUndici();
          const dispatcher = egressAgent(undici, port, [grants], own, cfg.timeout);
          // Closed once the page is read: the agent holds only this hop's connection.
          agents.push(dispatcher);
          res = (await undici.fetch(url, {
            redirect: 'manual',
            signal,
            dispatcher,
            headers: {
              accept: 'text/html, text/markdown;q=0.9, text/plain;q=0.8, */*;q=0.1',
              'user-agent': 'Caxton web.fetch',
            },
          })) as unknown as Response;
          const loc = res.headers.get('location');
          if (res.status >= 300 && res.status < 400 && loc) {
            await res.body?.cancel().catch(() => undefined);
            if (hop >= MAX_REDIRECTS) return toolError(`${rawUrl}: more than ${MAX_REDIRECTS} redirects`, 'http_error');
            url = new URL(loc, url);
            continue;
          }
          break;
        }
        const type = (res.headers.get('content-type') ?? '').toLowerCase().split(';')[0]!.trim();
        if (!isText(type)) {
          await res.body?.cancel().catch(() => undefined);
          return toolError(
            `${url.href} returned ${type}, not text: web.fetch reads text and HTML pages`,
            'invalid_input',
          );
        }
        const { bytes, cut } = await readCapped(res, cfg.max_bytes);
        const body = new TextDecoder('utf-8').decode(bytes);
        const html = type.includes('html') || (type === '' && /^\s*<(!doctype html|html)/i.test(body.slice(0, 1000)));
        const title = html ? htmlTitle(body) : undefined;
        const text = html ? htmlToMarkdown(body, url.href) : body;
        const part = text.slice(offset, offset + cfg.max_chars);
        const next = offset + part.length < text.length ? offset + part.length : undefined;
        const head = [
          `URL: ${url.href}`,
          `Status: ${res.status}`,
          ...(title ? [`Title: ${title}`] : []),
          ...(prompt ? [`Prompt: ${prompt}`] : []),
        ].join('\n');
        const notes = [
          ...(cut ? [`(The response was cut at ${cfg.max_bytes} bytes.)`] : []),
          ...(next !== undefined
            ? [
                `(The page has ${text.length} characters; this is ${offset}–${next}. Call again with offset=${next} to read on.)`,
              ]
            : []),
        ];
        const content = `${head}\n\n${part}${notes.length > 0 ? `\n\n${notes.join('\n')}` : ''}`;
        if (res.status >= 400) return toolError(content, 'http_error');
        return { content };
      } catch (e) {
        if (ctx.signal.aborted) throw e;
        const refused = egressRefusalOf(e);
        if (refused !== undefined) return toolError(`${url.href} refused: ${refused.message}`, 'denied');
        const err = e as Error & { cause?: { message?: string } };
        if (err.name === 'TimeoutError' || err.name === 'AbortError')
          return toolError(`${url.href}: no complete answer within ${cfg.timeout} ms`, 'timeout');
        return toolError(`${url.href} could not be fetched: ${err.cause?.message ?? err.message}`, 'http_error');
      } finally {
        for (const a of agents) void a.close().catch(() => undefined);
      }
    },
  };
}
