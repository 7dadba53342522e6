/**
 * `[a2a]` and `[a2a_agents.NAME]` in caxton.toml: Caxton's agents served over the Agent2Agent
 * protocol, and remote A2A agents taken in as capability providers (src/a2a, docs/a2a.md).
 */
import { z } from 'zod';
import { HOST_GRANT_HINT, HOST_GRANT_RE } from '../shared/host-grants.js';

/** An agent name or a glob over names (`*`, `research-*`). */
const agentPattern = z
  .string({ error: 'expected an agent name or a pattern such as "*" or "research-*"' })
  .min(1)
  .max(200);

export const a2aConfigSchema = z
  .strictObject({
    /** The agents served over A2A: names or globs, "*" for all. Empty (the default): A2A is off. */
    expose: z.array(agentPattern).default([]),
    /**
     * Serve each exposed agent's card at its well-known path without credentials (A2A discovery
     * as most clients expect it). Off: a card is read with a key like any other route, and a
     * key's agent scope hides the agents outside it.
     */
    public_cards: z.boolean({ error: 'expected true or false' }).default(false),
    /**
     * The URL clients reach this server at, written into the cards (`https://caxton.example.com`).
     * Absent: taken from each request's Host header and scheme.
     */
    public_url: z
      .url({ error: 'expected the URL clients reach this server at, e.g. "https://caxton.example.com"' })
      .refine((u) => /^https?:\/\//.test(u), { message: 'expected an http:// or https:// URL' })
      .transform((u) => u.replace(/\/+$/, ''))
      .optional(),
    /**
     * Push notifications (A2A task push notification configs): a client names a webhook and
     * Caxton POSTs the task to it at every change of state. Off: the config methods answer
     * PushNotificationNotSupported and the cards say `pushNotifications: false`.
     */
    push_notifications: z.boolean({ error: 'expected true or false' }).default(false),
    /**
     * The hosts a webhook may be on, judged as web.fetch's (src/tools/egress.ts): a name grants
     * only public addresses; loopback and private ones only through an entry naming the address.
     */
    push_allowed_hosts: z
      .array(z.string().regex(HOST_GRANT_RE, { message: HOST_GRANT_HINT }), { error: 'expected a list of host names' })
      .default(['*']),
    /**
     * A2A's gRPC binding on its own listener, `"host:port"` (port 0: any free port). Absent (the
     * default): no gRPC, and the cards name none. Over TLS with [server.tls]'s certificate when
     * that is set; otherwise plaintext, which a non-loopback host refuses.
     */
    grpc_listen: z
      .string()
      .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, {
        error: 'expected "host:port", e.g. "127.0.0.1:50051" (an IPv6 host in brackets: "[::1]:50051")',
      })
      .refine((v) => Number(v.slice(v.lastIndexOf(':') + 1)) <= 65_535, { message: 'the port is at most 65535' })
      .optional(),
    /** The address written into the cards for the gRPC binding (`"a2a.example.com:443"`). Absent: the listener's own. */
    grpc_public_address: z
      .string()
      .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, {
        error: 'expected "host:port" as clients reach the gRPC listener, e.g. "a2a.example.com:443"',
      })
      .optional(),
    /** The organization named as the agents' provider in their cards. */
    provider: z.strictObject({ organization: z.string().min(1).max(200), url: z.url().optional() }).optional(),
  })
  .prefault({});

export type A2aConfig = z.output<typeof a2aConfigSchema>;

/** `[a2a_agents.NAME]`: a remote A2A agent whose skills become capabilities in the directory. */
export const a2aAgentSchema = z.strictObject({
  /** The agent's base URL: its card is read at URL/.well-known/agent-card.json. */
  url: z
    .url({ error: 'expected the remote agent\'s base URL, e.g. "https://agents.example.com/translator"' })
    .refine((u) => /^https?:\/\//.test(u), { message: 'expected an http:// or https:// URL' }),
  /** The environment variable holding the credential sent to it (never the credential itself). */
  api_key_env: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: 'expected an environment variable name, e.g. "TRANSLATOR_KEY"' })
    .optional(),
  /** How the credential is sent: as a bearer token (default), or in this header. */
  api_key_header: z
    .string()
    .regex(/^[A-Za-z0-9-]{1,100}$/, { error: 'expected a header name, e.g. "X-API-Key"' })
    .optional(),
  /** The capabilities it provides; absent: its card's skill ids. */
  capabilities: z.array(z.string().min(1).max(200)).optional(),
  /** Longest one call may take before it is a failure. */
  timeout_ms: z.number().int().min(1_000).max(3_600_000).default(300_000),
});

export type A2aAgentConfig = z.output<typeof a2aAgentSchema>;

/** Remote agent names share the agents' namespace: the same rule as an agent name. */
export const a2aAgentsSchema = z
  .record(z.string(), a2aAgentSchema)
  .superRefine((agents, ctx) => {
    for (const name of Object.keys(agents))
      if (!/^[A-Za-z][A-Za-z0-9_-]{0,63}$/.test(name))
        ctx.addIssue({
          code: 'custom',
          path: [name],
          message: `invalid remote agent name "${name}": use letters, digits, "_" and "-", starting with a letter`,
        });
  })
  .default({});
