/**
 * Agents messaging agents through the send_message tool on a real server (scripted LLM stub):
 * a request answered by another agent, the same in worker isolation (the tool runs in the server
 * through the host-call bridge), and an A → B → A loop stopped with a clear reason.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openaiProvider, removeTempDirs, setTestKeys, startCaxton, type Caxton } from '../execution/helpers/caxton.js';
import { startLlmStub, type LlmStub, type Reply, type StubHit } from '../execution/helpers/llm-stub.js';

type Msg = { role: string; content: string };

function agentOf(hit: StubHit): string {
  return /You are ([\w-]+)\./.exec((hit.body.messages as Msg[])[0]!.content)![1]!;
}

function script(hit: StubHit): Reply {
  const agent = agentOf(hit);
  const msgs = hit.body.messages as Msg[];
  const tool = msgs.find((m) => m.role === 'tool');
  switch (agent) {
    case 'asker':
    case 'asker-worker':
      if (!tool)
        return {
          content: '',
          tool_calls: [
            {
              id: 'c1',
              name: 'send_message',
              arguments: { capability: 'arithmetic', performative: 'query-ref', content: 'What is 6*7?' },
            },
          ],
        };
      return { content: `The expert says: ${tool.content}` };
    case 'expert':
      // A query-ref is answered through the `inform` act its model is offered (src/messaging/acts.ts).
      return { content: 'It is 42.', tool_calls: [{ id: 'c2', name: 'inform', arguments: { answer: '42' } }] };
    case 'ping':
    case 'pong':
      if (!tool)
        return {
          content: '',
          tool_calls: [
            {
              id: 'c1',
              name: 'send_message',
              arguments: { capability: agent === 'ping' ? 'pong' : 'ping', content: 'your turn' },
            },
          ],
        };
      return { content: `${agent} got: ${tool.content}` };
    default:
      return { content: 'unexpected' };
  }
}

let stub: LlmStub;
let cx: Caxton;

beforeAll(async () => {
  setTestKeys();
  stub = await startLlmStub((hit) => script(hit));
  cx = await startCaxton({
    config: { llm: { default_provider: 'stub', providers: { stub: openaiProvider(stub.url) } } },
    agents: [
      { name: 'asker', capabilities: ['asking'], tools: ['send_message'] },
      {
        name: 'asker-worker',
        capabilities: ['asking-isolated'],
        tools: ['send_message'],
        execution: { isolation: 'worker' },
      },
      { name: 'expert', capabilities: ['arithmetic'] },
      { name: 'ping', capabilities: ['ping'], tools: ['send_message'] },
      { name: 'pong', capabilities: ['pong'], tools: ['send_message'] },
    ],
  });
});

afterAll(async () => {
  await cx?.close();
  await stub?.close();
  removeTempDirs();
});

describe('agents messaging agents', () => {
  for (const asker of ['asker', 'asker-worker']) {
    it(`${asker} asks the arithmetic capability and uses the answer`, async () => {
      const res = await cx.invoke(asker, { request: 'compute' });
      expect(res.status, res.text).toBe(200);
      expect(res.json.tool_calls[0].is_error).toBe(false);
      expect(res.json.content).toContain('[inform] from expert: 42');
      const convs = await cx.server.bus.reads.listConversations({ participant: asker });
      expect(convs.items[0]!.protocol).toBe('fipa-query');
      expect(convs.items[0]!.state).toBe('completed');
      const { messages } = await cx.server.bus.reads.getConversation(convs.items[0]!.id);
      expect(messages[0]!.message.chain).toEqual([asker]);
    });
  }

  it('stops a ping → pong → ping loop with a clear reason', async () => {
    const res = await cx.invoke('ping', { request: 'start' });
    expect(res.status, res.text).toBe(200);
    // ping asked pong; pong tried to ask ping back and was refused; pong's answer reached ping.
    expect(res.json.content).toContain('not delivered: message loop detected: ping → pong → ping');
    const pongConvs = await cx.server.bus.reads.listConversations({ participant: 'pong' });
    const loop = pongConvs.items.find((c) => c.initiator === 'pong')!;
    expect(loop.state).toBe('failed');
    expect(loop.reason).toContain('message loop detected');
  });
});
