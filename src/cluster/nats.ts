/**
 * The node's NATS connection, from `[cluster.nats]`: credentials read from the environment or a
 * creds file (never written to the configuration, the log or an error), TLS files resolved
 * against caxton.toml's folder, reconnection forever (a node that loses NATS turns not-ready and
 * catches up when it is back; it does not exit).
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { Kvm, type KV, type KvOptions } from '@nats-io/kv';
import { untilPlaced, type PlacementOptions } from '../messaging/cluster/index.js';
import {
  connect,
  credsAuthenticator,
  nkeyAuthenticator,
  type ConnectionOptions,
  type NatsConnection,
} from '@nats-io/transport-node';
import { CaxtonError } from '../shared/errors.js';
import type { ClusterConfig } from '../config/index.js';

export interface NatsOptionsInput {
  cluster: ClusterConfig;
  /** caxton.toml's folder: relative file paths are resolved against it. */
  baseDir?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /**
   * A connection that never receives what it publishes itself (NATS `no_echo`): the node's bus and
   * live events go out and come in on it, so a node does not decode its own events to drop them.
   */
  noEcho?: boolean;
}

function fromEnv(env: NodeJS.ProcessEnv, variable: string, field: string): string {
  const v = env[variable];
  if (v === undefined || v === '')
    throw new CaxtonError(
      'invalid_config',
      `[cluster.nats] ${field} names the environment variable ${variable}, which is not set`,
      { field: `cluster.nats.${field}` },
    );
  return v;
}

/** The connection options (`servers`, credentials, TLS) for `[cluster.nats]`. */
export function natsOptions({
  cluster,
  baseDir = process.cwd(),
  env = process.env,
  noEcho = false,
}: NatsOptionsInput): ConnectionOptions {
  const n = cluster.nats;
  const file = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  const opts: ConnectionOptions = {
    servers: n.urls,
    name: noEcho ? `caxton:${cluster.node}:events` : `caxton:${cluster.node}`,
    ...(noEcho && { noEcho: true }),
    timeout: n.connect_timeout,
    // Keep trying: the node reports not-ready meanwhile (membership.ts) and resumes when NATS is back.
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    waitOnFirstConnect: false,
    // Why: by default every request (each JetStream publish awaits its PubAck as one) allocates two
    // Error objects up front, stack traces included, only to name where a later timeout began; that
    // was 5 % of a node's CPU under load (docs/benchmarks.md). Errors still carry their message.
    noAsyncTraces: true,
  };
  if (n.token_env !== undefined) opts.token = fromEnv(env, n.token_env, 'token_env');
  if (n.user !== undefined && n.password_env !== undefined) {
    opts.user = n.user;
    opts.pass = fromEnv(env, n.password_env, 'password_env');
  }
  if (n.creds_file !== undefined) {
    let creds: Buffer;
    try {
      creds = readFileSync(file(n.creds_file));
    } catch (e) {
      throw new CaxtonError(
        'invalid_config',
        `[cluster.nats] creds_file ${file(n.creds_file)} cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        {
          field: 'cluster.nats.creds_file',
        },
      );
    }
    opts.authenticator = credsAuthenticator(new Uint8Array(creds));
  }
  if (n.nkey_seed_env !== undefined)
    opts.authenticator = nkeyAuthenticator(new TextEncoder().encode(fromEnv(env, n.nkey_seed_env, 'nkey_seed_env')));
  if (n.tls !== undefined)
    opts.tls = {
      ...(n.tls.ca_file !== undefined && { caFile: file(n.tls.ca_file) }),
      ...(n.tls.cert_file !== undefined && { certFile: file(n.tls.cert_file) }),
      ...(n.tls.key_file !== undefined && { keyFile: file(n.tls.key_file) }),
    };
  return opts;
}

/** Connects to NATS; a failure names the URLs tried and what to check (never the credentials). */
export async function connectNats(input: NatsOptionsInput): Promise<NatsConnection> {
  const opts = natsOptions(input);
  try {
    return await connect(opts);
  } catch (e) {
    throw new CaxtonError(
      'invalid_config',
      `cannot connect to NATS at ${input.cluster.nats.urls.join(', ')}: ${(e as Error).message}; check that nats-server runs with JetStream (nats-server -js) and [cluster.nats] in caxton.toml`,
      { field: 'cluster.nats.urls' },
    );
  }
}

/**
 * A key-value bucket, created when missing (membership, API keys). Nodes starting at once race to
 * create it, and JetStream may refuse the loser's add ("subjects overlap with an existing
 * stream") instead of returning the bucket: a second look then finds the bucket the winner made.
 * While the NATS cluster forms, the creation is retried (`placement`; jetstream-placement.ts).
 */
export async function createKv(
  nc: NatsConnection,
  bucket: string,
  opts: Partial<KvOptions>,
  placement: Pick<PlacementOptions, 'waitMs' | 'log'> = {},
): Promise<KV> {
  const kvm = new Kvm(nc);
  return untilPlaced(
    async () => {
      try {
        return await kvm.create(bucket, opts);
      } catch (e) {
        return kvm.create(bucket, opts).catch(() => Promise.reject(e));
      }
    },
    {
      ...placement,
      what: `the key-value bucket "${bucket}"`,
      ...(opts.replicas !== undefined && { replicas: opts.replicas }),
    },
  );
}
