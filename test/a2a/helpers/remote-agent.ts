/**
 * A real A2A agent made with the @a2a-js/sdk server parts (DefaultRequestHandler, the JSON-RPC
 * transport handler, the in-memory task store) on a plain node:http server at 127.0.0.1:0: the
 * remote agent Caxton takes in as a capability provider. It answers "translated: TEXT", fails a
 * request starting "fail", and asks back (input-required) on one starting "ask". With `streaming`
 * its card says it streams, and a translation comes as two artifact chunks.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AgentCard, formatSSEEvent, Role, TaskState, type Part } from '@a2a-js/sdk';
import {
  AgentEvent,
  DefaultRequestHandler,
  InMemoryTaskStore,
  JsonRpcTransportHandler,
  ServerCallContext,
  type AgentExecutor,
  type ExecutionEventBus,
  type RequestContext,
} from '@a2a-js/sdk/server';

export interface RemoteAgent {
  url: string;
  /** Each request's text, and the credential it came with. */
  calls: { text: string; authorization: string | undefined }[];
  /** Each JSON-RPC method called (SendMessage, SendStreamingMessage). */
  methods: string[];
  close(): Promise<void>;
}

const text = (value: string): Part => ({
  content: { $case: 'text', value },
  metadata: undefined,
  filename: '',
  mediaType: 'text/plain',
});

class Translator implements AgentExecutor {
  constructor(
    private readonly calls: RemoteAgent['calls'],
    private readonly auth: () => string | undefined,
    private readonly chunked: boolean,
  ) {}

  execute(ctx: RequestContext, bus: ExecutionEventBus): Promise<void> {
    const said = ctx.userMessage.parts.map((p) => (p.content?.$case === 'text' ? p.content.value : '')).join('');
    this.calls.push({ text: said, authorization: this.auth() });
    const base = { taskId: ctx.taskId, contextId: ctx.contextId, metadata: undefined };
    bus.publish(
      AgentEvent.task({
        id: ctx.taskId,
        contextId: ctx.contextId,
        status: { state: TaskState.TASK_STATE_SUBMITTED, message: undefined, timestamp: new Date().toISOString() },
        artifacts: [],
        history: [ctx.userMessage],
        metadata: undefined,
      }),
    );
    const status = (state: TaskState, words?: string) =>
      AgentEvent.statusUpdate({
        ...base,
        status: {
          state,
          message:
            words === undefined
              ? undefined
              : {
                  messageId: randomUUID(),
                  contextId: ctx.contextId,
                  taskId: ctx.taskId,
                  role: Role.ROLE_AGENT,
                  parts: [text(words)],
                  metadata: undefined,
                  extensions: [],
                  referenceTaskIds: [],
                },
          timestamp: new Date().toISOString(),
        },
      });
    if (said.startsWith('fail')) bus.publish(status(TaskState.TASK_STATE_FAILED, 'no dictionary for that'));
    else if (said.startsWith('ask')) bus.publish(status(TaskState.TASK_STATE_INPUT_REQUIRED, 'into which language?'));
    else {
      const chunks = this.chunked ? ['translated: ', said] : [`translated: ${said}`];
      chunks.forEach((c, i) =>
        bus.publish(
          AgentEvent.artifactUpdate({
            ...base,
            artifact: {
              artifactId: 'out',
              name: 'translation',
              description: '',
              parts: [text(c)],
              metadata: undefined,
              extensions: [],
            },
            append: i > 0,
            lastChunk: i === chunks.length - 1,
          }),
        ),
      );
      bus.publish(status(TaskState.TASK_STATE_COMPLETED));
    }
    bus.finished();
    return Promise.resolve();
  }

  cancelTask(): Promise<void> {
    return Promise.resolve();
  }
}

async function bodyOf(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function startRemoteAgent(opts: { streaming?: boolean } = {}): Promise<RemoteAgent> {
  const streaming = opts.streaming === true;
  const calls: RemoteAgent['calls'] = [];
  const methods: string[] = [];
  let current: string | undefined;
  let server!: Server;
  const url = await new Promise<string>((resolve) => {
    server = createServer((req, res) => void handle(req, res));
    server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
  });
  const card = AgentCard.fromJSON({
    name: 'Translator',
    description: 'Translates text',
    version: '2.1.0',
    supportedInterfaces: [{ url: `${url}/rpc`, protocolBinding: 'JSONRPC', protocolVersion: '1.0' }],
    capabilities: { streaming },
    defaultInputModes: ['text/plain'],
    defaultOutputModes: ['text/plain'],
    skills: [{ id: 'translate', name: 'translate', description: 'Translates text', tags: ['language'] }],
  });
  const handler = new DefaultRequestHandler(
    card,
    new InMemoryTaskStore(),
    new Translator(calls, () => current, streaming),
  );
  const rpc = new JsonRpcTransportHandler(handler);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method === 'GET' && req.url === '/.well-known/agent-card.json') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(AgentCard.toJSON(card)));
      return;
    }
    if (req.method !== 'POST' || req.url !== '/rpc') {
      res.writeHead(404).end();
      return;
    }
    current = req.headers.authorization;
    const version = req.headers['a2a-version'];
    const body = await bodyOf(req);
    methods.push((JSON.parse(body) as { method: string }).method);
    const answer = await rpc.handle(
      body,
      new ServerCallContext({ requestedVersion: typeof version === 'string' ? version : '1.0' }),
    );
    if (Symbol.asyncIterator in answer) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      for await (const e of answer) res.write(formatSSEEvent(e));
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
  }

  return {
    url,
    calls,
    methods,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
