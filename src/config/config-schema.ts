import { z } from 'zod';
import { HOST_GRANT_HINT, HOST_GRANT_RE } from '../shared/host-grants.js';
import { parseRule } from '../shared/permission-syntax.js';
import { ISOLATION_MODES, TOOL_NAME_RE } from '../agents/definition.js';
import { clientCertMappingsSchema } from '../auth/cert.js';
import { jwtConfigSchema } from '../auth/jwt-config.js';
import { authLimitsConfigSchema } from '../auth/limits-config.js';
import { durationField as duration, durationMs, sizeBytes, sizeField as size } from '../shared/zod-units.js';
import { MAX_PERIOD_MS } from '../shared/units.js';
import { a2aAgentsSchema, a2aConfigSchema } from './a2a-schema.js';
import { clusterConfigSchema } from './cluster-schema.js';

function isRegExp(source: string): boolean {
  try {
    new RegExp(source, 'u');
    return true;
  } catch {
    return false;
  }
}
import { tlsConfigSchema } from '../server/tls-config.js';

/** caxton.toml. Every section has defaults so an empty file (or none) is a working configuration. */

const port = z.number({ error: 'expected a port number' }).int().min(0).max(65535);

export const providerSchema = z.strictObject({
  type: z.enum(['openai', 'anthropic', 'scripted'], { error: 'expected "openai", "anthropic" or "scripted"' }),
  base_url: z.url({ error: 'expected a URL such as "http://127.0.0.1:11434/v1"' }).optional(),
  api_key_env: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, {
      message: 'expected the NAME of an environment variable, e.g. "OPENAI_API_KEY"',
    })
    .optional(),
  model: z.string().min(1).optional(),
  timeout: duration(60_000),
  max_retries: z.number().int().min(0).max(10).default(2),
  retry_base: duration(500),
  headers: z.record(z.string(), z.string()).optional(),
  script: z.string().optional(),
  latency: duration(0, { min: 0 }),
});

/**
 * `[mcp_servers.NAME.oauth]`: OAuth 2.1 for a Streamable HTTP server (src/mcp/oauth.ts). Without
 * `client_id`, Caxton registers itself with the authorization server (dynamic client registration).
 */
export const mcpOAuthSchema = z
  .strictObject({
    /** authorization_code: a person authorizes once with `caxton mcp login NAME`; client_credentials: no person. */
    grant: z.enum(['authorization_code', 'client_credentials']).default('authorization_code'),
    /** A client registered beforehand with the authorization server; absent: dynamic client registration. */
    client_id: z.string().min(1).optional(),
    /** The environment variable holding the client secret (confidential clients). */
    client_secret_env: z.string().min(1).optional(),
    /** The scopes asked for (default: what the server's metadata or WWW-Authenticate names). */
    scopes: z.array(z.string().min(1)).default([]),
    /** Loopback port `caxton mcp login` listens on for the redirect (default: any free port). */
    redirect_port: z.number().int().min(1).max(65535).optional(),
    /** The client name sent with dynamic client registration. */
    client_name: z.string().min(1).default('Caxton'),
  })
  .refine((o) => o.client_secret_env === undefined || o.client_id !== undefined, {
    error: 'client_secret_env needs client_id (a registered client)',
    path: ['client_secret_env'],
  })
  .refine((o) => !(o.grant === 'authorization_code' && o.client_id !== undefined && o.redirect_port === undefined), {
    error:
      'a registered client (client_id) with grant "authorization_code" needs redirect_port: the redirect URI http://127.0.0.1:PORT/callback must be the one registered',
    path: ['redirect_port'],
  });

/**
 * `[mcp_servers.NAME]`: an external MCP server mounted as host tools `NAME.tool`. Either `command`
 * (stdio: a child process) or `url` (Streamable HTTP).
 */
