/**
 * A2A's gRPC binding (the protocol's `lf.a2a.v1.A2AService`), on its own listener
 * (`[a2a] grpc_listen`), over the same AgentA2aHandler as the JSON-RPC and HTTP+JSON bindings. One
 * listener serves every exposed agent: a request's `tenant` names the agent, and each card's gRPC
 * interface carries its agent's name as tenant (the SDK's client sends it with every request).
 *
 * A call is admitted as an HTTP call is (src/auth/admit.ts): the bearer in the metadata's
 * `authorization` (or `x-api-key`), the policy of the A2A routes (agents:invoke on an agent in the
 * key's scope), the request-rate limit; a stream ends when its credential does. What a call may
 * read, start or decide is the handler's. Each call is one audit row `a2a.<Method>` (the other
 * bindings' actions; method `GRPC`, route the gRPC path), with the HTTP status its outcome would
 * have had. Answers are scrubbed of the configured secrets at this exit, as the HTTP ones are.
 * The SDK's own `grpcService` is not used: it takes one handler for all callers and agents, and
 * reads no credential.
 */
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { A2AError, RequestMalformedError, restStatusFor, VersionNotSupportedError } from '@a2a-js/sdk/errors';
import { buildGrpcErrorMetadata, GRPC_STATUS_CODE, grpcStatusFor } from '@a2a-js/sdk/errors/grpc';
import { A2AService } from '@a2a-js/sdk/server/grpc';
import { ServerCallContext, validateVersion } from '@a2a-js/sdk/server';
import { A2A_VERSION_HEADER, type AgentCard, type SendMessageRequest } from '@a2a-js/sdk';
import type { AnonymousRefusals, AuditEntry, AuditSink } from '../audit/index.js';
import { admitCall, streamHolder, type Access, type AuthPluginOptions, type Principal } from '../auth/index.js';
import type { Logger } from '../observability/index.js';
import { CaxtonError, isCaxtonError } from '../shared/errors.js';
import { noteListener } from '../shared/host-grants.js';
import { scrubSecretsIn } from '../shared/secrets.js';
import { GRPC_BINDING } from './card.js';
import type { A2aCaller, AgentA2aHandler } from './handler.js';
import { checkedSend } from './rest.js';

const ACCESS: Access = { permission: 'agents:invoke', agentParam: 'agent' };
const SERVICE = '/lf.a2a.v1.A2AService';

export interface A2aGrpcOptions {
  /** `host:port` to listen on (port 0: any free port). */
  listen: string;
  /** The exposed agent a call's tenant names, for `caller`: its card and handler (routes.ts `agentCall`). */
  open(agent: string, caller: A2aCaller): { handler: AgentA2aHandler; card: AgentCard };
  auth: AuthPluginOptions;
  audit?: AuditSink | undefined;
  /** Where refusals of callers without a principal are counted (one row per address per interval). */
  anonymous?: AnonymousRefusals | undefined;
  /** Largest request message accepted (`[server] max_body_size`). */
  maxMessageBytes: number;
  /** TLS with [server.tls]'s certificate; absent: plaintext. */
  credentials?: grpc.ServerCredentials | undefined;
  /**
   * The handshake asks for client certificates and refuses one that does not chain to
   * `[server.tls] ca` (client_auth = "require"): a call's certificate then names a principal, as
   * over HTTP. grpc-js tells no more than the certificate, so with "optional" none is asked for.
   */
  clientCertsVerified?: boolean | undefined;
  logger: Logger;
}

export interface A2aGrpcServer {
  /** The address it listens on, `host:port`. */
  readonly address: string;
  close(): Promise<void>;
}

type Unary = (h: AgentA2aHandler, req: never) => Promise<unknown>;
type Streaming = (h: AgentA2aHandler, req: never) => AsyncGenerator<unknown>;

