/**
 * Remote A2A agents as capability providers (`[a2a_agents.NAME]`, docs/a2a.md): each one's card is
 * read at start, and it joins the agent registry as agent NAME (origin `a2a`) providing its skills
 * as capabilities, so the directory routes messages to it, `caxton agent list`, the console and
 * the capabilities API show it, and its calls are runs like any agent's (recorded, traced, limited
 * and scoped). A run of it is one A2A SendMessage through the real SDK client (streamed when its card
 * says it streams: the answer's text reaches the run's followers as it comes); its completion is the
 * answer, its failure a `failure`, its need for input a `query-ref` back to the sender.
 */
import { randomUUID } from 'node:crypto';
import { SendMessageRequest, TaskState, type Message, type StreamResponse, type Task } from '@a2a-js/sdk';
import {
  ClientFactory,
  ClientFactoryOptions,
  DefaultAgentCardResolver,
  JsonRpcTransportFactory,
  type Client,
} from '@a2a-js/sdk/client';
import {
  A2A_REMOTE_KEY,
  agentKey,
  parseAgent,
  remoteA2aUrl,
  type AgentDefinition,
  type AgentRegistry,
} from '../agents/index.js';
import type { A2aAgentConfig } from '../config/index.js';
import type { AgentResponse, ExecutionEvent, ExecutionJob, RemoteAgentRunner } from '../execution/index.js';
import type { Logger } from '../observability/index.js';
import { CaxtonError, describeError } from '../shared/errors.js';

/** How long a remote agent unreachable at start waits before its card is read again. */
export const REMOTE_RETRY_MS = 30_000;

/** The provider and model a remote agent's runs are recorded with. */
export const A2A_PROVIDER = 'a2a';

export interface RemoteA2aOptions {
  agents: Readonly<Record<string, A2aAgentConfig>>;
  registry: AgentRegistry;
  logger: Pick<Logger, 'info' | 'warn'>;
  env?: NodeJS.ProcessEnv;
}

/** fetch with the configured credential (read from its environment variable) on every request. */
function credentialFetch(cfg: A2aAgentConfig, env: NodeJS.ProcessEnv): typeof fetch {
  const secret = cfg.api_key_env === undefined ? undefined : env[cfg.api_key_env];
  if (cfg.api_key_env !== undefined && (secret === undefined || secret === ''))
    throw new CaxtonError(
      'invalid_config',
      `the environment variable ${cfg.api_key_env} ([a2a_agents] api_key_env) is not set`,
      {
        field: 'api_key_env',
      },
    );
  if (secret === undefined) return fetch;
  return (input, init) => {
    const headers = new Headers(init?.headers);
    if (cfg.api_key_header !== undefined) headers.set(cfg.api_key_header, secret);
    else headers.set('authorization', `Bearer ${secret}`);
    return fetch(input, { ...init, headers });
  };
}

const CAPABILITY = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** The agent definition a remote agent is registered with: its card's name and skills, our name. */
export function remoteDefinition(
  name: string,
  cfg: A2aAgentConfig,
  card: Awaited<ReturnType<Client['getAgentCard']>>,
): AgentDefinition {
  const capabilities = (cfg.capabilities ?? card.skills.map((s) => s.id)).filter((c) => CAPABILITY.test(c));
  const parsed = parseAgent(
    JSON.stringify({
      name,
      description: (card.description || `the remote A2A agent ${card.name}`).slice(0, 1_000),
      version: card.version || '0.0.0',
      capabilities,
      system_prompt: `Answered by the remote A2A agent ${card.name} at ${cfg.url}.`,
      limits: { timeout_ms: cfg.timeout_ms },
    }),
    { format: 'json' },
  );
  if (!parsed.ok)
    throw new CaxtonError(
      'invalid_config',
      `[a2a_agents.${name}]: its card does not make an agent: ${parsed.errors.map((e) => e.message).join('; ')}`,
      { agent: name },
    );
  return { ...parsed.definition, metadata: { ...parsed.definition.metadata, [A2A_REMOTE_KEY]: cfg.url } };
}

const textOf = (m: Message | undefined): string =>
  (m?.parts ?? []).map((p) => (p.content?.$case === 'text' ? p.content.value : '')).join('');

/** What a remote agent's answer is to the sender: its text, or a failure / question said as such (src/messaging/agent-handler.ts). */
function answerOf(result: Message | Task): string {
  if (!('status' in result)) return textOf(result);
  const state = result.status?.state;
  const said = textOf(result.status?.message);
  const artifacts = result.artifacts
    .flatMap((a) => a.parts.map((p) => (p.content?.$case === 'text' ? p.content.value : '')))
    .join('');
  switch (state) {
    case TaskState.TASK_STATE_COMPLETED:
      return artifacts || said;
    case TaskState.TASK_STATE_INPUT_REQUIRED:
    case TaskState.TASK_STATE_AUTH_REQUIRED:
      return JSON.stringify({ a2a_reply: 'query-ref', content: said || 'the remote agent needs more input' });
    default:
      return JSON.stringify({
        a2a_reply: 'failure',
        content: `the remote task ${result.id} ended ${TaskState[state ?? 0] ?? 'unknown'}${said ? `: ${said}` : ''}`,
      });
  }
}

const partsText = (parts: readonly { content?: { $case: string; value?: unknown } | undefined }[]): string =>
  parts.map((p) => (p.content?.$case === 'text' ? (p.content.value as string) : '')).join('');

/** A task known so far only by the update that named it. */
function emptyTask(id: string, contextId: string): Task {
  return { id, contextId, status: undefined, artifacts: [], history: [], metadata: undefined };
}

/**
 * A streamed task followed to its end: the task it ends as (its last status, its artifacts with
 * appended chunks joined), each artifact text chunk handed to `emit` as it arrives. A stream that
 * is a single message is that message.
 */
