/**
 * The gRPC binding of A2A (docs/a2a.md), driven by the real @a2a-js/sdk client with its gRPC
 * transport against a real server with authentication on and `[a2a] grpc_listen` on 127.0.0.1 port
 * 0: the card names the listener (tenant: the agent), a message answered, a task streamed, read,
 * cancelled; a call without a key refused UNAUTHENTICATED, a key scoped to other agents refused
 * PERMISSION_DENIED, a message over `[server] max_body_size` refused RESOURCE_EXHAUSTED; every call
 * in the audit trail as the same method as over the HTTP bindings. A server without the setting
 * names no gRPC interface.
 */
import { SendMessageRequest, TaskState, type Message, type StreamResponse, type Task } from '@a2a-js/sdk';
import {
  ClientFactory,
  ClientFactoryOptions,
  DefaultAgentCardResolver,
  type CallInterceptor,
  type Client,
} from '@a2a-js/sdk/client';
import { GrpcTransportFactory } from '@a2a-js/sdk/client/grpc';
import { stringify } from 'smol-toml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serverConfigSchema } from '../../src/config/index.js';
import { adminKeyOf, bearer, createKey } from '../helpers/keys.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { clientFor, fetchWith } from './helpers/client.js';
import { openaiProvider, setTestKeys } from '../execution/helpers/caxton.js';
import { startLlmStub, type LlmStub, type StubHit } from '../execution/helpers/llm-stub.js';

let stub: LlmStub;
let srv: TestServer;
let admin: string;

type Msg = { role: string; content: string | null };
const messagesOf = (hit: StubHit): Msg[] => hit.body.messages as Msg[];

beforeAll(async () => {
  setTestKeys();
  stub = await startLlmStub((hit) => {
    const system = messagesOf(hit)[0]?.content ?? '';
    if (system.includes('SLOW')) return { content: 'late', delayMs: 60_000 };
    const last = messagesOf(hit)
      .filter((m) => m.role === 'user')
      .at(-1)!.content!;
    return { content: `echo: ${last}` };
  });
  srv = await startTestServer({
    dir: makeTempDir('caxton-a2a-grpc-'),
    toml: stringify({
      auth: { enabled: true },
      server: { max_body_size: '64KiB' },
      a2a: { expose: ['g-*', 'o-*'], grpc_listen: '127.0.0.1:0' },
      llm: { default_provider: 'stub', providers: { stub: openaiProvider(stub.url, { max_retries: 0 }) } },
    }),
    agentFiles: {
      'g-chat.toml': stringify({ name: 'g-chat', system_prompt: 'CHAT' }),
      'g-slow.toml': stringify({ name: 'g-slow', system_prompt: 'SLOW' }),
      'o-other.toml': stringify({ name: 'o-other', system_prompt: 'CHAT' }),
    },
  });
  admin = adminKeyOf(srv.dataDir);
}, 60_000);

afterAll(async () => {
  await srv?.close();
  await stub?.close();
  removeTempDirs();
});

/** Sends the key in the call's metadata, as `authorization: Bearer ...`. */
const withKey = (key: string | undefined): CallInterceptor => ({
  before: async (args) => {
    if (key === undefined) return;
    args.options = {
      ...args.options,
      serviceParameters: { ...args.options?.serviceParameters, authorization: `Bearer ${key}` },
    };
  },
  after: async () => {},
});

/** A client of `agent` over gRPC: its card read over HTTP with the admin key, each call sent with `key`. */
async function grpcClient(key: string | undefined, agent: string): Promise<Client> {
  const fetchImpl = fetchWith(admin);
  const factory = new ClientFactory(
    ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
      transports: [new GrpcTransportFactory()],
      cardResolver: new DefaultAgentCardResolver({ fetchImpl }),
      preferredTransports: ['GRPC'],
      clientConfig: { interceptors: [withKey(key)] },
    }),
  );
  return factory.createFromUrl(`${srv.url}/a2a/${agent}/`);
}

let n = 0;
const send = (text: string) =>
  SendMessageRequest.fromJSON({ message: { messageId: `g-${++n}`, role: 'ROLE_USER', parts: [{ text }] } });
const asTask = (r: Message | Task): Task => {
  if (!('status' in r)) throw new Error(`expected a task, got a message: ${JSON.stringify(r)}`);
  return r;
};
const textOf = (t: Task): string =>
  t.artifacts.flatMap((a) => a.parts.map((p) => (p.content?.$case === 'text' ? p.content.value : ''))).join('');
/** The gRPC status code of a refused call (the SDK's error keeps it as `status`). */
const statusOf = async (p: Promise<unknown>): Promise<number | undefined> => {
  try {
    await p;
    return undefined;
  } catch (e) {
    return (e as { status?: number }).status;
  }
};

