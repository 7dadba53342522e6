/**
 * The OpenAI-compatible endpoint's honesty, driven by the official `openai` package: every
 * parameter Caxton cannot honour is a BadRequestError naming it, errors have OpenAI's shape,
 * client system messages land after the agent's system prompt, structured output is checked,
 * and models.retrieve answers for agents.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_INSTRUCTIONS_HEADER } from '../../src/execution/run-agent.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { makeTempDir } from '../helpers/tmp.js';
import { removeTempDirs, startCaxton, tempDir, writeScript, type Caxton } from './helpers/caxton.js';

let cx: Caxton;
let client: OpenAI;

beforeAll(async () => {
  const script = writeScript(tempDir(), {
    rules: [
      { name: 'where', match: 'where do prompts go', content: 'SYSTEM<{{system}}> USER<{{request}}>' },
      { name: 'good-json', match: 'good json', content: '{"city":"Paris","population":2100000}' },
      { name: 'fenced-json', match: 'fenced json', content: '```json\n{"city":"Paris","population":1}\n```' },
      { name: 'wrong-shape', match: 'wrong shape', content: '{"city":42}' },
      { name: 'prose', match: 'prose please', content: 'The city is Paris.' },
      { name: 'echo', content: 'Echo: {{request}}' },
    ],
  });
  cx = await startCaxton({
    config: { llm: { default_provider: 'demo', providers: { demo: { type: 'scripted', script } } } },
  });
  await cx.deploy({ name: 'plain', system_prompt: 'You are Plain.' });
  await cx.deploy({ name: 'ctx', system_prompt: 'You are Ctx.', user_prompt_template: '[{{context}}] {{request}}' });
  client = new OpenAI({ baseURL: `${cx.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 10_000 });
});

afterAll(async () => {
  await cx?.close();
  removeTempDirs();
});

type Params = OpenAI.Chat.ChatCompletionCreateParamsNonStreaming;
const user = (content: string): OpenAI.Chat.ChatCompletionMessageParam[] => [{ role: 'user', content }];

async function rejection(params: Record<string, unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  const e = await client.chat.completions
    .create({ model: 'plain', messages: user('hi'), ...params } as unknown as Params)
    .catch((x: unknown) => x);
  expect(e).toBeInstanceOf(OpenAI.APIError);
  return e as InstanceType<typeof OpenAI.APIError>;
}

describe('unsupported parameters are refused by name', () => {
  const tool = { type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: {} } } };
  const cases: { name: string; params: Record<string, unknown>; param: string; code: string }[] = [
    { name: 'n > 1', params: { n: 2 }, param: 'n', code: 'unsupported_value' },
    { name: 'logprobs', params: { logprobs: true }, param: 'logprobs', code: 'unsupported_parameter' },
    { name: 'top_logprobs', params: { top_logprobs: 2 }, param: 'top_logprobs', code: 'unsupported_parameter' },
    { name: 'functions', params: { functions: [tool.function] }, param: 'functions', code: 'unsupported_parameter' },
    { name: 'function_call', params: { function_call: 'auto' }, param: 'function_call', code: 'unsupported_parameter' },
    {
      name: 'audio',
      params: { audio: { voice: 'alloy', format: 'mp3' } },
      param: 'audio',
      code: 'unsupported_parameter',
    },
    {
      name: 'modalities with audio',
      params: { modalities: ['text', 'audio'] },
      param: 'modalities',
      code: 'unsupported_value',
    },
    {
      name: 'presence_penalty',
      params: { presence_penalty: 0.5 },
      param: 'presence_penalty',
      code: 'unsupported_parameter',
    },
    {
      name: 'logit_bias',
      params: { logit_bias: { '50256': -100 } },
      param: 'logit_bias',
      code: 'unsupported_parameter',
    },
    {
      name: 'reasoning_effort',
      params: { reasoning_effort: 'high' },
      param: 'reasoning_effort',
      code: 'unsupported_parameter',
    },
    { name: 'an unknown parameter', params: { frobnicate: true }, param: 'frobnicate', code: 'unsupported_parameter' },
    {
      name: 'a deprecated function_call in a message',
      params: {
        messages: [
          ...user('hi'),
          { role: 'assistant', content: null, function_call: { name: 'lookup', arguments: '{}' } },
          ...user('again'),
        ],
      },
      param: 'messages[1].function_call',
      code: 'unsupported_parameter',
    },
    {
      name: 'an earlier audio reply known only by its id',
      params: {
        messages: [...user('hi'), { role: 'assistant', content: null, audio: { id: 'audio_1' } }, ...user('again')],
      },
      param: 'messages[1].audio',
      code: 'unsupported_parameter',
    },
    {
      name: 'an unknown message field',
      params: { messages: [{ role: 'user', content: 'hi', colour: 'red' }] },
      param: 'messages[0].colour',
      code: 'unsupported_parameter',
    },
    {
      name: "an assistant's field on a user message",
      params: { messages: [{ role: 'user', content: 'hi', parsed: {} }] },
      param: 'messages[0].parsed',
      code: 'unsupported_parameter',
    },
    {
      name: 'a refusal part in a user message',
      params: { messages: [{ role: 'user', content: [{ type: 'refusal', refusal: 'no' }] }] },
      param: 'messages[0].content[0].type',
      code: 'unsupported_value',
    },
    {
      name: 'a tool message answering no call',
      params: {
        messages: [
          { role: 'user', content: 'hi' },
          { role: 'tool', tool_call_id: 'c1', content: 'x' },
        ],
      },
      param: 'messages[1].tool_call_id',
      code: 'invalid_request',
    },
    {
      name: 'an image part',
      params: {
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'what is this?' },
              { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } },
            ],
          },
        ],
      },
      param: 'messages[0].content[1].type',
      code: 'unsupported_value',
    },
    {
      name: 'an audio part',
      params: {
        messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } }] }],
      },
      param: 'messages[0].content[0].type',
      code: 'unsupported_value',
    },
  ];
  for (const c of cases) {
    it(`${c.name} → BadRequestError with param ${c.param}`, async () => {
      const e = await rejection(c.params);
      expect(e).toBeInstanceOf(OpenAI.BadRequestError);
      expect(e.status).toBe(400);
      expect(e.param).toBe(c.param);
      expect(e.code).toBe(c.code);
      expect(e.type).toBe('invalid_request_error');
      expect(e.message).toContain(c.param);
      expect(e.requestID).toMatch(/.+/);
      expect((e.error as { request_id?: string }).request_id).toBe(e.requestID);
    });
  }

  it('harmless and no-op parameters are accepted', async () => {
    const c = await client.chat.completions.create({
      model: 'plain',
      messages: user('accepted'),
      n: 1,
      logprobs: false,
      frequency_penalty: 0,
      presence_penalty: 0,
      modalities: ['text'],
      tool_choice: 'none',
      user: 'u-1',
      metadata: { team: 'a' },
      store: false,
      seed: 7,
      temperature: 0.2,
      top_p: 0.9,
      max_completion_tokens: 100,
      stop: ['\n\n'],
      parallel_tool_calls: false,
    } as Params);
    expect(c.choices[0]!.message.content).toBe('Echo: accepted');
  });

  it('a schema-invalid value names its field as param', async () => {
    const e = await rejection({ temperature: 7 });
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
    expect(e.param).toBe('temperature');
  });

  it('a streaming request is refused the same way, before the stream opens', async () => {
    const e = await client.chat.completions
      .create({ model: 'plain', messages: user('hi'), stream: true, n: 3 })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
    expect((e as InstanceType<typeof OpenAI.APIError>).param).toBe('n');
  });
});

describe('content parts', () => {
  it('a history text part with refusal: null (as the OpenAI Agents SDK echoes it) is accepted', async () => {
    const c = await client.chat.completions.create({
      model: 'plain',
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'first', refusal: null }] },
        { role: 'assistant', content: [{ type: 'text', text: 'Echo: first', refusal: null }] },
        { role: 'user', content: 'second' },
      ],
    } as unknown as Params);
    expect(c.choices[0]!.message.content).toBe('Echo: second');
  });

  it('a part with a field of the wrong type is refused naming that field, not only the content', async () => {
    const e = await rejection({
      messages: [
        { role: 'assistant', content: [{ type: 'text', text: 'earlier', refusal: 7 }] },
        { role: 'user', content: 'hi' },
      ],
    });
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
    expect(e.param).toBe('messages.0.content.0.refusal');
    expect(e.message).toContain('messages.0.content.0.refusal must be a string, got 7');
  });

  it('a content of none of the accepted forms names the field and the forms', async () => {
    const e = await rejection({ messages: [{ role: 'user', content: 42 }] });
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
    expect(e.param).toBe('messages.0.content');
    expect(e.message).toContain('messages.0.content has none of the accepted forms (a string, a list or null), got 42');
  });
});

describe('client system messages', () => {
  it("go after the agent's system prompt as the client's instructions, not into the user turn", async () => {
    const c = await client.chat.completions.create({
      model: 'plain',
      messages: [
        { role: 'system', content: 'Be terse.' },
        { role: 'developer', content: 'Answer in French.' },
        { role: 'user', content: 'where do prompts go?' },
      ],
    });
    expect(c.choices[0]!.message.content).toBe(
      `SYSTEM<You are Plain.\n---\n${CLIENT_INSTRUCTIONS_HEADER}\n\nBe terse.\n\nAnswer in French.> USER<where do prompts go?>`,
    );
  });

  it('without client system messages only the agent prompt is sent', async () => {
    const c = await client.chat.completions.create({ model: 'plain', messages: user('where do prompts go?') });
    expect(c.choices[0]!.message.content).toBe('SYSTEM<You are Plain.> USER<where do prompts go?>');
  });

  it('fill {{context}} instead when the agent template asks for it', async () => {
    const c = await client.chat.completions.create({
      model: 'ctx',
      messages: [
        { role: 'system', content: 'Be terse.' },
        { role: 'user', content: 'where do prompts go?' },
      ],
    });
    expect(c.choices[0]!.message.content).toBe('SYSTEM<You are Ctx.> USER<[Be terse.] where do prompts go?>');
  });
});

describe('structured output', () => {
  const schema = {
    type: 'object',
    properties: { city: { type: 'string' }, population: { type: 'integer' } },
    required: ['city', 'population'],
    additionalProperties: false,
  };
  const jsonSchema = { type: 'json_schema', json_schema: { name: 'city', schema, strict: true } } as const;

  it('a reply matching the schema passes', async () => {
    const c = await client.chat.completions.create({
      model: 'plain',
      messages: user('good json'),
      response_format: jsonSchema,
    });
    expect(JSON.parse(c.choices[0]!.message.content!)).toEqual({ city: 'Paris', population: 2100000 });
  });

  it('a fenced JSON reply is returned without the fence', async () => {
    const c = await client.chat.completions.create({
      model: 'plain',
      messages: user('fenced json'),
      response_format: jsonSchema,
    });
    expect(c.choices[0]!.message.content).toBe('{"city":"Paris","population":1}');
  });

  it('json_object accepts any object and refuses prose', async () => {
    const ok = await client.chat.completions.create({
      model: 'plain',
      messages: user('wrong shape'),
      response_format: { type: 'json_object' },
    });
    expect(JSON.parse(ok.choices[0]!.message.content!)).toEqual({ city: 42 });
    const e = await client.chat.completions
      .create({ model: 'plain', messages: user('prose please'), response_format: { type: 'json_object' } })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.InternalServerError);
    expect((e as InstanceType<typeof OpenAI.APIError>).status).toBe(502);
    expect((e as InstanceType<typeof OpenAI.APIError>).code).toBe('invalid_structured_output');
    expect((e as Error).message).toMatch(/not JSON/);
  });

  it('a reply that does not match the schema is a 502 naming the violation', async () => {
    const e = await client.chat.completions
      .create({ model: 'plain', messages: user('wrong shape'), response_format: jsonSchema })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.APIError);
    const err = e as InstanceType<typeof OpenAI.APIError>;
    expect(err.status).toBe(502);
    expect(err.code).toBe('invalid_structured_output');
    expect(err.type).toBe('server_error');
    expect(err.message).toMatch(/\/city must be string/);
    expect(err.message).toMatch(/population/);
  });

  it('streamed: valid output finishes normally, invalid output ends in an error event', async () => {
    const good = await client.chat.completions.create({
      model: 'plain',
      messages: user('good json'),
      response_format: jsonSchema,
      stream: true,
    });
    let text = '';
    for await (const chunk of good) text += chunk.choices[0]?.delta.content ?? '';
    expect(JSON.parse(text)).toEqual({ city: 'Paris', population: 2100000 });

    const bad = await client.chat.completions.create({
      model: 'plain',
      messages: user('wrong shape'),
      response_format: jsonSchema,
      stream: true,
    });
    const finishes: string[] = [];
    const failure = await (async () => {
      for await (const chunk of bad) if (chunk.choices[0]?.finish_reason) finishes.push(chunk.choices[0].finish_reason);
    })().catch((x: unknown) => x);
    expect(failure).toBeInstanceOf(OpenAI.APIError);
    expect((failure as Error).message).toMatch(/does not match the schema "city"/);
    expect(finishes).toEqual([]);
  });

  it('a schema that does not compile is a 400 before the model is called', async () => {
    const e = await rejection({
      response_format: { type: 'json_schema', json_schema: { name: 'bad', schema: { type: 'no-such-type' } } },
    });
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
    expect(e.param).toBe('response_format.json_schema.schema');
  });
});

describe('models.retrieve', () => {
  it('returns an agent as a model', async () => {
    const m = await client.models.retrieve('plain');
    expect(m).toMatchObject({ id: 'plain', object: 'model', owned_by: 'caxton' });
    expect(Number.isInteger(m.created)).toBe(true);
  });

  it('is a NotFoundError in OpenAI shape for anything else', async () => {
    const e = await client.models.retrieve('no-such-agent').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.NotFoundError);
    const err = e as InstanceType<typeof OpenAI.APIError>;
    expect(err.type).toBe('invalid_request_error');
    expect(err.code).toBe('agent_not_found');
    expect(err.param).toBe('model');
    expect(err.message).toContain('no-such-agent');
  });
});

describe('authentication errors in OpenAI shape', () => {
  let srv: TestServer;
  let admin: string;
  beforeAll(async () => {
    const dir = makeTempDir('caxton-oai-auth-');
    writeFileSync(join(dir, 'replies.toml'), 'fallback = "ok"\n');
    srv = await startTestServer({
      dir,
      toml: '[auth]\nenabled = true\n\n[llm]\ndefault_provider = "s"\n[llm.providers.s]\ntype = "scripted"\nscript = "replies.toml"\n',
      agentFiles: {
        'helper.toml': 'name = "helper"\nsystem_prompt = "You help."\n',
        'other.toml': 'name = "other"\nsystem_prompt = "You help."\n',
      },
    });
    admin = readFileSync(join(srv.dataDir, 'admin.key'), 'utf8').trim();
  });
  afterAll(() => srv?.close());

  it('a wrong key is an AuthenticationError; a key scoped to another agent a PermissionDeniedError', async () => {
    const bad = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'cxk_wrong', maxRetries: 0 });
    const e = await bad.chat.completions.create({ model: 'helper', messages: user('hi') }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.AuthenticationError);
    expect((e as InstanceType<typeof OpenAI.APIError>).type).toBe('authentication_error');

    const res = await fetch(`${srv.url}/api/v1/keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'only-helper', role: 'developer', agents: ['helper'] }),
    });
    expect(res.status).toBe(201);
    const scoped = new OpenAI({
      baseURL: `${srv.url}/v1`,
      apiKey: ((await res.json()) as { secret: string }).secret,
      maxRetries: 0,
    });
    expect((await scoped.models.retrieve('helper')).id).toBe('helper');
    // Out of scope, a model reads as one that does not exist; using it is refused.
    const hidden = await scoped.models.retrieve('other').catch((x: unknown) => x);
    expect(hidden).toBeInstanceOf(OpenAI.NotFoundError);
    const denied = await scoped.chat.completions
      .create({ model: 'other', messages: user('hi') })
      .catch((x: unknown) => x);
    expect(denied).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect((denied as InstanceType<typeof OpenAI.APIError>).type).toBe('permission_error');
  });
});
