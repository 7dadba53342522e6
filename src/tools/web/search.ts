/**
 * web.search: Claude Code's WebSearch over the search backend the operator configures in
 * `[web.search]`: a SearXNG instance (JSON API) or the Brave Search API. Results are filtered by
 * the call's allowed_domains / blocked_domains and returned as a Markdown list.
 */
import type { WebConfig } from '../../config/index.js';
import { toolError, type AuditedResult, type AuditedTool } from '../audited.js';
import { readCapped } from './fetch.js';

export const SEARCH_NOT_CONFIGURED =
  'web.search has no search backend: configure one in caxton.toml, e.g. [web.search] kind = "searxng" and url = "http://127.0.0.1:8888/search" (or kind = "brave", url = "https://api.search.brave.com/res/v1/web/search", api_key_env = "BRAVE_API_KEY")';
const MAX_RESPONSE = 1024 * 1024;

interface Hit {
  title: string;
  url: string;
  snippet: string;
}

function domainList(v: unknown, key: string): string[] | string {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.length > 100 || v.some((d) => typeof d !== 'string' || d === '' || d.length > 253))
    return `"${key}" must be a list of at most 100 domain names`;
  return (v as string[]).map((d) =>
    d
      .toLowerCase()
      .replace(/^\*?\./, '')
      .replace(/\.$/, ''),
  );
}

function inDomains(host: string, domains: readonly string[]): boolean {
  const h = host.toLowerCase();
  return domains.some((d) => h === d || h.endsWith(`.${d}`));
}

function hitsOf(kind: 'searxng' | 'brave', body: unknown): Hit[] {
  const str = (v: unknown) => (typeof v === 'string' ? v : '');
  const list =
    kind === 'searxng'
      ? (body as { results?: unknown }).results
      : ((body as { web?: { results?: unknown } }).web?.results ?? []);
  if (!Array.isArray(list)) throw new Error('the answer has no result list');
  return list
    .filter((r): r is Record<string, unknown> => typeof r === 'object' && r !== null)
    .map((r) => ({
      title: str(r.title).slice(0, 500),
      url: str(r.url).slice(0, 2000),
      snippet: str(kind === 'searxng' ? r.content : r.description)
        .replace(/<[^>]{0,200}>/g, '')
        .slice(0, 1000),
    }))
    .filter((h) => /^https?:\/\//.test(h.url));
}

export function searchTool(cfg: WebConfig['search'], env: NodeJS.ProcessEnv = process.env): AuditedTool {
  return {
    name: 'web.search',
    idempotent: true,
    description:
      'Searches the web and returns results (title, URL, snippet) as a Markdown list. allowed_domains keeps only results from those domains; blocked_domains drops results from them.',
    input_schema: {
      type: 'object',
      properties: {
        query: { type: 'string', minLength: 2, description: 'The search query to use' },
        allowed_domains: {
          type: 'array',
          items: { type: 'string' },
          description: 'Only include search results from these domains',
        },
        blocked_domains: {
          type: 'array',
          items: { type: 'string' },
          description: 'Never include search results from these domains',
        },
      },
      required: ['query'],
    },
    async invoke(args, ctx): Promise<AuditedResult> {
      if (!cfg) return toolError(SEARCH_NOT_CONFIGURED, 'denied');
      const query = args.query;
      if (typeof query !== 'string' || query.trim().length < 2 || query.length > 1000)
        return toolError('"query" must be a string of 2 to 1000 characters', 'invalid_input');
      const allowed = domainList(args.allowed_domains, 'allowed_domains');
      const blocked = domainList(args.blocked_domains, 'blocked_domains');
      if (typeof allowed === 'string') return toolError(allowed, 'invalid_input');
      if (typeof blocked === 'string') return toolError(blocked, 'invalid_input');
      const url = new URL(cfg.url);
      url.searchParams.set('q', query);
      const headers: Record<string, string> = { accept: 'application/json' };
      if (cfg.kind === 'searxng') url.searchParams.set('format', 'json');
      else url.searchParams.set('count', String(Math.min(20, cfg.max_results * 2)));
      if (cfg.api_key_env !== undefined) {
        const key = env[cfg.api_key_env];
        if (!key)
          return toolError(
            `web.search: the environment variable ${cfg.api_key_env} ([web.search] api_key_env) is not set`,
            'denied',
          );
        if (cfg.kind === 'brave') headers['x-subscription-token'] = key;
        else headers.authorization = `Bearer ${key}`;
      }
      const signal = AbortSignal.any([
        ctx.signal,
        AbortSignal.timeout(Math.max(1, Math.min(cfg.timeout, ctx.deadline - Date.now() - 50))),
      ]);
      let hits: Hit[];
      try {
        const res = await fetch(url, { headers, signal, redirect: 'error' });
        const { bytes, cut } = await readCapped(res, MAX_RESPONSE);
        if (!res.ok)
          return toolError(
            `the search backend (${cfg.kind}, [web.search] url) answered HTTP ${res.status}: ${new TextDecoder().decode(bytes.subarray(0, 300))}`,
            'http_error',
          );
        if (cut)
          return toolError(`the search backend's answer is larger than ${MAX_RESPONSE} bytes`, 'output_too_large');
        hits = hitsOf(cfg.kind, JSON.parse(new TextDecoder().decode(bytes)));
      } catch (e) {
        if (ctx.signal.aborted) throw e;
        const err = e as Error & { cause?: { message?: string } };
        if (err.name === 'TimeoutError')
          return toolError(`the search backend did not answer within ${cfg.timeout} ms`, 'timeout');
        return toolError(
          `the search backend (${cfg.kind}, [web.search] url) could not be used: ${err.cause?.message ?? err.message}`,
          'http_error',
        );
      }
      const kept = hits
        .filter((h) => {
          const host = new URL(h.url).hostname;
          return (allowed.length === 0 || inDomains(host, allowed)) && !inDomains(host, blocked);
        })
        .slice(0, cfg.max_results);
      if (kept.length === 0) return { content: `Web search results for query: "${query}"\n\nNo results found.` };
      const lines = kept.map(
        (h, i) =>
          `${i + 1}. [${h.title || h.url}](${h.url})${h.snippet ? `\n   ${h.snippet.replace(/\s+/g, ' ').trim()}` : ''}`,
      );
      return { content: `Web search results for query: "${query}"\n\n${lines.join('\n')}` };
    },
  };
}
