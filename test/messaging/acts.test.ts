/**
 * The typed acts of a protocol step (src/messaging/acts.ts): which acts a step offers, the
 * `propose` schema with an agent's own bid fields, and a call's arguments checked against it —
 * the reply's content when they fit, invalid_structured_output naming the field when not.
 */
import { describe, expect, it } from 'vitest';
import { actsFor, answerFromActs } from '../../src/messaging/acts.js';
import type { AclMessage } from '../../src/messaging/index.js';
import type { AgentDefinition } from '../../src/agents/index.js';
import { CaxtonError } from '../../src/shared/errors.js';

const msg = (performative: string, protocol?: string): AclMessage =>
  ({
    id: 'm1',
    performative,
    sender: 'buyer',
    receivers: ['a'],
    content: 'x',
    params: {},
    ...(protocol && { protocol }),
  }) as unknown as AclMessage;
const plain = { messaging: { protocols: [], ontologies: [], languages: [] } } as Pick<AgentDefinition, 'messaging'>;
const withDays = {
  messaging: {
    ...plain.messaging,
    bid_fields: { delivery_days: { type: 'integer', required: true, minimum: 0, maximum: 30 } },
  },
} as Pick<AgentDefinition, 'messaging'>;
const call = (name: string, args: Record<string, unknown>) => [{ id: 'c', name, arguments: args }];

describe('actsFor', () => {
  it('a cfp offers propose and refuse; a query-ref inform, refuse and failure; a request none', () => {
    expect(actsFor(msg('cfp'), plain).map((a) => a.name)).toEqual(['propose', 'refuse']);
    expect(actsFor(msg('cfp', 'fipa-english-auction'), plain).map((a) => a.name)).toEqual(['propose', 'refuse']);
    expect(actsFor(msg('query-ref'), plain).map((a) => a.name)).toEqual(['inform', 'refuse', 'failure']);
    expect(actsFor(msg('request'), plain)).toEqual([]);
    expect(actsFor(msg('accept-proposal'), plain)).toEqual([]);
  });

  it("the propose schema: price required, the standard fields, then the agent's own", () => {
    const propose = actsFor(msg('cfp'), withDays)[0]!;
    expect(propose.input_schema).toMatchObject({
      type: 'object',
      required: ['price', 'delivery_days'],
      additionalProperties: false,
    });
    expect(Object.keys(propose.input_schema.properties as object)).toEqual([
      'price',
      'currency',
      'terms',
      'valid_until',
      'delivery_days',
    ]);
    expect((propose.input_schema.properties as Record<string, unknown>).delivery_days).toEqual({
      type: 'integer',
      minimum: 0,
      maximum: 30,
    });
  });
});

describe('answerFromActs', () => {
  const acts = actsFor(msg('cfp'), withDays);
  const fails = (args: Record<string, unknown>, field: string) => {
    let err: unknown;
    try {
      answerFromActs('a', call('propose', args), acts, withDays);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CaxtonError);
    expect((err as CaxtonError).code).toBe('invalid_structured_output');
    expect((err as CaxtonError).message).toContain(`"propose" with ${field}`);
  };

  it('a propose call becomes a proposal whose content is its checked arguments (unknown ones dropped)', () => {
    expect(
      answerFromActs(
        'a',
        call('propose', { price: 9, currency: 'EUR', delivery_days: 2, valid_until: '2026-12-01T00:00:00Z', x: 1 }),
        acts,
        withDays,
      ),
    ).toEqual({
      performative: 'propose',
      content: { price: 9, currency: 'EUR', valid_until: '2026-12-01T00:00:00Z', delivery_days: 2 },
    });
    expect(answerFromActs('a', call('refuse', { reason: 'too far' }), acts, withDays)).toEqual({
      performative: 'refuse',
      content: 'too far',
    });
    expect(answerFromActs('a', call('http_client', {}), acts, withDays)).toBeUndefined();
    expect(answerFromActs('a', [], acts, withDays)).toBeUndefined();
  });

  it('arguments that do not fit are the model’s error, naming the field', () => {
    fails({ price: '9' }, 'price');
    fails({ price: 9 }, 'delivery_days');
    fails({ price: 9, delivery_days: 2.5 }, 'delivery_days');
    fails({ price: 9, delivery_days: 31 }, 'delivery_days');
    fails({ price: 9, delivery_days: 2, currency: 3 }, 'currency');
    fails({ price: 9, delivery_days: 2, valid_until: 'soon' }, 'valid_until');
    expect(() => answerFromActs('a', call('refuse', {}), acts, withDays)).toThrow(/"refuse" with reason/);
  });

  it('an inform answers a query-ref with its answer as the content', () => {
    const q = actsFor(msg('query-ref'), plain);
    expect(answerFromActs('a', call('inform', { answer: { capital: 'Paris' } }), q, plain)).toEqual({
      performative: 'inform',
      content: { capital: 'Paris' },
    });
  });
});
