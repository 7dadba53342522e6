import cors from '@fastify/cors';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import { SpanKind, SpanStatusCode, type Tracer } from '@opentelemetry/api';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { ServerConfig } from '../config/index.js';
import {
  clientRequestId,
  newRequestId,
  startSpan,
  withSpan,
  type Logger,
  type Metrics,
} from '../observability/index.js';
import { envelope, sendError, toEnvelope } from './envelope.js';
import { scrubSecrets } from '../shared/secrets.js';
import { parseJsonBody } from './json-body.js';
import { lazyChild } from './lazy-log.js';
import { installAuth, type AuthPluginOptions } from '../auth/index.js';
import { headAsGetServer } from './head-requests.js';
import { lazyValidatorCompiler } from './lazy-schemas.js';
import { openApiDocument } from './openapi.js';
import type { Lifecycle } from './routes/system-routes.js';
import type { ApiRoutes } from './route-sets.js';

export interface ApiDeps {
  config: ServerConfig;
  logger: Logger;
  metrics: Metrics;
  tracer: Tracer;
  lifecycle: Lifecycle;
  /**
   * Authentication and browser safety (src/auth). Absent: authentication off (every caller the
   * local administrator), but Host and Origin are still checked and every route needs a policy.
   */
  auth?: AuthPluginOptions;
  /**
   * Every route the API serves, contributed by the server's components (src/server/components)
   * and registered in this order, each under /api/v1 unless it is mounted at the root.
   */
  routes: readonly ApiRoutes[];
  /** Serve HTTPS with these options ([server.tls], src/server/tls.ts); `app.server` is then a tls.Server. */
  https?: HttpsServerOptions;
}

/** pino's level test (and LazyChild's, lazy-log.ts). */
type LevelCheck = { isLevelEnabled?: (level: string) => boolean };

/** Builds the REST API. Listening is the caller's job, so tests can inject or listen on port 0. */
export async function createApi(deps: ApiDeps): Promise<FastifyInstance> {
  const { config, metrics, tracer } = deps;
  const bodyLimit = config.server.max_body_size;
  const app: FastifyInstance = Fastify({
    // HEAD is answered as GET at the server's entry (head-requests.ts), not by a twin of each GET route.
    exposeHeadRoutes: false,
    serverFactory: headAsGetServer(deps.https),
    loggerInstance: deps.logger as unknown as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'request_id' }),
    // Each request's logger (its request_id) made into pino's child only when it logs a line
    // (lazy-log.ts): pino serializes a child's bindings as it is made, and most requests log nothing.
    childLoggerFactory: (logger, bindings, opts) =>
      opts.level === undefined && opts.serializers === undefined
        ? lazyChild(logger, bindings)
        : logger.child(bindings, opts),
    bodyLimit,
    // Always the server's own (src/observability/request-id.ts); the client's is client_request_id.
    genReqId: () => newRequestId(),
    return503OnClosing: true,
    // Behind a reverse proxy ([security] trust_proxy): req.ip (the audit trail's source address) from X-Forwarded-For.
    trustProxy: config.security.trust_proxy,
    forceCloseConnections: false,
    // Errors raised by the router before any route runs (an undecodable URL such as
    // /api/v1/agents/%ff, an over-long path parameter) get the same envelope as every other error.
    frameworkErrors: (err, req, reply) => {
      const status =
        typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 400;
      reply.header('x-request-id', req.id);
      return sendError(
        reply,
        status,
        envelope('invalid_request', `invalid request URL: ${err.message}`, { reason: err.code }, String(req.id)),
      );
    },
  });
  useJsonBodies(app);

  // Every route is noted for GET /api/v1/openapi.json, which builds the document on first request.
  const openApi = openApiDocument(app, deps.lifecycle.version);

  traceRequests(app, tracer);
  // Before any route: routes without an access policy are refused as they are registered.
  installAuth(
    app,
    deps.auth ?? {
      enabled: false,
      authenticators: {},
      allowedHosts: config.security.allowed_hosts,
      allowedOrigins: config.security.cors_origins,
    },
  );
  await allowCors(app, config);
  // The last exit (ADR 0017): no response body carries a configured secret, in any encoding.
  app.addHook('onSend', (_req, _reply, payload, done) =>
    done(null, typeof payload === 'string' ? scrubSecrets(payload) : payload),
  );
  recordResponses(app, config, metrics);
  answerErrors(app, metrics, bodyLimit);

  for (const r of deps.routes) await app.register(r.plugin, r.root ? {} : { prefix: '/api/v1' });

  app.get('/api/v1/openapi.json', { schema: { hide: true } }, () => openApi());
  return app;
}

/** JSON bodies through parseJsonBody; request schemas checked by zod, responses serialized plainly. */
function useJsonBodies(app: FastifyInstance): void {
  // Every JSON body is read raw and parsed by parseJsonBody, not fastify's parser: the text is
  // scanned first, so nesting deeper than MAX_INPUT_DEPTH is a 400 input_too_deep before zod or
  // JSON.stringify can overflow the stack on it, a duplicate key or a prototype key is a 400
  // naming it (fastify's parser called a `__proto__` body "not valid JSON"), and a syntax error
  // names its line and column. Routes with their own parsers (agents, messages) do the same.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => {
    try {
      done(null, parseJsonBody(body as Buffer));
    } catch (e) {
      done(e as Error, undefined);
    }
  });
  app.setValidatorCompiler(lazyValidatorCompiler);
  // Responses are documented by schemas but serialized plainly: validating every response costs time.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
}

