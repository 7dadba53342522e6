/**
 * `[cluster]` in caxton.toml: how a node reaches NATS JetStream and what it calls
 * itself. Its absence is the single-node default (SQLite, no NATS). src/cluster uses it; it lives
 * here because the configuration is a lower layer than the cluster (test/architecture/layers).
 */
import { hostname } from 'node:os';
import { z } from 'zod';
import { CaxtonError } from '../shared/errors.js';
import { durationField as duration, durationMs, numberOrText } from '../shared/zod-units.js';
import { postgresConnectionFields } from './postgres-schema.js';

/** Node names go into NATS subjects and KV keys: letters, digits, `-` and `_`. */
export const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
const NATS_URL = /^(nats|tls|ws|wss):\/\/[^\s]+$/;

/** A KV bucket or stream name (JetStream allows letters, digits, `-` and `_`). */
const bucketName = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, { error: 'expected letters, digits, "-" and "_" (a JetStream name)' });

export const clusterConfigSchema = z
  .strictObject({
    /** This node's name, unique in the cluster (default: the host name). */
    node: z
      .string()
      .regex(NODE_NAME, {
        error: 'expected letters, digits, "-" and "_" (at most 63), starting with a letter or digit',
      })
      .default(
        () =>
          hostname()
            .replace(/[^A-Za-z0-9_-]/g, '-')
            .slice(0, 63) || 'caxton',
      ),
    /** The URL other nodes and the console use to reach this node's API (shown in GET /api/v1/cluster). */
    advertise_url: z.url({ error: 'expected a URL such as "http://10.0.0.5:8080"' }).optional(),
    nats: z
      .strictObject({
        urls: z
          .array(z.string().regex(NATS_URL, { error: 'expected a NATS URL such as "nats://127.0.0.1:4222"' }))
          .min(1)
          .default(['nats://127.0.0.1:4222']),
        /** The environment variable holding a token (NATS `authorization { token }`). */
        token_env: z.string().min(1).optional(),
        user: z.string().min(1).optional(),
        /** The environment variable holding the user's password. */
        password_env: z.string().min(1).optional(),
        /** A `.creds` file (JWT + NKey seed), relative to caxton.toml. */
        creds_file: z.string().min(1).optional(),
        /** The environment variable holding an NKey seed (`SU...`). */
        nkey_seed_env: z.string().min(1).optional(),
        /** TLS to NATS: CA to trust, and a client certificate when the server asks for one (files relative to caxton.toml). */
        tls: z
          .strictObject({
            ca_file: z.string().min(1).optional(),
            cert_file: z.string().min(1).optional(),
            key_file: z.string().min(1).optional(),
          })
          .optional(),
        /** Longest a connection attempt may take. */
        connect_timeout: duration(5_000),
      })
      .refine((n) => (n.user === undefined) === (n.password_env === undefined), {
        error: 'user and password_env go together',
      })
      .refine((n) => [n.token_env, n.user, n.creds_file, n.nkey_seed_env].filter((x) => x !== undefined).length <= 1, {
        error: 'choose one way to authenticate to NATS: token_env, user + password_env, creds_file or nkey_seed_env',
      })
      .prefault({}),
    /** Membership: each node writes its heartbeat this often into the nodes bucket; a node silent for 3 beats is gone. */
    heartbeat: duration(2_000),
    /**
     * Copies JetStream keeps of the delivery stream and of every bucket (3 on a NATS cluster of
     * three or more, so a NATS server may die without losing an accepted message). Applied when a
     * node creates them, and to the stream at each start; unset, they are created with one copy
     * and an existing stream keeps the replicas it has (raised by an operator with `nats`).
     */
    replicas: z.int().min(1).max(5).optional(),
    /**
     * How long a node holds a durable run it runs without renewing its hold (docs/cluster.md,
     * "Durable runs"); renewed every third of it. The runs of a node that died are taken over this
     * long after its last renewal, and a run cancelled through another node stops at the next
     * renewal. At least 3 s (a renewal every second), at most 10 minutes.
     */
    run_lease: numberOrText.default(15).pipe(durationMs({ min: 3_000, max: 600_000 })),
    /** The JetStream key-value bucket of node heartbeats. */
    nodes_bucket: bucketName.default('caxton_nodes'),
    /**
     * No longer used: the agents deployed through the API are in the cluster's PostgreSQL, with
     * notices on core NATS (ADR 0045), not in a key-value bucket (ADR 0039). Accepted so that
     * existing files load; a node warns at start that it can be removed.
     */
    agents_bucket: bucketName.optional(),
    /** The JetStream key-value bucket of API keys (their hashes, never their secrets; ADR 0044). */
    keys_bucket: bucketName.default('caxton_keys'),
    /**
     * The shared state in PostgreSQL (ADR 0043): conversations, messages, delivery rows and dead
     * letters. Required: a node refuses to start with `[cluster]` and no shared state, since its
     * SQLite is its own. Exactly one of `url` and `url_env` (the variable holding a URL with a password).
     */
    state: z
      .strictObject({
        ...postgresConnectionFields('caxton_cluster'),
        /**
         * Transactions of conversation steps a node runs at once (group commit, ADR 0046): steps
         * arriving while all are busy share the next ones. Fewer: larger groups, less PostgreSQL
         * CPU per message under load; more: less waiting at moderate load, and a step waiting for a
         * lock another node holds stalls fewer others. At most pool_size. 2: docs/benchmarks.md
         * measured 1, 2 and 4 (fewer was faster on 2 cores; 1 leaves no room around a lock wait).
         */
        step_transactions: z.int().min(1).max(200).default(2),
        /**
         * The longest a node under load holds a small group of steps (fewer than 16), or the read
         * of the deliveries it fetched, for more to join it, like Kafka's linger.ms (ADR 0098).
         * Only while they arrive at 125 a second or more: below that, and for a lone message,
         * nothing waits. Off (0) by default: the wait is latency every lingered hop adds, worth it
         * only on a node whose CPU is the limit. Node timers count whole milliseconds.
         */
        step_linger: numberOrText.default(0).pipe(durationMs({ min: 0, max: 100 })),
      })
      .refine((s) => (s.url === undefined) !== (s.url_env === undefined), {
        error: 'set exactly one of url and url_env (the environment variable holding the URL)',
      })
      .optional(),
    /** Delivery on JetStream (src/messaging/cluster/jetstream-queue.ts, ADR 0038). */
    delivery: z
      .strictObject({
        /** The work-queue stream holding the deliveries. */
        stream: bucketName.default('CAXTON_DELIVERIES'),
        /** Deliveries are published on `<subject>.<agent>`. */
        subject: z
          .string()
          .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, {
            error: 'expected NATS subject tokens (letters, digits, "-" and "_") separated by "."',
          })
          .default('caxton.deliver'),
        /** The durable consumer every node shares. */
        consumer: bucketName.default('caxton_deliverer'),
        /** How long JetStream waits for a node's ack before another node gets the delivery (a node that died). */
        ack_wait: duration(30_000),
        /** Longest a submission waits for JetStream's PubAck before it fails with 503 (NATS unreachable). */
        publish_timeout: duration(5_000),
        /** Deliveries one node holds at once (fetched, waiting or running). */
        max_held: z.int().min(1).max(100_000).default(256),
        /**
         * Most first hand-outs to one agent carried by one stream message: what a node's steps
         * committed in one turn of its event loop goes out together (ADR 0158). 1: one message per delivery.
         */
        group_max: z.int().min(1).max(1000).default(100),
        /**
         * A pending delivery untouched for `ack_wait` times this is published again, whether or not
         * its publish was confirmed: JetStream may have lost what it acknowledged but had not synced
         * to disk. The consumer drops a copy whose row is done, so the cost is a read.
         */
        reconcile_after: z.int().min(2).max(10_000).default(10),
      })
      .prefault({}),
  })
  .refine(
    (c) => c.nats.tls === undefined || (c.nats.tls.cert_file === undefined) === (c.nats.tls.key_file === undefined),
    {
      error: 'a TLS client certificate needs both cert_file and key_file',
      path: ['nats', 'tls'],
    },
  );