export const mcpServerSchema = z
  .strictObject({
    command: z.string().min(1).optional(),
    args: z.array(z.string()).default([]),
    /** Added to a minimal inherited environment (PATH, HOME, USER, SHELL, TERM, LOGNAME). */
    env: z.record(z.string(), z.string()).default({}),
    /** Working directory of the child (relative to caxton.toml). */
    cwd: z.string().min(1).optional(),
    url: z.url({ error: 'expected a URL such as "http://127.0.0.1:3001/mcp"' }).optional(),
    /** HTTP headers sent with every request to `url` (e.g. Authorization). */
    headers: z.record(z.string(), z.string()).default({}),
    /** Longest a tool call (and, without connect_timeout, the connection handshake) may take. */
    timeout: duration(60_000),
    /**
     * Longest connecting (starting the child, the handshake, listing the tools) may take; default:
     * `timeout`. A server that starts slowly (npx, a cold cache) may still need its calls cut short.
     */
    connect_timeout: durationMs().optional(),
    enabled: z.boolean().default(true),
    /**
     * Caxton's /mcp as a gateway to this server: its tools under their own names (not `NAME.tool`)
     * with their results and progress passed through unchanged, and its prompts, resources and
     * completions offered beside Caxton's (src/mcp/gateway.ts). Agents still see `NAME.tool`.
     */
    gateway: z.boolean().default(false),
    /** OAuth 2.1 (Streamable HTTP only). */
    oauth: mcpOAuthSchema.optional(),
    /**
     * The server's tools (names as the server lists them, or "*") that may run again with the same
     * arguments to the same effect: a durable run interrupted while one ran runs it again; any
     * other interrupted call is not repeated (docs/runs.md). The server's own annotations are
     * hints from outside and are not trusted for this.
     */
    idempotent: z.array(z.string().min(1), { error: 'expected a list of tool names, or ["*"]' }).optional(),
  })
  .refine((s) => (s.command === undefined) !== (s.url === undefined), {
    error: 'an MCP server needs exactly one of "command" (stdio) or "url" (Streamable HTTP)',
  })
  .refine((s) => s.oauth === undefined || s.url !== undefined, {
    error: '[mcp_servers.NAME.oauth] needs "url": OAuth applies to Streamable HTTP servers',
    path: ['oauth'],
  });

/** Tool server names (as in caxton-tool.toml): lower-case, no dots (tools are named SERVER.tool). */
const TOOL_SERVER_NAME = /^[a-z][a-z0-9_-]{0,63}$/;
const GUEST_PATH = /^\/[^\0]*$/;

/**
 * `[tools.NAME]`: what the operator grants the tool server NAME (built-in or deployed). A
 * capability is usable only when the package's manifest asks for it AND this grants it; limits
 * here are upper bounds on the manifest's. Nothing is granted by default.
 */
export const toolGrantSchema = z.strictObject({
  /** false: a built-in server of this name is not loaded, and deploying one is refused. */
  enabled: z.boolean().default(true),
  /**
   * Hosts the server may reach over HTTP: "api.example.com", "*.example.com", "127.0.0.1", "*",
   * each optionally with ":PORT". Internal addresses only by address (src/shared/host-grants.ts).
   */
  allowed_hosts: z
    .array(z.string().regex(HOST_GRANT_RE, { message: HOST_GRANT_HINT }), { error: 'expected a list of host names' })
    .default([]),
  /** Guest root declared by the manifest (`[permissions.paths]`) → host directory (relative to caxton.toml). */
  paths: z
    .record(
      z.string().regex(GUEST_PATH, { message: 'expected a guest path such as "/data" as the key' }),
      z.string({ error: 'expected a host directory' }).min(1),
      {
        error: (iss) =>
          iss.code === 'invalid_key'
            ? 'expected a guest path such as "/data" as the key'
            : 'expected a table: guest root = "host directory"',
      },
    )
    .default({}),
  /** Guest database path declared by the manifest (`databases`) → host SQLite file or directory (relative to caxton.toml); always read-only. */
  databases: z
    .record(
      z.string().regex(GUEST_PATH, { message: 'expected a guest path such as "/db" as the key' }),
      z.string({ error: 'expected a host file or directory' }).min(1),
      {
        error: (iss) =>
          iss.code === 'invalid_key'
            ? 'expected a guest path such as "/db" as the key'
            : 'expected a table: guest path = "host file or directory"',
      },
    )
    .default({}),
  /** Values for configuration keys the manifest declares (numbers and booleans are passed as text). */
  config: z
    .record(
      z.string(),
      z
        .union([z.string(), z.number(), z.boolean()], { error: 'expected a string, number or boolean' })
        .transform(String),
      { error: 'expected a table of configuration values' },
    )
    .default({}),
  /** Upper bounds on the manifest's [limits]: the effective limit is the smaller. */
  limits: z
    .strictObject({
      memory: sizeBytes().optional(),
      fuel: z
        .number({ error: 'expected a number' })
        .int({ error: 'expected a whole number' })
        .min(1, { error: 'at least 1' })
        .optional(),
      timeout: durationMs().optional(),
      max_input: sizeBytes().optional(),
      max_output: sizeBytes().optional(),
      max_state: sizeBytes({ min: 0 }).optional(),
    })
    .default({}),
});

