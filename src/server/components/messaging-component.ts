import { dirname, join, resolve } from 'node:path';
import type { AgentRegistry } from '../../agents/index.js';
import type { AuditSink } from '../../audit/index.js';
import { SigningAnchor, SigningKeyStore, type ActingPrincipals } from '../../auth/index.js';
import { messagingApi, signingKeyApi } from '../../api/index.js';
import type { ServerConfig } from '../../config/index.js';
import type { Executor } from '../../execution/index.js';
import {
  executorHandler,
  MessageSigner,
  sendMessageTool,
  SqliteSignedSeen,
  type SignedSeen,
  type MessagingBus,
} from '../../messaging/index.js';
import { MessageBus } from '../../messaging/sqlite/index.js';
import type { Logger, Metrics, Tracer } from '../../observability/index.js';
import type { AgentEvents } from '../../observability/agent-event-recorder.js';
import { CaxtonError } from '../../shared/errors.js';
import type { Db, WriteFence } from '../../storage/index.js';
import type { TeamBoard } from '../../tools/todo/index.js';
import type { ClusterComponent } from './cluster-component.js';
import type { Component } from './component.js';

export interface MessagingComponent extends Component {
  readonly bus: MessagingBus;
}

/**
 * The message bus, its agents run by the executor, `send_message` as a host tool and the
 * messaging routes. The bus delivers nothing until `startDelivery` (components/delivery-component.ts),
 * once every host tool is registered.
 */
export function startMessaging(opts: {
  config: ServerConfig;
  db: Db;
  /** The data dir's write fence (ADR 0127): the signed-message file is stopped with the store. */
  fence?: WriteFence;
  registry: AgentRegistry;
  executor: Executor;
  events: AgentEvents | undefined;
  logger: Logger;
  telemetry: { tracer?: Tracer; metrics?: Metrics };
  /** A cluster node's shared state and NATS: the bus is then the cluster's (PostgreSQL + JetStream). */
  cluster?: ClusterComponent | undefined;
  /** The principals messages act for: their scope decides where messages go, their limits are charged for deliveries. */
  principals?: ActingPrincipals;
  /** Where a refused signature is recorded (the audit trail, opened later: a sink that forwards once it is). */
  audit?: AuditSink;
  /** The teams `send_message` starts teammates in (Claude Code's Task with team_name or name). */
  teams?: TeamBoard;
}): MessagingComponent {
  const { events, cluster, principals } = opts;
  // Message signing keys (ADR 0059): made on first use, so the store costs nothing while signing is off.
  const anchor = signingAnchor(opts.config);
  const keys = new SigningKeyStore(opts.db, {
    dir: join(opts.config.data_dir, 'signing'),
    node: opts.config.cluster?.node ?? 'local',
    anchor,
  });
  // A missing or unreadable anchor stops the start, not the first message.
  if (opts.config.messaging.signing) anchor.check();
  // A signed message is delivered at most once to each receiver while its rows can exist.
  // On a cluster every node shares it (a JetStream bucket); on one node it is a file in the key directory.
  const seenTtl = opts.config.messaging.conversation_ttl + opts.config.messaging.retention;
  const seen: SignedSeen | undefined = !opts.config.messaging.signing
    ? undefined
    : cluster
      ? cluster.signedSeen(seenTtl)
      : new SqliteSignedSeen(join(opts.config.data_dir, 'signing'), {
          ttlMs: seenTtl,
          ...(opts.fence && { fence: opts.fence }),
        });
  const signer = opts.config.messaging.signing ? new MessageSigner(keys, { ...(seen && { seen }) }) : undefined;
  // On a cluster the public keys travel between nodes, as API keys do.
  const shared = signer && cluster ? cluster.shareSigningKeys(keys) : undefined;
  if (shared) signer?.setKeyLookup((id) => shared.lookup(id));
  const signing = { ...(signer && { signer }), ...(opts.audit && { audit: opts.audit }) };
  const bus: MessagingBus = cluster
    ? cluster.bus({
        registry: opts.registry,
        config: opts.config.messaging,
        log: opts.logger,
        ...opts.telemetry,
        ...(principals && { principals }),
        ...signing,
      })
    : new MessageBus({
        db: opts.db,
        registry: opts.registry,
        config: opts.config.messaging,
        log: opts.logger,
        ...opts.telemetry,
        ...(principals && { principals }),
        ...signing,
      });
  const agentHandler = executorHandler(opts.executor, (id, n) => bus.history(id, n), principals);
  bus.setAgentHandler(events ? events.receiving(agentHandler) : agentHandler);
  events?.observeBus(bus);
  return {
    name: 'messaging',
    bus,
    hostTools: [sendMessageTool(bus, opts.teams)],
    routes: [
      ...messagingApi({
        bus,
        batch: opts.config.messaging,
        bodyLimit: opts.config.server.max_body_size,
        ...(signer && { signer }),
        selection: { rule: opts.config.messaging.cfp_select, field: opts.config.messaging.cfp_field },
      }),
      ...signingKeyApi({ keys }),
    ],
    // Idempotent: a no-op when delivery (which closes the bus first) has run.
    close: async () => {
      await bus.close();
      await shared?.stop();
      seen?.close?.();
    },
  };
}

/**
 * The trust anchor of signing keys (ADR 0114): `[messaging] signing_anchor`, else one made in the
 * data dir. A cluster with signing must name it: the nodes' data dirs differ, and each node's own
 * anchor would endorse none of the other nodes' keys.
 */
function signingAnchor(config: ServerConfig): SigningAnchor {
  const configured = config.messaging.signing_anchor;
  if (configured !== undefined) {
    const baseDir = config.source.file ? dirname(config.source.file) : process.cwd();
    return new SigningAnchor(resolve(baseDir, configured), { create: false });
  }
  if (config.messaging.signing && config.cluster)
    throw new CaxtonError(
      'invalid_config',
      '[messaging] signing on a cluster needs [messaging] signing_anchor: a file every node holds a copy of (make one with: openssl genpkey -algorithm ed25519 -out anchor.pem; chmod 600 anchor.pem)',
      { field: 'messaging.signing_anchor' },
    );
  return new SigningAnchor(join(config.data_dir, 'signing', 'anchor.pem'), { create: true });
}
