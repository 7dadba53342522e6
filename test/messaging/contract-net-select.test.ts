/**
 * Contract Net's award rules as pure functions: the value a proposal offers (JSON field, named
 * number in text, first number), the cfp's selection parameters, and the winner (lowest, highest,
 * first; ties to the earlier proposal; proposals without a value rank last). Written against the
 * mutants Stryker left alive in src/messaging/contract-net.ts (docs/mutation.md; the module is
 * src/messaging/protocols/selection.ts, ADR 0032).
 */
import { describe, expect, it } from 'vitest';
import { chooseWinner, proposalValue, selectionOf, type Selection } from '../../src/messaging/protocols/selection.js';
import type { AclMessage, Content } from '../../src/messaging/message.js';

const proposal = (sender: string, content: Content): AclMessage =>
  ({
    id: `m-${sender}`,
    performative: 'propose',
    sender,
    receivers: ['client'],
    content,
    params: {},
    timestamp: '2026-01-01T00:00:00Z',
    chain: [],
  }) as unknown as AclMessage;

describe('proposalValue', () => {
  it('reads the field of a JSON object: a number, or the first number in a string', () => {
    expect(proposalValue({ price: 12, days: 3 }, 'price')).toBe(12);
    expect(proposalValue({ price: 'EUR 12.5 incl. tax' }, 'price')).toBe(12.5);
    expect(proposalValue({ price: '-3' }, 'price')).toBe(-3);
    expect(proposalValue({ price: 'on request' }, 'price')).toBeUndefined();
    expect(proposalValue({ cost: 9 }, 'price')).toBeUndefined();
    expect(proposalValue({ price: true }, 'price')).toBeUndefined();
  });

  it('reads "field: N" in text before any other number, with decimals and signs, case-insensitively', () => {
    expect(proposalValue('delivery in 3 days, price: 42 EUR', 'price')).toBe(42);
    expect(proposalValue('Price = 17.25', 'price')).toBe(17.25);
    expect(proposalValue('PRICE $ 8', 'price')).toBe(8);
    expect(proposalValue('discount: -4.5 per box', 'discount')).toBe(-4.5);
    expect(proposalValue('price: 1234567', 'price')).toBe(1234567);
    // The name is found in any case, before an earlier number.
    expect(proposalValue('days: 3, PRICE: 8', 'price')).toBe(8);
  });

  it('falls back to the first number in the text, and to none', () => {
    expect(proposalValue('I can do it for 30 or 40', 'price')).toBe(30);
    expect(proposalValue('I can do it for 2.75', 'price')).toBe(2.75);
    expect(proposalValue('no numbers here', 'price')).toBeUndefined();
  });

  it('treats regular-expression characters in the field name literally', () => {
    expect(proposalValue('a.b: 5, axb: 9', 'a.b')).toBe(5);
    expect(proposalValue('axb: 9, a.b: 5', 'a.b')).toBe(5);
  });

  it('reads arrays and other JSON as text (first number)', () => {
    expect(proposalValue([7, 3] as unknown as Content, 'price')).toBe(7);
    expect(proposalValue(null as unknown as Content, 'price')).toBeUndefined();
  });
});

describe('selectionOf', () => {
  const defaults: Selection = { rule: 'lowest', field: 'price' };
  const cfp = (params: Record<string, string>) => ({ params }) as unknown as AclMessage;
  it('takes X-select (any case) and X-select-field, else the defaults', () => {
    expect(selectionOf(cfp({ 'X-select': 'HIGHEST', 'X-select-field': 'days' }), defaults)).toEqual({
      rule: 'highest',
      field: 'days',
    });
    expect(selectionOf(cfp({ 'X-select': 'lowest' }), { rule: 'highest', field: 'cost' })).toEqual({
      rule: 'lowest',
      field: 'cost',
    });
    expect(selectionOf(cfp({ 'X-select': 'first' }), defaults)).toEqual({ rule: 'first', field: 'price' });
    expect(selectionOf(cfp({ 'X-select': 'cheapest' }), { rule: 'highest', field: 'price' })).toEqual({
      rule: 'highest',
      field: 'price',
    });
    expect(selectionOf(cfp({}), defaults)).toEqual(defaults);
  });
});

describe('chooseWinner', () => {
  const a = proposal('a', 'price: 30');
  const b = proposal('b', 'price: 12');
  const c = proposal('c', 'price: 21');
  it('lowest, highest and first', () => {
    expect(chooseWinner([a, b, c], { rule: 'lowest', field: 'price' })).toBe(b);
    expect(chooseWinner([a, b, c], { rule: 'highest', field: 'price' })).toBe(a);
    expect(chooseWinner([b, c, a], { rule: 'highest', field: 'price' })).toBe(a);
    expect(chooseWinner([c, a, b], { rule: 'lowest', field: 'price' })).toBe(b);
    expect(chooseWinner([c, a, b], { rule: 'first', field: 'price' })).toBe(c);
  });

  it('no proposals: no winner', () => {
    expect(chooseWinner([], { rule: 'lowest', field: 'price' })).toBeUndefined();
    expect(chooseWinner([], { rule: 'first', field: 'price' })).toBeUndefined();
  });

  it('ties go to the earlier proposal, for lowest and for highest', () => {
    const b2 = proposal('b2', 'price: 12');
    const a2 = proposal('a2', 'price: 30');
    expect(chooseWinner([b, b2], { rule: 'lowest', field: 'price' })).toBe(b);
    expect(chooseWinner([a, a2], { rule: 'highest', field: 'price' })).toBe(a);
  });

  it('proposals without a value rank last; when none has one, the first wins', () => {
    const vague = proposal('vague', 'whatever you like');
    expect(chooseWinner([vague, c], { rule: 'lowest', field: 'price' })).toBe(c);
    expect(chooseWinner([vague, c], { rule: 'highest', field: 'price' })).toBe(c);
    const vague2 = proposal('vague2', 'sure');
    expect(chooseWinner([vague, vague2], { rule: 'lowest', field: 'price' })).toBe(vague);
  });
});