export type ClusterConfig = z.infer<typeof clusterConfigSchema>;

/** The PostgreSQL connection `[cluster.state]` names (the URL read from `url_env` when given); errors name the key. */
export function clusterStateConfig(
  c: ClusterConfig,
  env: NodeJS.ProcessEnv = process.env,
): { url: string; schema: string; pool_size: number; step_transactions: number; step_linger: number } {
  const st = c.state;
  if (!st) {
    throw new CaxtonError(
      'invalid_config',
      `refusing to start: [cluster] is set (node "${c.node}") but [cluster.state] is not. Every node of a cluster keeps its agents' conversations, messages and deliveries in one PostgreSQL database; this node's SQLite is its own, which no other node sees. Set [cluster.state] url_env (the variable holding a postgres:// URL) or url, or remove [cluster] to run one node`,
      { field: 'cluster.state' },
    );
  }
  const url = st.url ?? env[st.url_env!];
  if (!url)
    throw new CaxtonError(
      'invalid_config',
      `cluster.state.url_env: the environment variable ${st.url_env} is not set; set it to a postgres:// URL`,
      { field: 'cluster.state.url_env' },
    );
  if (!/^postgres(ql)?:\/\//.test(url))
    throw new CaxtonError('invalid_config', `cluster.state.url_env: ${st.url_env} does not hold a postgres:// URL`, {
      field: 'cluster.state.url_env',
    });
  return {
    url,
    schema: st.schema,
    pool_size: st.pool_size,
    step_transactions: Math.min(st.step_transactions, st.pool_size),
    step_linger: st.step_linger,
  };
}