describe('A2A over gRPC', () => {
  it('names the gRPC listener in the card, with the agent as tenant', async () => {
    const client = await grpcClient(admin, 'g-chat');
    const card = await client.getAgentCard();
    const grpcIf = card.supportedInterfaces.find((i) => i.protocolBinding === 'GRPC');
    expect(grpcIf).toMatchObject({ tenant: 'g-chat', protocolVersion: '1.0' });
    expect(grpcIf!.url).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(grpcIf!.url).not.toBe('127.0.0.1:0');
    expect(client.transport.protocolName).toBe('GRPC');
  });

  it('answers a message, reads the task back, streams another', async () => {
    const client = await grpcClient(admin, 'g-chat');
    const first = asTask(await client.sendMessage(send('hello')));
    expect(first.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    expect(textOf(first)).toBe('echo: hello');
    const again = await client.getTask({ tenant: '', id: first.id, historyLength: 0 });
    expect(again.id).toBe(first.id);
    expect(textOf(again)).toBe('echo: hello');

    const events: StreamResponse[] = [];
    for await (const e of client.sendMessageStream(send('streamed'))) events.push(e);
    const last = events.at(-1)!;
    expect(last.payload?.$case === 'statusUpdate' && last.payload.value.status?.state).toBe(
      TaskState.TASK_STATE_COMPLETED,
    );
    const answer = events.flatMap((e) =>
      e.payload?.$case === 'artifactUpdate'
        ? e.payload.value.artifact!.parts.map((p) => (p.content?.$case === 'text' ? p.content.value : ''))
        : [],
    );
    expect(answer.join('')).toBe('echo: streamed');
  });

  it('cancels a working task', async () => {
    const client = await grpcClient(admin, 'g-slow');
    const started = asTask(
      await client.sendMessage(
        SendMessageRequest.fromJSON({
          message: { messageId: `g-${++n}`, role: 'ROLE_USER', parts: [{ text: 'take your time' }] },
          configuration: { returnImmediately: true },
        }),
      ),
    );
    const cancelled = await client.cancelTask({ tenant: '', id: started.id, metadata: undefined });
    expect(cancelled.status?.state).toBe(TaskState.TASK_STATE_CANCELED);
  });

  it('refuses a call without a key (UNAUTHENTICATED) and a key scoped to other agents (PERMISSION_DENIED)', async () => {
    const anonymous = await grpcClient(undefined, 'g-chat');
    expect(await statusOf(anonymous.sendMessage(send('who am i')))).toBe(16);
    const wrong = await grpcClient('cxk_not_a_real_key_0000000000000000', 'g-chat');
    expect(await statusOf(wrong.sendMessage(send('let me in')))).toBe(16);
    const scoped = await createKey(srv.url, admin, 'o-only-grpc', { role: 'invoker', agents: ['o-*'] });
    const outside = await grpcClient(scoped, 'g-chat');
    expect(await statusOf(outside.sendMessage(send('not mine')))).toBe(7);
    expect(await statusOf(outside.getTask({ tenant: '', id: 'exec_x' }))).toBe(7);
    // In its scope the same key is served.
    const inside = await grpcClient(scoped, 'o-other');
    expect(asTask(await inside.sendMessage(send('mine'))).status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
  });

  it('refuses a message larger than [server] max_body_size (RESOURCE_EXHAUSTED)', async () => {
    const client = await grpcClient(admin, 'g-chat');
    expect(await statusOf(client.sendMessage(send('x'.repeat(80 * 1024))))).toBe(8);
  });

  it('records every call in the audit trail as its method, refusals as denied', async () => {
    const r = await fetch(`${srv.url}/api/v1/audit?action=a2a.*&limit=1000`, { headers: bearer(admin) });
    const rows = ((await r.json()) as { records: Record<string, unknown>[] }).records.filter(
      (x) => x.method === 'GRPC',
    );
    const seen = new Set(rows.map((x) => `${String(x.action)} ${String(x.outcome)}`));
    for (const want of [
      'a2a.SendMessage ok',
      'a2a.GetTask ok',
      'a2a.SendStreamingMessage ok',
      'a2a.CancelTask ok',
      'a2a.SendMessage denied',
    ])
      expect(seen).toContain(want);
    expect(rows.find((x) => x.action === 'a2a.CancelTask')).toMatchObject({
      route: '/lf.a2a.v1.A2AService/CancelTask',
      target: expect.stringMatching(/^g-slow\/exec_/),
    });
  });
});

describe('without [a2a] grpc_listen', () => {
  it('the card names no gRPC interface', async () => {
    const other = await startTestServer({
      dir: makeTempDir('caxton-a2a-nogrpc-'),
      toml: stringify({ auth: { enabled: true }, a2a: { expose: ['*'] } }),
      agentFiles: { 'plain.toml': stringify({ name: 'plain', system_prompt: 'x' }) },
    });
    try {
      const client = await clientFor(other.url, adminKeyOf(other.dataDir), 'plain');
      const card = await client.getAgentCard();
      expect(card.supportedInterfaces.map((i) => i.protocolBinding)).toEqual(['JSONRPC', 'HTTP+JSON']);
    } finally {
      await other.close();
    }
  }, 60_000);
});

describe('[a2a] grpc_listen is checked', () => {
  it('refuses an address that is not host:port, naming the field', () => {
    const r = serverConfigSchema.safeParse({ a2a: { expose: ['*'], grpc_listen: 'localhost' } });
    expect(r.success).toBe(false);
    const issue = r.error!.issues[0]!;
    expect(issue.path.join('.')).toBe('a2a.grpc_listen');
    expect(issue.message).toContain('expected "host:port"');
  });

  it('refuses at start a non-loopback listener without [server.tls]', async () => {
    await expect(
      startTestServer({
        dir: makeTempDir('caxton-a2a-grpc-open-'),
        toml: stringify({ auth: { enabled: true }, a2a: { expose: ['*'], grpc_listen: '0.0.0.0:0' } }),
      }),
    ).rejects.toThrow(/grpc_listen = "0\.0\.0\.0:0" is reachable from other machines without TLS/);
  }, 60_000);
});