export type ToolGrantConfig = z.output<typeof toolGrantSchema>;

/**
 * `[tools.limits]`: the most any tool server's manifest may ask for (a manifest asking for more is
 * refused at deploy with a 422 naming the field, the value and the cap; `[tools.NAME] limits` may
 * raise one server's), and which calls run in the server thread (src/tools/servers/manifest-limits.ts).
 */
export const toolCapsSchema = z
  .strictObject({
    memory: size(128 * 1024 * 1024),
    fuel: z
      .number({ error: 'expected a number' })
      .int({ error: 'expected a whole number' })
      .min(1, { error: 'at least 1' })
      .max(0x7fffffff, { error: 'at most 2147483647' })
      .default(1_000_000_000),
    timeout: duration(10_000),
    max_input: size(8 * 1024 * 1024),
    max_output: size(16 * 1024 * 1024),
    max_state: size(1024 * 1024),
    /** WebAssembly calls (no HTTP) with at most this much fuel run in the server thread; the rest on a worker. 0: every call on a worker. */
    in_thread_fuel: z
      .number({ error: 'expected a number' })
      .int({ error: 'expected a whole number' })
      .min(0, { error: 'at least 0' })
      .default(1_000_000),
  })
  .prefault({});

export type ToolCapsConfig = z.output<typeof toolCapsSchema>;

const modelAliasSchema = z.union([
  z
    .string()
    .min(1)
    .transform((model) => ({ model })),
  z.strictObject({ provider: z.string().min(1).optional(), model: z.string().min(1) }),
]);

/** Program names the workspace.bash allowlist holds: a plain name, no path, no shell syntax. */
const COMMAND_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}$/;

/** `[workspace.bash]`: shell commands in the workspace, run in a bubblewrap sandbox (ADR 0049). Off unless enabled. */
export const workspaceBashSchema = z.strictObject({
  enabled: z.boolean({ error: 'expected true or false' }).default(false),
  /** The programs a command may run (every command of a pipeline or sequence is checked), e.g. ["ls", "cat", "grep", "git"]. */
  commands: z
    .array(
      z.string().regex(COMMAND_NAME, { message: 'expected a program name such as "ls" or "git" (no path, no spaces)' }),
      { error: 'expected a list of program names' },
    )
    .default([]),
  /** Longest a command may run; a call's `timeout` may ask for less, never more. */
  timeout: duration(30_000, { min: 100, max: 600_000 }),
  /** Most bytes of output (stdout and stderr together) kept; the command is stopped past it. */
  max_output: size(64 * 1024, { min: 1024, max: 16 * 1024 * 1024 }),
  /** Whether commands may reach the network (a new, empty network namespace otherwise). */
  network: z.boolean({ error: 'expected true or false' }).default(false),
  /** Writable memory of each process of a command (RLIMIT_DATA: heap and private mappings): an allocation past it fails. */
  memory: size(512 * 1024 ** 2, { min: 16 * 1024 ** 2, max: 64 * 1024 ** 3 }),
  /** Processes and threads a command may have at once (a pids cgroup where writable, RLIMIT_NPROC otherwise). */
  processes: z
    .number({ error: 'expected a whole number of processes' })
    .int({ error: 'expected a whole number of processes' })
    .min(4, { error: 'at least 4 (the shell and a pipeline need a few)' })
    .max(4096, { error: 'at most 4096' })
    .default(64),
  /** Largest file a command may write (RLIMIT_FSIZE): a write past it fails and the file stops there. */
  file_size: size(64 * 1024 ** 2, { min: 1024 }),
});

/** A Claude Code permission rule as written: `Tool` or `Tool(specifier)` (src/tools/permissions). */
const permissionRule = z
  .string()
  .max(1_000)
  .refine((r) => !('error' in parseRule(r)), {
    message: 'expected a permission rule such as "Bash(npm test:*)", "Read(./secrets/**)" or "mcp__github"',
  });
const permissionRules = z
  .array(permissionRule, { error: 'expected a list of permission rules' })
  .max(1_000)
  .default([]);

/**
 * `[workspace.permissions]`: Claude Code's permission rules over the tools' calls (docs/workspace.md,
 * ADR 0124): deny refuses, ask waits for a person (a durable run's approval), allow runs.
 */