/** The unary methods: the service's name, the protocol's, and the handler's call. */
const UNARY: Record<string, [string, Unary]> = {
  sendMessage: [
    'SendMessage',
    async (h, r: SendMessageRequest) => {
      const sent = await h.sendMessage(checkedSend(r));
      return { payload: 'messageId' in sent ? { $case: 'message', value: sent } : { $case: 'task', value: sent } };
    },
  ],
  getTask: ['GetTask', (h, r: Parameters<AgentA2aHandler['getTask']>[0]) => h.getTask(r)],
  listTasks: ['ListTasks', (h, r: Parameters<AgentA2aHandler['listTasks']>[0]) => h.listTasks(r)],
  cancelTask: ['CancelTask', (h, r: Parameters<AgentA2aHandler['cancelTask']>[0]) => h.cancelTask(r)],
  createTaskPushNotificationConfig: [
    'CreateTaskPushNotificationConfig',
    (h, r: Parameters<AgentA2aHandler['createTaskPushNotificationConfig']>[0]) => h.createTaskPushNotificationConfig(r),
  ],
  getTaskPushNotificationConfig: [
    'GetTaskPushNotificationConfig',
    (h, r: Parameters<AgentA2aHandler['getTaskPushNotificationConfig']>[0]) => h.getTaskPushNotificationConfig(r),
  ],
  listTaskPushNotificationConfigs: [
    'ListTaskPushNotificationConfigs',
    (h, r: Parameters<AgentA2aHandler['listTaskPushNotificationConfigs']>[0]) => h.listTaskPushNotificationConfigs(r),
  ],
  deleteTaskPushNotificationConfig: [
    'DeleteTaskPushNotificationConfig',
    async (h, r: Parameters<AgentA2aHandler['deleteTaskPushNotificationConfig']>[0]) => {
      await h.deleteTaskPushNotificationConfig(r);
      return {};
    },
  ],
  getExtendedAgentCard: ['GetExtendedAgentCard', (h) => h.getAuthenticatedExtendedAgentCard()],
};

const STREAMING: Record<string, [string, Streaming]> = {
  sendStreamingMessage: ['SendStreamingMessage', (h, r: SendMessageRequest) => h.sendMessageStream(checkedSend(r))],
  subscribeToTask: ['SubscribeToTask', (h, r: Parameters<AgentA2aHandler['resubscribe']>[0]) => h.resubscribe(r)],
};

/** The gRPC status of an HTTP status Caxton would answer with. */
function grpcCodeOf(status: number): number {
  if (status === 401) return GRPC_STATUS_CODE.UNAUTHENTICATED;
  if (status === 403) return GRPC_STATUS_CODE.PERMISSION_DENIED;
  if (status === 404) return GRPC_STATUS_CODE.NOT_FOUND;
  if (status === 409) return GRPC_STATUS_CODE.FAILED_PRECONDITION;
  if (status === 413 || status === 429) return GRPC_STATUS_CODE.RESOURCE_EXHAUSTED;
  if (status === 501) return GRPC_STATUS_CODE.UNIMPLEMENTED;
  if (status === 503) return GRPC_STATUS_CODE.UNAVAILABLE;
  if (status === 504) return GRPC_STATUS_CODE.DEADLINE_EXCEEDED;
  if (status >= 400 && status < 500) return GRPC_STATUS_CODE.INVALID_ARGUMENT;
  return GRPC_STATUS_CODE.INTERNAL;
}

/** One call's failure: its gRPC status and the HTTP status recorded in the audit row. */
function failureOf(e: unknown): { error: Partial<grpc.StatusObject>; status: number; code: string } {
  if (e instanceof A2AError) {
    const metadata = buildGrpcErrorMetadata(grpc.Metadata, e);
    return {
      error: { code: grpcStatusFor(e), details: e.message, ...(metadata && { metadata }) },
      status: restStatusFor(e),
      code: e.name,
    };
  }
  if (isCaxtonError(e))
    return { error: { code: grpcCodeOf(e.status), details: e.message }, status: e.status, code: e.code };
  return { error: { code: GRPC_STATUS_CODE.INTERNAL, details: 'internal error' }, status: 500, code: 'internal' };
}

const firstOf = (md: grpc.Metadata, key: string): string | undefined => {
  const v = md.get(key)[0];
  return v === undefined ? undefined : v.toString();
};

/** `authorization: Bearer T` (any case of the scheme) or `x-api-key: T`, as over HTTP. */
function bearerOf(md: grpc.Metadata): string | undefined {
  const h = firstOf(md, 'authorization');
  if (h !== undefined) return h.length > 7 && h.slice(0, 7).toLowerCase() === 'bearer ' ? h.slice(7).trim() : undefined;
  const k = firstOf(md, 'x-api-key');
  return k !== undefined && k !== '' ? k : undefined;
}

