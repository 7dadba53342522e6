import type { AgentRegistry } from '../../agents/index.js';
import { underApi } from '../../api/index.js';
import type { ServerConfig } from '../../config/index.js';
import type { ChatThreads, Executor } from '../../execution/index.js';
import type { Logger } from '../../observability/index.js';
import type { A2aRouteDeps } from '../../a2a/index.js';
import type { AuthPluginOptions } from '../../auth/index.js';
import { CaxtonError } from '../../shared/errors.js';
import { isLoopbackHost } from '../hosts.js';
import type { AuditComponent } from './audit-component.js';
import type { Db } from '../../storage/index.js';
import { workspaceGrant } from '../../tools/workspace/index.js';
import type { ClusterStateComponent } from './cluster-component.js';
import type { Component } from './component.js';
import type { CheckedTls } from './http-component.js';

export interface A2aComponent extends Component {
  /**
   * Starts the gRPC listener (`[a2a] grpc_listen`) once the audit trail is open: a component of its
   * own, closed before the one it serves. Absent when gRPC is not configured.
   */
  readonly startGrpc?: (late: {
    auth: AuthPluginOptions;
    audit: AuditComponent;
    tls: CheckedTls | undefined;
  }) => Promise<Component & { readonly address: string }>;
}

/**
 * Agent2Agent (src/a2a, docs/a2a.md): the exposed agents' cards and JSON-RPC endpoints, and the
 * remote agents of `[a2a_agents]` as providers in the registry, and the push notifications of
 * tasks (their configs in the node's SQLite, or on a cluster node in the cluster's PostgreSQL). The module and the A2A SDK are
 * loaded only when either is configured: a server without them never loads them.
 */
export async function startA2a(opts: {
  config: ServerConfig;
  executor: Executor;
  threads: ChatThreads;
  registry: AgentRegistry;
  logger: Logger;
  /** The node's SQLite, where push notification configs are kept off a cluster. */
  db: Db;
  /** A cluster node's PostgreSQL, where every node reads the push notification configs. */
  clusterState?: ClusterStateComponent | undefined;
}): Promise<A2aComponent> {
  const { config, executor } = opts;
  const remotes = Object.keys(config.a2a_agents).length > 0;
  if (config.a2a.expose.length === 0 && !remotes) return { name: 'a2a' };
  if (config.a2a.expose.length > 0 && !executor.runs)
    throw new CaxtonError(
      'invalid_config',
      '[a2a] expose needs durable runs (an A2A task is a run): remove [execution] durable_runs = false, or [a2a] expose',
      { field: 'a2a.expose' },
    );
  const { a2aPlugins, agentCall, RemoteA2aAgents, PushConfigStore, PgPushConfigStore, PushNotifier } =
    await import('../../a2a/index.js');
  const remote = remotes
    ? new RemoteA2aAgents({ agents: config.a2a_agents, registry: opts.registry, logger: opts.logger })
    : undefined;
  if (remote) {
    executor.remote = remote;
    await remote.start();
  }
  // The grant the workspace tools read and write under, with the same private directories.
  const workspace = workspaceGrant(config.workspace, [config.data_dir]);
  const state = opts.clusterState;
  const push =
    config.a2a.expose.length > 0 && config.a2a.push_notifications && executor.runs
      ? new PushNotifier({
          store: state
            ? await PgPushConfigStore.open({ pool: state.pool, schema: state.schema })
            : new PushConfigStore(opts.db),
          runs: executor.runs,
          allowedHosts: config.a2a.push_allowed_hosts,
          logger: opts.logger,
          workspace,
          shared: state !== undefined,
        })
      : undefined;
  await push?.resume();
  const close = (): void => {
    remote?.close();
    push?.close();
  };
  if (config.a2a.expose.length === 0) return { name: 'a2a', close };
  let grpcAddress: string | undefined;
  const deps: A2aRouteDeps = {
    executor,
    threads: opts.threads,
    registry: opts.registry,
    config: { a2a: config.a2a, auth: config.auth },
    push,
    workspace,
    grpcAddress: () => (grpcAddress === undefined ? undefined : (config.a2a.grpc_public_address ?? grpcAddress)),
  };
  const plugins = a2aPlugins(deps);
  const listen = config.a2a.grpc_listen;
  const startGrpc: A2aComponent['startGrpc'] =
    listen === undefined
      ? undefined
      : async (late) => {
          const host = listen.slice(0, listen.lastIndexOf(':')).replace(/^\[|\]$/g, '');
          if (late.tls === undefined && !isLoopbackHost(host))
            throw new CaxtonError(
              'invalid_config',
              `[a2a] grpc_listen = "${listen}" is reachable from other machines without TLS: set [server.tls] (the gRPC listener uses its certificate), or listen on a loopback address such as "127.0.0.1:50051"`,
              { field: 'a2a.grpc_listen' },
            );
          const { startA2aGrpc, grpcCredentials } = await import('../../a2a/grpc.js');
          // The cards' other interfaces at the public URL, else the API's own (as the HTTP bindings' cards without a Host).
          const scheme = late.tls ? 'https' : 'http';
          const apiUrl = config.a2a.public_url ?? `${scheme}://${config.server.host}:${config.server.port}`;
          const server = await startA2aGrpc({
            listen,
            open: (agent, caller) => agentCall(deps, agent, apiUrl, caller),
            auth: late.auth,
            audit: late.audit.store,
            anonymous: late.audit.anonymous,
            maxMessageBytes: config.server.max_body_size,
            credentials: late.tls && grpcCredentials(late.tls.material, late.tls.cfg.client_auth === 'require'),
            clientCertsVerified: late.tls?.cfg.client_auth === 'require',
            logger: opts.logger,
          });
          grpcAddress = server.address;
          opts.logger.info({ address: server.address, tls: late.tls !== undefined }, 'A2A gRPC listening');
          return {
            name: 'a2a grpc',
            address: server.address,
            close: async () => {
              grpcAddress = undefined;
              await server.close();
            },
          };
        };
  return { name: 'a2a', routes: underApi(plugins), close, ...(startGrpc && { startGrpc }) };
}
