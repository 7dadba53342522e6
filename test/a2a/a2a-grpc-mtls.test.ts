/**
 * The A2A gRPC listener with `[server.tls]` and `client_auth = "require"`: a client certificate
 * that chains to the CA and matches an `[[auth.client_certs]]` entry is the caller's principal,
 * as over HTTPS, with no bearer; its agent scope holds; a client without a certificate, or with one
 * from another CA, is refused at the handshake. Driven by the real @a2a-js/sdk gRPC client with
 * TLS channel credentials against a real server on 127.0.0.1.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { credentials as grpcCredentials } from '@grpc/grpc-js';
import { SendMessageRequest, TaskState, type Message, type Task } from '@a2a-js/sdk';
import { ClientFactory, ClientFactoryOptions, DefaultAgentCardResolver, type Client } from '@a2a-js/sdk/client';
import { GrpcTransportFactory } from '@a2a-js/sdk/client/grpc';
import { stringify } from 'smol-toml';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCa, type Pem, type TestCa } from '../helpers/certs.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { openaiProvider, setTestKeys } from '../execution/helpers/caxton.js';
import { startLlmStub, type LlmStub, type StubHit } from '../execution/helpers/llm-stub.js';

let stub: LlmStub;
let srv: TestServer;
let ca: TestCa;
let client: Pem;
let foreign: Pem;

type Msg = { role: string; content: string | null };

beforeAll(async () => {
  setTestKeys();
  ca = await createCa('Caxton Test CA');
  const other = await createCa('Somebody Else CA');
  const server = await ca.issue({ cn: 'caxton.test', dns: ['localhost'], ips: ['127.0.0.1'] });
  client = await ca.issue({ cn: 'ci-runner', uris: ['spiffe://caxton/ci'] });
  foreign = await other.issue({ cn: 'ci-runner', uris: ['spiffe://caxton/ci'] });
  stub = await startLlmStub((hit: StubHit) => {
    const last = (hit.body.messages as Msg[]).filter((m) => m.role === 'user').at(-1)!.content!;
    return { content: `echo: ${last}` };
  });
  const dir = makeTempDir('caxton-a2a-grpc-mtls-');
  mkdirSync(join(dir, 'tls'), { recursive: true });
  writeFileSync(join(dir, 'tls', 'server.crt'), server.cert);
  writeFileSync(join(dir, 'tls', 'server.key'), server.key);
  writeFileSync(join(dir, 'tls', 'ca.crt'), ca.cert);
  srv = await startTestServer({
    dir,
    toml: stringify({
      server: { tls: { cert: 'tls/server.crt', key: 'tls/server.key', ca: 'tls/ca.crt', client_auth: 'require' } },
      auth: {
        enabled: true,
        client_certs: [{ cn: 'ci-*', san: 'URI:spiffe://caxton/ci', role: 'operator', agents: ['g-*'] }],
      },
      a2a: { expose: ['g-*', 'o-*'], grpc_listen: '127.0.0.1:0' },
      llm: { default_provider: 'stub', providers: { stub: openaiProvider(stub.url, { max_retries: 0 }) } },
    }),
    agentFiles: {
      'g-chat.toml': stringify({ name: 'g-chat', system_prompt: 'CHAT' }),
      'o-other.toml': stringify({ name: 'o-other', system_prompt: 'CHAT' }),
    },
  });
}, 60_000);

afterAll(async () => {
  await srv?.close();
  await stub?.close();
  removeTempDirs();
});

/** TLS channel credentials trusting the test CA, presenting `cert` when given. */
const channelFor = (cert: Pem | undefined) =>
  grpcCredentials.createSsl(
    Buffer.from(ca.cert),
    cert ? Buffer.from(cert.key) : null,
    cert ? Buffer.from(cert.cert) : null,
  );

/** A client of `agent` over gRPC, presenting `cert` (the card read over HTTPS with the same certificate). */
async function mtlsClient(agent: string, cert: Pem | undefined): Promise<Client> {
  // The card is read with the good certificate: what is tested is the gRPC call's own handshake.
  const dispatcher = new Agent({ connect: { ca: ca.cert, cert: client.cert, key: client.key } });
  const cardFetch = ((input: string, init?: object) =>
    undiciFetch(input, { ...init, dispatcher })) as unknown as typeof fetch;
  const channel = channelFor(cert);
  const factory = new ClientFactory(
    ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
      transports: [new GrpcTransportFactory({ grpcChannelCredentials: channel })],
      cardResolver: new DefaultAgentCardResolver({ fetchImpl: cardFetch }),
      preferredTransports: ['GRPC'],
    }),
  );
  return factory.createFromUrl(`${srv.url}/a2a/${agent}/`);
}

let n = 0;
const send = (text: string) =>
  SendMessageRequest.fromJSON({ message: { messageId: `m-${++n}`, role: 'ROLE_USER', parts: [{ text }] } });
const statusOf = async (p: Promise<unknown>): Promise<number | undefined> => {
  try {
    await p;
    return undefined;
  } catch (e) {
    return (e as { status?: number }).status;
  }
};
const textOf = (r: Message | Task): string =>
  'status' in r
    ? r.artifacts.flatMap((a) => a.parts.map((p) => (p.content?.$case === 'text' ? p.content.value : ''))).join('')
    : '';

describe('A2A over gRPC with client certificates required', () => {
  it('takes a verified client certificate as the principal, with no bearer', async () => {
    expect(srv.url).toMatch(/^https:/);
    const c = await mtlsClient('g-chat', client);
    expect(c.transport.protocolName).toBe('GRPC');
    const r = await c.sendMessage(send('over mTLS'));
    expect('status' in r && r.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    expect(textOf(r)).toBe('echo: over mTLS');
  });

  it("keeps the certificate's agent scope: another agent is PERMISSION_DENIED (7)", async () => {
    // Its card is hidden from this principal (403 over HTTPS), so the call names it as the tenant of
    // the card it can read: the listener decides by the tenant, not by the card the client holds.
    const card = await (await mtlsClient('g-chat', client)).getAgentCard();
    const other = {
      ...card,
      supportedInterfaces: card.supportedInterfaces.map((i) => ({ ...i, tenant: 'o-other' })),
    };
    const factory = new ClientFactory(
      ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
        transports: [new GrpcTransportFactory({ grpcChannelCredentials: channelFor(client) })],
        preferredTransports: ['GRPC'],
      }),
    );
    const c = await factory.createFromAgentCard(other);
    expect(await statusOf(c.sendMessage(send('not mine')))).toBe(7);
  });

  it('refuses at the handshake a client without a certificate, or with one from another CA (UNAVAILABLE, 14)', async () => {
    expect(await statusOf((await mtlsClient('g-chat', undefined)).sendMessage(send('no cert')))).toBe(14);
    expect(await statusOf((await mtlsClient('g-chat', foreign)).sendMessage(send('foreign')))).toBe(14);
  });
});