export async function followStream(
  events: AsyncIterable<StreamResponse>,
  emit: ((e: ExecutionEvent) => void) | undefined,
): Promise<Message | Task> {
  let task: Task | undefined;
  for await (const e of events) {
    const p = e.payload;
    if (p === undefined) continue;
    if (p.$case === 'message') return p.value;
    if (p.$case === 'task') task = { ...p.value, artifacts: [...p.value.artifacts] };
    else if (p.$case === 'statusUpdate') {
      task ??= emptyTask(p.value.taskId, p.value.contextId);
      task.status = p.value.status;
    } else if (p.$case === 'artifactUpdate') {
      const a = p.value.artifact;
      if (a === undefined) continue;
      task ??= emptyTask(p.value.taskId, p.value.contextId);
      const at = task.artifacts.findIndex((x) => x.artifactId === a.artifactId);
      if (at >= 0 && p.value.append)
        task.artifacts[at] = { ...task.artifacts[at]!, parts: [...task.artifacts[at]!.parts, ...a.parts] };
      else if (at >= 0) task.artifacts[at] = a;
      else task.artifacts.push(a);
      const text = partsText(a.parts);
      if (text !== '') emit?.({ type: 'token', text });
    }
  }
  if (task === undefined) throw new CaxtonError('llm_error', "the remote agent's stream ended without a task");
  return task;
}

export class RemoteA2aAgents implements RemoteAgentRunner {
  readonly #clients = new Map<string, Client>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #closed = false;

  constructor(private readonly o: RemoteA2aOptions) {}

  /** Reads every remote card; one unreachable now is logged and read again every REMOTE_RETRY_MS. */
  async start(): Promise<void> {
    await Promise.all(Object.entries(this.o.agents).map(([name, cfg]) => this.#connect(name, cfg)));
  }

  async #connect(name: string, cfg: A2aAgentConfig): Promise<void> {
    if (this.#closed) return;
    try {
      const fetchImpl = credentialFetch(cfg, this.o.env ?? process.env);
      const factory = new ClientFactory(
        ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
          transports: [new JsonRpcTransportFactory({ fetchImpl })],
          cardResolver: new DefaultAgentCardResolver({ fetchImpl }),
        }),
      );
      // The well-known path resolves against the base as a directory.
      const client = await factory.createFromUrl(cfg.url.endsWith('/') ? cfg.url : `${cfg.url}/`);
      const card = await client.getAgentCard();
      const def = remoteDefinition(name, cfg, card);
      const existing = this.o.registry.get(name);
      if (existing !== undefined && existing.origin.kind !== 'a2a')
        throw new CaxtonError('conflict', `an agent named "${name}" is already deployed; rename [a2a_agents.${name}]`, {
          agent: name,
        });
      const now = new Date().toISOString();
      this.#clients.set(agentKey(name), client);
      this.o.registry.upsert({
        definition: def,
        format: 'json',
        origin: { kind: 'a2a', url: cfg.url },
        revision: (existing?.revision ?? 0) + 1,
        deployed_at: existing?.deployed_at ?? now,
        updated_at: now,
      });
      this.o.logger.info({ agent: name, url: cfg.url, capabilities: def.capabilities }, 'remote A2A agent registered');
    } catch (e) {
      if (e instanceof CaxtonError && e.code === 'invalid_config') throw e;
      this.o.logger.warn(
        { agent: name, url: cfg.url, err: describeError(e) },
        `remote A2A agent unreachable; its card is read again in ${REMOTE_RETRY_MS / 1000} s`,
      );
      const t = setTimeout(() => {
        this.#timers.delete(t);
        void this.#connect(name, cfg).catch(() => undefined);
      }, REMOTE_RETRY_MS);
      t.unref();
      this.#timers.add(t);
    }
  }

  handles(def: AgentDefinition): boolean {
    return remoteA2aUrl(def) !== undefined;
  }

  /**
   * One A2A SendMessage to the remote agent, waited for (its deadline is the run's); streamed when
   * its card says it streams, the answer's text handed to `emit` as it comes.
   */
  async run(
    job: ExecutionJob,
    opts: { signal: AbortSignal; emit?: ((e: ExecutionEvent) => void) | undefined },
  ): Promise<AgentResponse> {
    const def = job.definition;
    const client = this.#clients.get(agentKey(def.name));
    if (client === undefined)
      throw new CaxtonError(
        'not_ready',
        `the remote A2A agent "${def.name}" has not been reached yet; try again later`,
        {
          agent: def.name,
        },
      );
    const started = performance.now();
    const req = job.request;
    const message = SendMessageRequest.fromJSON({
      message: {
        messageId: `${job.execution_id}-${randomUUID()}`,
        role: 'ROLE_USER',
        parts: [{ text: req.request }],
        ...(req.conversation_id !== undefined && { contextId: req.conversation_id }),
      },
    });
    // The SDK streams when the remote card says it does, and otherwise sends one blocking message
    // and hands its answer back as a one-event stream: one path for both.
    const result = await followStream(client.sendMessageStream(message, { signal: opts.signal }), opts.emit);
    return {
      id: `resp_${randomUUID()}`,
      execution_id: job.execution_id,
      agent: def.name,
      ...(req.conversation_id !== undefined && { conversation_id: req.conversation_id }),
      content: answerOf(result),
      tool_calls: [],
      usage: { input_tokens: 0, output_tokens: 0, total_tokens: 0 },
      execution_time_ms: Math.round((performance.now() - started) * 1000) / 1000,
      finish_reason: 'stop',
      provider: A2A_PROVIDER,
      model: remoteA2aUrl(def) ?? '',
      turns: 1,
      isolation: 'context',
    };
  }

  close(): void {
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }
}