/** The caller's address from grpc-js's peer (`ipv4:1.2.3.4:5`, `ipv6:[::1]:5`, `1.2.3.4:5`). */
function sourceOf(peer: string): string {
  const p = peer.replace(/^ipv[46]:/, '');
  const at = p.lastIndexOf(':');
  return (at > 0 ? p.slice(0, at) : p).replace(/^\[|\]$/g, '');
}

/** The task a request names (its id, its taskId, its message's taskId), for the audit row's target. */
function taskOfRequest(r: Record<string, unknown>): string | undefined {
  const t = r.taskId ?? r.id ?? (r.message as { taskId?: unknown } | undefined)?.taskId;
  return typeof t === 'string' && t !== '' && t.length <= 200 ? t : undefined;
}

/**
 * TLS with [server.tls]'s certificate; with `client_auth = "require"` client certificates are asked
 * for and must chain to its CA, and a call's certificate names a principal as over HTTP. Read once
 * at start: a renewed certificate is taken at the next start.
 */
export function grpcCredentials(
  m: { cert: Buffer; key: Buffer; ca?: Buffer | undefined },
  requireClientCert: boolean,
): grpc.ServerCredentials {
  return grpc.ServerCredentials.createSsl(
    m.ca ?? null,
    [{ cert_chain: m.cert, private_key: m.key }],
    requireClientCert,
  );
}

interface CallRecord {
  method: string;
  principal: Principal | undefined;
  source: string;
  agent: string;
  task: string | undefined;
  /** The outcome the handler noted (a refusal or failure answered as a protocol error). */
  noted: AuditEntry['outcome'] | undefined;
  status: number;
  errorCode: string | undefined;
}

/** The call's audit row; a refusal of a caller without a principal is counted by address instead. */
function recordCall(o: A2aGrpcOptions, c: CallRecord): void {
  const route = `${SERVICE}/${c.method}`;
  const outcome = c.noted ?? (c.status === 401 || c.status === 403 ? 'denied' : c.status >= 400 ? 'error' : 'ok');
  if (c.principal === undefined && o.anonymous && (c.status === 401 || c.status === 403 || c.status === 429)) {
    o.anonymous.note(c.source, c.errorCode ?? String(c.status), `GRPC ${route}`);
    return;
  }
  const target = c.agent === '' ? undefined : c.task !== undefined ? `${c.agent}/${c.task}` : c.agent;
  o.audit?.record({
    principal: c.principal ? { id: c.principal.id, kind: c.principal.kind } : null,
    source: c.source,
    request_id: randomUUID(),
    client_request_id: null,
    action: `a2a.${c.method}`,
    method: 'GRPC',
    route,
    ...(target !== undefined && { target }),
    outcome,
    status: c.status,
    details: { binding: 'grpc', ...(c.errorCode !== undefined && outcome !== 'ok' && { error_code: c.errorCode }) },
  });
}

type Serve = (
  method: string,
  call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>,
  body: (handler: AgentA2aHandler, gone: AbortSignal) => Promise<void>,
  fail: (e: Partial<grpc.StatusObject>) => void,
) => Promise<void>;

/** The service's methods over `serve`: unary ones answer once, streams write each event (scrubbed) until the end. */
function implementation(serve: Serve): grpc.UntypedServiceImplementation {
  const impl: grpc.UntypedServiceImplementation = {};
  for (const [name, [method, run]] of Object.entries(UNARY)) {
    impl[name] = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      let answered = false;
      const answer = (err: Partial<grpc.StatusObject> | null, value?: unknown) => {
        if (answered) return;
        answered = true;
        if (err) callback(err, null);
        else callback(null, scrubSecretsIn(value));
      };
      void serve(
        method,
        call,
        async (handler) => answer(null, await run(handler, call.request as never)),
        (e) => answer(e),
      );
    };
  }
  for (const [name, [method, run]] of Object.entries(STREAMING)) {
    impl[name] = (call: grpc.ServerWritableStream<unknown, unknown>) => {
      let ended = false;
      const end = (err?: Partial<grpc.StatusObject>) => {
        if (ended) return;
        ended = true;
        if (err) call.emit('error', err);
        else call.end();
      };
      void serve(
        method,
        call,
        async (handler, gone) => {
          const events = run(handler, call.request as never);
          const stop = () => void events.return(undefined);
          gone.addEventListener('abort', stop, { once: true });
          try {
            for await (const ev of events) {
              if (ended || gone.aborted) break;
              call.write(scrubSecretsIn(ev));
            }
          } finally {
            gone.removeEventListener('abort', stop);
          }
          end();
        },
        (e) => end(e),
      );
    };
  }
  return impl;
}