export const workspacePermissionsSchema = z.strictObject({
  allow: permissionRules,
  deny: permissionRules,
  ask: permissionRules,
  /** A Claude Code settings file (relative to the workspace, e.g. ".claude/settings.json") whose permissions.allow/deny/ask/defaultMode are added. */
  claude_settings: z.string({ error: 'expected a file path' }).min(1).max(4096).optional(),
  /** Whether an agent's permissionMode bypassPermissions is honoured (otherwise it runs as default). */
  bypass_allowed: z.boolean({ error: 'expected true or false' }).default(false),
});

export const workspaceConfigSchema = z
  .strictObject({
    /** The granted directory (relative to caxton.toml); absent: no workspace. */
    path: z.string({ error: 'expected a directory path' }).min(1, { error: 'expected a directory path' }).optional(),
    /** Whether workspace.write, .edit and .multi_edit may change files (and workspace.bash write in the workspace). */
    write: z.boolean({ error: 'expected true or false' }).default(false),
    /**
     * Whether a writable workspace may hold agents_dir (agents then change which agents run): the
     * server refuses to start with both unless this says so.
     */
    agents_dir_writable: z.boolean({ error: 'expected true or false' }).default(false),
    bash: workspaceBashSchema.prefault({}),
    permissions: workspacePermissionsSchema.prefault({}),
  })
  .prefault({});

/** `[web.search]`: the search backend web.search calls (a SearXNG instance or the Brave Search API). */
export const webSearchSchema = z.strictObject({
  /** "searxng": GET URL?q=...&format=json; "brave": GET URL?q=... with the X-Subscription-Token header. */
  kind: z.enum(['searxng', 'brave'], { error: 'expected "searxng" or "brave"' }),
  /** The endpoint, e.g. "http://127.0.0.1:8888/search" or "https://api.search.brave.com/res/v1/web/search". */
  url: z.url({ error: 'expected a URL such as "http://127.0.0.1:8888/search"' }),
  /** The environment variable holding the API key (Brave: required). */
  api_key_env: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, {
      message: 'expected the NAME of an environment variable, e.g. "BRAVE_API_KEY"',
    })
    .optional(),
  max_results: z.number({ error: 'expected a number' }).int().min(1).max(50).default(10),
  timeout: duration(15_000, { min: 100, max: 120_000 }),
});

export const webConfigSchema = z
  .strictObject({
    fetch: z
      .strictObject({
        /** Longest one fetch may take (redirects included). */
        timeout: duration(30_000, { min: 100, max: 300_000 }),
        /** Most bytes of a response body read; a longer body is cut there. */
        max_bytes: size(2 * 1024 * 1024, { min: 1024, max: 32 * 1024 * 1024 }),
        /** Most characters of page text one call returns (read on with `offset`). */
        max_chars: z.number({ error: 'expected a number' }).int().min(1000).max(1_000_000).default(100_000),
      })
      .prefault({}),
    /** Absent: web.search answers an error naming this setting. */
    search: webSearchSchema.optional(),
  })
  .refine((w) => w.search?.kind !== 'brave' || w.search.api_key_env !== undefined, {
    error: 'the Brave Search API needs api_key_env (the variable holding the key)',
    path: ['search', 'api_key_env'],
  })
  .prefault({});

export type WorkspaceConfig = z.output<typeof workspaceConfigSchema>;
export type WebConfig = z.output<typeof webConfigSchema>;

