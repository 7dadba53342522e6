/** response_format reaches each provider's wire body: natively for OpenAI, as a system-prompt instruction for Anthropic. */
import { describe, expect, it } from 'vitest';
import { buildBody as anthropicBody } from '../../src/llm/anthropic.js';
import { buildBody as openaiBody } from '../../src/llm/openai-client.js';
import type { ChatRequest, ResponseFormat } from '../../src/llm/index.js';

const schema = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] };
const format: ResponseFormat = { type: 'json_schema', json_schema: { name: 'city', schema, strict: true } };
const req = (response_format?: ResponseFormat): ChatRequest => ({
  model: 'm',
  messages: [
    { role: 'system', content: 'You are X.' },
    { role: 'user', content: 'hi' },
  ],
  ...(response_format && { response_format }),
});

describe('response_format on the wire', () => {
  it('OpenAI-type providers send it as response_format, untouched', () => {
    expect(openaiBody(req(format), 'm', false).response_format).toEqual(format);
    expect(openaiBody(req({ type: 'json_object' }), 'm', false).response_format).toEqual({ type: 'json_object' });
    expect('response_format' in openaiBody(req(), 'm', false)).toBe(false);
  });

  it('Anthropic is told in the system prompt, after the existing one, with the schema', () => {
    const system = anthropicBody(req(format), 'm', false).system as string;
    expect(system.startsWith('You are X.\n\nReply with one JSON object and nothing else')).toBe(true);
    expect(system).toContain(JSON.stringify(schema));
    expect(anthropicBody(req({ type: 'json_object' }), 'm', false).system).not.toContain('Schema');
    expect(anthropicBody(req(), 'm', false).system).toBe('You are X.');
    expect('response_format' in anthropicBody(req(format), 'm', false)).toBe(false);
  });
});