export async function startA2aGrpc(o: A2aGrpcOptions): Promise<A2aGrpcServer> {
  const server = new grpc.Server({
    'grpc.max_receive_message_length': o.maxMessageBytes,
    'grpc.max_send_message_length': -1,
  });
  const hold = streamHolder(o.auth);
  const calls = new Set<() => void>();

  /** Admits the call, opens its agent for the caller and runs `body`; records the audit row when it ends. */
  const serve: Serve = async (method, call, body, fail) => {
    const request = (call.request ?? {}) as Record<string, unknown>;
    const agent = typeof request.tenant === 'string' ? request.tenant : '';
    const source = sourceOf(call.getPeer());
    const task = taskOfRequest(request);
    let principal: Principal | undefined;
    let outcome: AuditEntry['outcome'] | undefined;
    let errorCode: string | undefined;
    const gone = new AbortController();
    const endCall = () => gone.abort(new CaxtonError('cancelled', 'the server is closing'));
    calls.add(endCall);
    call.on('cancelled', () => gone.abort());
    let release: (() => void) | undefined;
    let status = 200;
    try {
      if (agent === '')
        throw new RequestMalformedError(
          "tenant: expected the agent's name (the tenant of the gRPC interface in its card)",
        );
      const admitted = await admitCall(o.auth, {
        token: bearerOf(call.metadata),
        certificate: o.clientCertsVerified === true ? call.getAuthContext().sslPeerCertificate : undefined,
        source,
        access: ACCESS,
        params: { agent },
        known: (p) => (principal = p),
      });
      principal = admitted.principal;
      const caller: A2aCaller = {
        principal,
        limits: admitted.limits,
        signal: gone.signal,
        refused: () => (outcome = 'denied'),
        failed: (code) => {
          outcome = 'error';
          errorCode = code;
        },
      };
      const { handler, card } = o.open(agent, caller);
      const version = new ServerCallContext({
        ...(firstOf(call.metadata, A2A_VERSION_HEADER.toLowerCase()) !== undefined && {
          requestedVersion: firstOf(call.metadata, A2A_VERSION_HEADER.toLowerCase())!,
        }),
      }).requestedVersion;
      try {
        validateVersion(version, card, GRPC_BINDING);
      } catch (e) {
        throw new VersionNotSupportedError(e instanceof Error ? e.message : 'unsupported A2A version');
      }
      // A call ends with its credential: a revoked key or an expired token stops what it started.
      release = hold(principal, (why) => {
        gone.abort(why);
        fail(failureOf(why).error);
      });
      await body(handler, gone.signal);
    } catch (e) {
      const f = failureOf(e);
      status = f.status;
      errorCode ??= f.code;
      if (f.status === 500) o.logger.error({ err: e, method }, 'A2A gRPC call failed');
      fail(f.error);
    } finally {
      release?.();
      calls.delete(endCall);
      recordCall(o, { method, principal, source, agent, task, noted: outcome, status, errorCode });
    }
  };

  server.addService(A2AService as unknown as grpc.ServiceDefinition, implementation(serve));

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(o.listen, o.credentials ?? grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  const host = o.listen.slice(0, o.listen.lastIndexOf(':'));
  const address = `${host}:${port}`;
  // Tools reach this listener only through an allowed_hosts entry naming its address and port.
  const forget = noteListener({ host: host.replace(/^\[|\]$/g, ''), port });
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        for (const end of [...calls]) end();
        forget();
        const timer = setTimeout(() => server.forceShutdown(), 2_000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}