export const serverConfigSchema = z.strictObject({
  data_dir: z.string().default('./data'),
  agents_dir: z.string().default('./agents'),
  /** `[cluster]`: several nodes over NATS JetStream (src/cluster); absent: one node, nothing else to start. */
  cluster: clusterConfigSchema.optional(),
  /** `[agents]`: agent lifecycle (src/agents/versions/versions.ts). */
  agents: z
    .strictObject({
      /** Versions kept per agent (every deploy, file change and rollback is one); the oldest go first. */
      keep_versions: z.number().int().min(1).max(100_000).default(100),
      /**
       * Removed agents whose history is kept (the most recently removed, each up to keep_versions,
       * so a redeploy can continue the numbering and roll back); older ones' history is deleted.
       */
      keep_removed_agents: z.number().int().min(0).max(100_000).default(20),
      /** `[agents.claude]`: how Claude Code agent files (Markdown) are read. */
      claude: z
        .strictObject({
          /**
           * What a Claude Code agent without a `tools` key gets (Claude Code gives it every tool):
           * "granted", the tools this caxton.toml grants (workspace within [workspace], web within
           * its hosts, memory, messaging, todo); "none", no tools.
           */
          unlisted_tools: z.enum(['granted', 'none'], { error: 'expected "granted" or "none"' }).default('granted'),
        })
        .prefault({}),
    })
    .prefault({}),
  server: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: port.default(8080),
      max_body_size: size(1024 * 1024),
      shutdown_timeout: duration(10_000),
      tls: tlsConfigSchema.optional(),
      /** One full garbage collection when the server goes idle after a burst, so RSS comes back down (src/observability/memory-reducer.ts, ADR 0031). */
      idle_gc: z.boolean().default(true),
    })
    .prefault({}),
  metrics: z
    .strictObject({
      enabled: z.boolean().default(true),
      host: z.string().min(1).default('127.0.0.1'),
      port: port.default(9090),
      tls: tlsConfigSchema.optional(),
    })
    .prefault({}),
  logging: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      /** Recent log lines kept in memory for `GET /api/v1/logs` and `caxton logs` (0: none). */
      buffer_lines: z.number().int().min(0).max(1_000_000).default(10_000),
    })
    .prefault({}),
  /** The agent event store (lifecycle, communication, performance events) in the data dir's SQLite. */
  events: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Events older than this are deleted (default 7 days). */
      retention: duration(7 * 24 * 3_600_000, { max: MAX_PERIOD_MS }),
      /** At most this many events are kept; the oldest go first. */
      max_rows: z.number().int().min(100).max(100_000_000).default(1_000_000),
    })
    .prefault({}),
  /**
   * `[tracing]`: the node's own recent spans (ADR 0056), kept whether or not an OTLP endpoint is
   * set (OTEL_EXPORTER_OTLP_ENDPOINT), for GET /api/v1/traces/{id}. Which traces are kept is the
   * sampler's (OTEL_TRACES_SAMPLER; default parentbased_always_on: every trace).
   */
  tracing: z
    .strictObject({
      /** Most spans kept in memory (0: none kept, and without an OTLP endpoint nothing is traced). */
      local_spans: z.number().int().min(0).max(1_000_000).default(10_000),
      /** Most bytes of span data kept in memory. */
      local_bytes: size(16 * 1024 * 1024),
    })
    .prefault({}),
  /**
   * `[approvals]`: tool calls that wait for a person before they run (docs/runs.md). Each rule names
   * tools (names or `server.*`), optionally the agents it applies to and, per argument, a regular
   * expression the argument's value must match for the rule to apply.
   */
  approvals: z
    .strictObject({
      /** An approval nobody decided within this time is denied (the model is told so). */
      timeout: duration(24 * 3_600_000, { min: 1_000, max: MAX_PERIOD_MS }),
      rules: z
        .array(
          z.strictObject({
            tools: z
              .array(
                z.string().refine((t) => (t.includes('(') ? !('error' in parseRule(t)) : TOOL_NAME_RE.test(t)), {
                  message:
                    'expected a tool name or pattern such as "workspace.bash" or "fs.*", or a Claude Code permission rule such as "Bash(git push:*)"',
                }),
              )
              .min(1, { message: 'name at least one tool' }),
            agents: z.array(z.string().min(1).max(128)).optional(),
            arguments: z
              .record(
                z.string().min(1).max(128),
                z
                  .string()
                  .max(1_000)
                  .refine(isRegExp, { message: 'expected a regular expression (JavaScript syntax)' }),
              )
              .optional(),
          }),
        )
        .max(1_000)
        .default([]),
    })
    .prefault({}),
  /** `[executions]`: the record of every execution (src/execution/records, ADR 0056). */
  executions: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Records older than this are deleted (default 7 days). */
      retention: duration(7 * 24 * 3_600_000, { max: MAX_PERIOD_MS }),
      /** At most this many records are kept; the oldest go first. */
      max_rows: z.number().int().min(100).max(100_000_000).default(100_000),
    })
    .prefault({}),
  llm: z
    .strictObject({
      default_provider: z.string().min(1).optional(),
      providers: z.record(z.string().regex(/^[A-Za-z][A-Za-z0-9_-]*$/), providerSchema).default({}),
      model_aliases: z.record(z.string(), modelAliasSchema).default({}),
    })
    .prefault({}),
  execution: z
    .strictObject({
      isolation: z.enum(ISOLATION_MODES).default('context'),
      /** Worker threads or child processes of the `worker` / `process` pool (default: one per core, at least 2). */
      pool_size: z.number().int().min(1).max(256).optional(),
      /** `process` mode: requests one child process serves before it is replaced (default 10,000; ADRs 0052, 0078). */
      process_max_requests: z.number().int().min(1).max(1_000_000).optional(),
      /**
       * Runs one worker thread or child process of the pool runs at once (default 500): a run
       * waiting on its model leaves its member free for the others (ADR 0134).
       */
      runs_per_member: z.number().int().min(1).max(10_000).optional(),
      max_memory_mb: z.number().int().min(16).default(512),
      /**
       * Runs this node holds in flight at once, however they started (REST, /v1, messages,
       * background and resumed runs); past it a new run is refused with 429 rate_limited and
       * Retry-After (ADR 0136). A run waiting on its model holds some 12-51 KiB of RSS (docs/benchmarks.md).
       */
      max_in_flight: z.number().int().min(1).max(1_000_000).default(10_000),
      default_timeout: duration(120_000),
      /**
       * How long an execution stopped for client tool calls (OpenAI `tools`) waits for the
       * client's results before it is forgotten (ADR 0029); a later follow-up is rebuilt from
       * the messages it carries.
       */
      suspended_ttl: duration(3_600_000, { min: 1_000, max: 7 * 24 * 3_600_000 }),
      /** How long a stored response of POST /v1/responses (`store`, default true) can be continued or read. */
      responses_ttl: duration(24 * 3_600_000, { min: 1_000, max: 30 * 24 * 3_600_000 }),
      /**
       * Every run's steps committed as it goes, so a crash, restart or redelivery resumes it from
       * its last step and never repeats a finished tool call (docs/runs.md). Off: a run that is
       * interrupted starts again from the beginning.
       */
      durable_runs: z.boolean().default(true),
      /** How long a finished run and its steps are kept (GET /api/v1/runs/{id}). */
      runs_retention: duration(7 * 24 * 3_600_000, { max: MAX_PERIOD_MS }),
      /** The most finished runs kept (with their steps); the oldest go first. */
      runs_max_rows: z.number().int().min(100).max(100_000_000).default(100_000),
    })
    .prefault({}),
  messaging: z
    .strictObject({
      /** Largest accepted message (the whole body), bytes. */
      max_message_size: size(1024 * 1024),
      /** Most messages in one POST /api/v1/messages whose body is a JSON array. */
      max_batch_messages: z.number().int().min(1).max(100_000).default(1000),
      /** Largest body of such a batch, bytes (each message still within `max_message_size`). */
      max_batch_size: size(16 * 1024 * 1024),
      /**
       * Undelivered messages held before submissions get 429 with Retry-After (in a cluster, the
       * deliveries waiting in the stream plus those the node holds). Each holds about 1 KB of live
       * heap and 4-5 KB of RSS while queued on one node (docs/benchmarks.md), so the default caps
       * that near 50 MB.
       */
      max_queue: z.number().int().min(1).max(10_000_000).default(10_000),
      /** Messages one agent handles at once, unless its `[messaging] max_concurrency` says otherwise. */
      agent_concurrency: z.number().int().min(1).max(1000).default(4),
      /** How a provider is chosen for request, query and propose. */
      routing: z
        .enum(['round-robin', 'least-loaded'], { error: 'expected "round-robin" or "least-loaded"' })
        .default('round-robin'),
      /** Delivery attempts before a message goes to the dead-letter queue. */
      max_attempts: z.number().int().min(1).max(100).default(5),
      retry_base: duration(1_000),
      retry_max: duration(60_000),
      /** A conversation with no activity for this long expires. */
      conversation_ttl: duration(3_600_000, { max: MAX_PERIOD_MS }),
      /** Most messages in one conversation. */
      max_conversation_turns: z.number().int().min(2).max(100_000).default(100),
      /** Longest chain of agents messaging agents before it is stopped as a probable loop. */
      max_hops: z.number().int().min(1).max(100).default(8),
      /** Contract Net: how long proposals are collected when a cfp names no reply_by. */
      cfp_deadline: duration(30_000),
      /** Contract Net: which proposal wins, unless the cfp says otherwise with X-select / X-select-field. */
      cfp_select: z
        .enum(['lowest', 'highest', 'first'], { error: 'expected "lowest", "highest" or "first"' })
        .default('lowest'),
      cfp_field: z.string().min(1).default('price'),
      /**
       * Ed25519 signatures on every stored message, verified before each delivery (ADR 0059). Keys
       * are made on first use under `<data_dir>/signing/` (0600) and rotated with `caxton key rotate --signing`.
       */
      signing: z.boolean().default(false),
      /**
       * The trust anchor that endorses every signing key (ADR 0114): an Ed25519 private key file
       * (PKCS#8 PEM, 0600, relative to caxton.toml). Unset: `<data_dir>/signing/anchor.pem`, made
       * on first use. Required on a cluster, where every node reads a copy of the same file.
       */
      signing_anchor: z.string({ error: 'expected a file path' }).min(1, { error: 'expected a file path' }).optional(),
      // Retention (src/messaging/sqlite/sqlite-retention.ts): finished conversations go with their messages and
      // deliveries; nothing undelivered, dead-lettered or still open is ever deleted.
      /** Finished conversations idle longer than this are deleted, with their messages (default 7 days). */
      retention: duration(7 * 24 * 3_600_000, { max: MAX_PERIOD_MS }),
      /** At most this many finished conversations are kept; the oldest go first. */
      max_conversations: z.number().int().min(1).max(100_000_000).default(100_000),
      /** At most this many messages are kept: the oldest finished conversations go first. */
      max_messages: z.number().int().min(1).max(100_000_000).default(500_000),
      /** Dead letters older than this are deleted (default 30 days). */
      dead_letter_retention: duration(30 * 24 * 3_600_000, { max: MAX_PERIOD_MS }),
      /** At most this many dead letters are kept; the oldest go first. */
      max_dead_letters: z.number().int().min(1).max(100_000_000).default(10_000),
    })
    .prefault({}),
  /** Retention of the tool-call audit log (SQLite `tool_audit`, src/audit/tool-audit.ts). */
  tool_audit: z
    .strictObject({
      /** Records older than this are deleted (default 30 days). */
      retention: duration(30 * 24 * 3_600_000, { max: MAX_PERIOD_MS }),
      /** At most this many records are kept; the oldest go first. */
      max_rows: z.number().int().min(100).max(100_000_000).default(1_000_000),
    })
    .prefault({}),
  /** The audit trail of state-changing operations (SQLite `audit_log`, src/audit; ADR 0023). */
  audit: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Rows older than this are deleted (default 90 days). */
      retention: duration(90 * 24 * 3_600_000, { max: MAX_PERIOD_MS }),
      /** At most this many rows are kept; the oldest go first. */
      max_rows: z.number().int().min(100).max(100_000_000).default(1_000_000),
      /** Every row also appended to this file as one JSON line (relative to caxton.toml; created 0600). */
      jsonl: z.string({ error: 'expected a file path' }).min(1, { error: 'expected a file path' }).optional(),
      /**
       * Refusals of callers without a principal (401s) are counted, not recorded one by one: one
       * row per source address per this interval, with the count (src/audit/anonymous.ts).
       */
      anonymous_interval: duration(60_000, { min: 1_000, max: 24 * 3_600_000 }),
      /** Source addresses told apart per interval; refusals from further addresses share one row. */
      anonymous_sources: z.number().int().min(1).max(1_000_000).default(1000),
    })
    .prefault({}),
  memory: z
    .looseObject({
      backend: z.enum(['sqlite', 'postgres']).default('sqlite'),
    })
    .prefault({}),
  /**
   * `[tools.limits]`: the operator's caps over every tool manifest; `[tools.NAME]`: grants per tool
   * server (src/tools/servers/manager.ts, manifest-limits.ts; ADR 0018). "limits" is therefore not usable as
   * the name of a server's grant table.
   */
  tools: z
    .object(
      { limits: toolCapsSchema },
      { error: 'expected [tools.limits] and [tools.NAME] tables, one per tool server' },
    )
    .catchall(toolGrantSchema)
    .superRefine((servers, ctx) => {
      for (const name of Object.keys(servers)) {
        if (name !== 'limits' && !TOOL_SERVER_NAME.test(name))
          ctx.addIssue({
            code: 'custom',
            path: [name],
            message: `invalid tool server name "${name}": a lower-case letter, then letters, digits, "_" or "-" (no dots: its tools are named NAME.tool)`,
          });
      }
    })
    .prefault({}),
  /**
   * `[workspace]`: the directory the workspace tools (workspace.read, .write, .edit, .multi_edit,
   * .glob, .grep, .ls, .bash; src/tools/workspace) are confined to. Nothing is granted by default:
   * without `path` every workspace tool answers an error naming this setting.
   */
  workspace: workspaceConfigSchema,
  /** `[web]`: web.fetch and web.search (src/tools/web); web.fetch reaches the hosts of `[tools.http_client] allowed_hosts`. */
  web: webConfigSchema,
  /** External MCP servers whose tools agents may call as `NAME.tool` (src/mcp). */
  mcp_servers: z
    .record(z.string(), mcpServerSchema)
    .superRefine((servers, ctx) => {
      for (const name of Object.keys(servers)) {
        if (!/^[A-Za-z][A-Za-z0-9_-]{0,63}$/.test(name))
          ctx.addIssue({
            code: 'custom',
            path: [name],
            message: `invalid MCP server name "${name}": use letters, digits, "_" and "-" (no dots: its tools are named NAME.tool)`,
          });
      }
    })
    .default({}),
  /** Caxton served as an MCP server: POST /mcp (Streamable HTTP) and `caxton mcp` (stdio). */
  mcp: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** The built-in tools offered (by name; "llm.chat" is left out unless listed). */
      builtin_tools: z.array(z.string().min(1)).default(['calculator', 'current_time']),
      /** The host tools offered, as an allowlist: exact names, `server.*`, or "*" for all. */
      host_tools: z.array(z.string().min(1)).default(['*']),
      /** Agents offered as tools `ask_<agent>`: names, or "*" for all. */
      agents: z.array(z.string().min(1)).default(['*']),
      /**
       * Offer the durable-run tools (list_waiting_runs, read_run, approve_run, deny_run). Off by
       * default: an MCP client is often a model, and approval exists so that a person decides.
       */
      run_tools: z.boolean().default(false),
      /** Longest a tool call made through MCP may take (an agent's own limits.timeout still applies). */
      timeout: duration(120_000),
    })
    .prefault({}),
  /** Caxton's agents served over Agent2Agent (src/a2a, docs/a2a.md); off until `expose` names some. */
  a2a: a2aConfigSchema,
  /** Remote A2A agents whose skills are capabilities in the directory (docs/a2a.md). */
  a2a_agents: a2aAgentsSchema,
  /** Authentication (src/auth, docs/security.md): API keys, OIDC JWTs, client certificates. */
  auth: z
    .strictObject({
      /** false: no authentication, every caller is the administrator; only allowed on a loopback bind. */
      enabled: z.boolean().default(true),
      /** At first start (no active key), create an admin key in <data_dir>/admin.key (0600) for the local CLI. */
      bootstrap_admin_key: z.boolean().default(true),
      /** Bearer JWTs from an OpenID Connect issuer (src/auth/jwt.ts, ADR 0021). */
      jwt: jwtConfigSchema.optional(),
      /** `[[auth.client_certs]]`: verified client certificates (mTLS) → principals (src/auth/cert.ts, ADR 0022). */
      client_certs: clientCertMappingsSchema,
      /** `[auth.limits]`: request rate, concurrent executions and LLM tokens per principal and per agent (ADR 0024). */
      limits: authLimitsConfigSchema,
    })
    .prefault({}),
  /** Browser safety (src/auth/plugin.ts): which Host names and cross-origin pages are accepted. */
  security: z
    .strictObject({
      /** Host names (globs such as "*.example.com") accepted besides loopback names and IP addresses (DNS rebinding). */
      allowed_hosts: z.array(z.string().min(1).max(255)).default([]),
      /** Origins allowed to call the API from a browser (CORS); empty: no cross-origin access. */
      cors_origins: z
        .array(
          z.string().regex(/^(\*|https?:\/\/[^/\s]+)$/, {
            message: 'expected an origin such as "https://console.example.com" (scheme and host, no path) or "*"',
          }),
        )
        .default([]),
      /** The address of the client is taken from X-Forwarded-For (behind a reverse proxy; docs/security.md). */
      trust_proxy: z.boolean().default(false),
      allow_remote: z
        .never({
          error:
            '"allow_remote" was removed: binding beyond loopback now requires [auth] enabled (the default); delete the key',
        })
        .optional(),
    })
    .prefault({}),
});

export type ServerConfigInput = z.input<typeof serverConfigSchema>;
export type ServerConfig = z.output<typeof serverConfigSchema> & {
  /** Where the configuration came from, for `config show` and messages. */
  source: { file: string | null; env: string[]; flags: string[] };
};