/** Each request's id header, its client's request id, and its trace span (continuing a client's traceparent). */
function traceRequests(app: FastifyInstance, tracer: ApiDeps['tracer']): void {
  app.addHook('onRequest', (req, reply, done) => {
    reply.header('x-request-id', req.id);
    try {
      const client = clientRequestId(req.headers['x-request-id']);
      if (client !== undefined) {
        req.clientRequestId = client;
        req.log = lazyChild(req.log, { client_request_id: client });
      }
    } catch (e) {
      return done(e as Error);
    }
    // A client's W3C traceparent header is continued; the span is active for the handler, so the
    // spans it starts (routing, executions) and the lines it logs belong to this request's trace.
    const header = req.headers.traceparent;
    const span = startSpan(
      tracer,
      `HTTP ${req.method}`,
      typeof header === 'string' ? header : undefined,
      () => ({ 'http.request.method': req.method, 'url.path': req.url.split('?')[0]! }),
      SpanKind.SERVER,
    );
    req.span = span; // declared on FastifyRequest in request-trace.ts
    if (!span.isRecording()) return done();
    // The request's own log lines name the span explicitly (the routes hand the trace context on
    // explicitly too); the active context covers what runs inside the handler.
    const sc = span.spanContext();
    req.log = lazyChild(req.log, { trace_id: sc.traceId, span_id: sc.spanId });
    withSpan(span, done);
  });
}

async function allowCors(app: FastifyInstance, config: ApiDeps['config']): Promise<void> {
  // CORS is off unless [security] cors_origins names origins: a page elsewhere can then call the
  // API with a key it holds (a web console on another host), never with the browser's ambient state.
  if (config.security.cors_origins.length > 0) {
    await app.register(cors, {
      origin: config.security.cors_origins.includes('*') ? '*' : [...config.security.cors_origins],
      credentials: false,
      allowedHeaders: [
        'authorization',
        'content-type',
        'x-api-key',
        'x-request-id',
        'x-caxton-request',
        'traceparent',
        'last-event-id',
      ],
      exposedHeaders: ['x-request-id', 'retry-after', 'location'],
      maxAge: 600,
    });
  }
}

/** Each response counted and timed, its span ended, and its line logged. */
function recordResponses(app: FastifyInstance, config: ApiDeps['config'], metrics: ApiDeps['metrics']): void {
  // The request metrics' labelled children, looked up once per method, route and status: prom-client
  // hashes a label object on every call otherwise.
  // The duration histogram is read by /metrics alone: with [metrics] off nothing would ever see it.
  // The request counter stays (the status page's request rate reads it).
  const timed = config.metrics.enabled;
  const recorders = new Map<string, { count: { inc(): void }; time: { observe(v: number): void } | undefined }>();
  app.addHook('onResponse', (req, reply, done) => {
    const route = req.routeOptions.url ?? 'unmatched';
    const key = `${req.method} ${reply.statusCode} ${route}`;
    let r = recorders.get(key);
    if (r === undefined) {
      const status = String(reply.statusCode);
      r = {
        count: metrics.httpRequests.labels({ method: req.method, route, status }),
        time: timed ? metrics.httpDuration.labels({ method: req.method, route }) : undefined,
      };
      recorders.set(key, r);
    }
    r.count.inc();
    r.time?.observe(reply.elapsedTime / 1000);
    const span = req.span;
    if (span?.isRecording()) {
      span.updateName(`${req.method} ${route}`);
      span.setAttribute('http.route', route);
      span.setAttribute('http.response.status_code', reply.statusCode);
      if (reply.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    }
    const level = reply.statusCode >= 500 ? 'error' : 'debug';
    // The line's object only when it is logged: most requests log nothing at the default level.
    if (level === 'error' || (req.log as LevelCheck).isLevelEnabled?.('debug') !== false)
      req.log[level](
        { method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 100) / 100 },
        'request completed',
      );
    done();
  });
}

/** Every error, and every unknown route, answered with the error envelope. */
function answerErrors(app: FastifyInstance, metrics: ApiDeps['metrics'], bodyLimit: number): void {
  app.setErrorHandler((err, req, reply) => {
    const { status, body, code } = toEnvelope(err, req, bodyLimit);
    metrics.errors.inc({ code: String(code) });
    if (status >= 500) req.log.error({ err }, 'request failed');
    else {
      // A refusal naming an agent carries it, so the log's readers see the line only when they see
      // that agent (src/auth/scope-read.ts, logLinesVisibleTo).
      const agent = (body.error.details as { agent?: unknown } | null | undefined)?.agent;
      req.log.info(
        { code, message: body.error.message, ...(typeof agent === 'string' && { agent }) },
        'request rejected',
      );
    }
    return sendError(reply, status, body);
  });
  app.setNotFoundHandler((req, reply) =>
    sendError(
      reply,
      404,
      envelope(
        'route_not_found',
        `no route ${req.method} ${req.url.split('?')[0]}; see /api/v1/openapi.json`,
        null,
        String(req.id),
      ),
    ),
  );
}
