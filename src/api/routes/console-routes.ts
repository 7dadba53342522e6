/**
 * The web console (docs/console.md): the files `npm run build` wrote to dist/console,
 * served at /ui. They hold no data (every figure comes from the API with the caller's own
 * credentials), so the routes are public (src/auth/route-policies.ts); /ui/* answers index.html for the client-side routes.
 * The files are read once, by the first request under /ui, with the .br and .gz copies the build
 * wrote beside them: about 90 files and their hashes, which a start does not wait for. Without a
 * build, /ui answers a 503 page saying how to make one.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** dist/console of this package: src/api/routes and dist/api/routes both sit three levels below it. */
export const DEFAULT_CONSOLE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../dist/console');

/** The mount point; the build writes asset URLs under it (scripts/build-console.mjs). */
export const CONSOLE_BASE = '/ui';

/**
 * No inline script or style, no other origin, never framed. connect-src 'self' covers the API
 * and its event streams on the same port.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
};

interface ConsoleFile {
  type: string;
  body: Buffer;
  br?: Buffer;
  gzip?: Buffer;
  etag: string;
  /** A content-hashed name (assets/NAME-HASH.ext): cached for a year. */
  immutable: boolean;
}

export interface ConsoleRoutesOptions {
  /** The built console (default: dist/console of this package). */
  dir?: string;
}

/** Every file under `dir` by its URL path relative to it ("index.html", "assets/main-AB12.js"), with its compressed copies. */
export function readConsoleFiles(dir: string): Map<string, ConsoleFile> {
  const files = new Map<string, ConsoleFile>();
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) {
        walk(p);
        continue;
      }
      const ext = extname(name);
      if (ext === '.br' || ext === '.gz' || ext === '.map') continue;
      const type = TYPES[ext];
      if (type === undefined) continue; // only the kinds of file the build writes
      const body = readFileSync(p);
      const rel = relative(dir, p).split(sep).join('/');
      files.set(rel, {
        type,
        body,
        ...(existsSync(`${p}.br`) && { br: readFileSync(`${p}.br`) }),
        ...(existsSync(`${p}.gz`) && { gzip: readFileSync(`${p}.gz`) }),
        etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
        immutable: rel.startsWith('assets/') && /-[A-Za-z0-9]{8,}\.[a-z]+$/.test(name),
      });
    }
  };
  walk(dir);
  return files;
}

const NOT_BUILT = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Caxton console not built</title></head>
<body><main><h1>The web console is not built</h1>
<p>This Caxton was started from a checkout without the console's files (dist/console).
Run <code>npm run build</code>, then restart <code>caxton serve</code>.</p>
<p>The REST API works without it: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a>.</p></main></body></html>
`;

/** GET /ui and /ui/*: the console's files, index.html for every other path under /ui (client-side routes); GET / redirects to /ui. */
export async function consoleRoutes(app: FastifyInstance, opts: ConsoleRoutesOptions = {}): Promise<void> {
  const dir = opts.dir ?? DEFAULT_CONSOLE_DIR;
  // null: not looked at yet; undefined: no build.
  let read: Map<string, ConsoleFile> | undefined | null = null;
  const consoleFiles = (): Map<string, ConsoleFile> | undefined =>
    read === null ? (read = existsSync(join(dir, 'index.html')) ? readConsoleFiles(dir) : undefined) : read;

  const send = (req: FastifyRequest, reply: FastifyReply, file: ConsoleFile): FastifyReply => {
    reply.headers(SECURITY_HEADERS);
    reply.header('content-type', file.type);
    reply.header('cache-control', file.immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
    reply.header('etag', file.etag);
    reply.header('vary', 'accept-encoding');
    if (req.headers['if-none-match'] === file.etag) return reply.code(304).send();
    const accepted = String(req.headers['accept-encoding'] ?? '');
    if (file.br && /\bbr\b/.test(accepted)) return reply.header('content-encoding', 'br').send(file.br);
    if (file.gzip && /\bgzip\b/.test(accepted)) return reply.header('content-encoding', 'gzip').send(file.gzip);
    return reply.send(file.body);
  };

  const serve = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const files = consoleFiles();
    if (!files) {
      reply.headers(SECURITY_HEADERS);
      return reply
        .code(503)
        .header('content-type', 'text/html; charset=utf-8')
        .header('cache-control', 'no-store')
        .send(NOT_BUILT);
    }
    const rest = (req.params as { '*'?: string })['*'] ?? '';
    const file = files.get(rest);
    if (file) return send(req, reply, file);
    // A path that names a file (an extension) and is not one is a 404, not the app: a stale
    // chunk name must fail loudly rather than be parsed as HTML.
    if (/\.[A-Za-z0-9]+$/.test(rest)) {
      reply.headers(SECURITY_HEADERS);
      return reply
        .code(404)
        .header('content-type', 'text/plain; charset=utf-8')
        .send(`no file ${CONSOLE_BASE}/${rest} in the web console`);
    }
    return send(req, reply, files.get('index.html')!);
  };

  // Public, like the probes: the policy is in src/auth/route-policies.ts. A browser pointed at the
  // server's address lands on the console rather than on a JSON 404.
  app.get('/', { schema: { hide: true } }, async (_req, reply) => reply.redirect(CONSOLE_BASE, 302));
  app.get(CONSOLE_BASE, { schema: { hide: true } }, serve);
  app.get(`${CONSOLE_BASE}/*`, { schema: { hide: true } }, serve);
}
