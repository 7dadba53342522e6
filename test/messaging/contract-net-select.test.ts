/**
 * Contract Net's award rules as pure functions: the value a proposal offers (JSON field, named
 * number in text, first number), the cfp's selection parameters, and the winner (lowest, highest,
 * first; ties to the earlier proposal; proposals without a value rank last). Written against the
 * mutants Stryker left alive in src/messaging/contract-net.ts (docs/mutation.md; the module is
 * src/messaging/protocols/selection.ts, ADR 0032).
 */
import { describe, expect, it } from 'vitest';
import {
  chooseWinner,
  parseSelect,
  proposalValue,
  rankProposals,
  readValue,
  ruleText,
  selectionOf,
  type Selection,
} from '../../src/messaging/protocols/selection.js';
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

describe('readValue: how a bid is read', () => {
  it('a field of structured content is typed; anything read from prose says where it was read', () => {
    expect(readValue({ price: 9, currency: 'EUR' }, 'price')).toEqual({ value: 9, source: 'typed' });
    expect(readValue({ price: 'EUR 12.5' }, 'price')).toEqual({ value: 12.5, source: 'text', read_from: 'EUR 12.5' });
    expect(readValue('delivery in 3 days, price: 42 EUR', 'price')).toEqual({
      value: 42,
      source: 'text',
      read_from: 'price: 42',
    });
  });

  it('for a money field, a number written with a currency comes before the first number', () => {
    expect(readValue('For 3 boxes I can do it for 12 EUR', 'price')).toMatchObject({ value: 12, read_from: '12 EUR' });
    expect(readValue('Sure, 9 EUR, delivered in 2 days', 'price')).toMatchObject({ value: 9, read_from: '9 EUR' });
    expect(readValue('3 boxes for $7.50', 'price')).toMatchObject({ value: 7.5, read_from: '$7.50' });
    expect(readValue('3 boxes, 8,25 euros', 'price')).toMatchObject({ value: 8.25 });
    // Not a money field: the first number.
    expect(readValue('For 3 boxes I can do it for 12 EUR', 'days')).toMatchObject({ value: 3 });
    // A currency word must stand alone: "12 EURO-pallets" is no price.
    expect(readValue('2 of 12 EURx', 'price')).toMatchObject({ value: 2 });
  });

  it('the two shipping bids of the issue: the 9 wins by lowest price', () => {
    const first = proposal('first', 'For 3 boxes I can do it for 12 EUR');
    const second = proposal('second', 'Sure, 9 EUR, delivered in 2 days');
    expect(chooseWinner([first, second], { rule: 'lowest', field: 'price' })!.sender).toBe('second');
  });
});

describe('parseSelect and rankProposals: rules with several keys', () => {
  it('parses one word with the field given, or keys joined by commas and "then"', () => {
    expect(parseSelect('lowest', 'price')).toEqual({ rule: 'lowest', field: 'price' });
    expect(parseSelect('first', 'price')).toEqual({ rule: 'first', field: 'price' });
    expect(parseSelect('lowest price, then fewest delivery_days', 'x')).toEqual({
      rule: 'lowest',
      field: 'price',
      then: [{ field: 'delivery_days', order: 'lowest' }],
    });
    expect(parseSelect('Highest quality then lowest price', 'x')).toEqual({
      rule: 'highest',
      field: 'quality',
      then: [{ field: 'price', order: 'lowest' }],
    });
    expect(parseSelect('cheapest', 'price')).toBeUndefined();
    expect(parseSelect('lowest price, then', 'price')).toBeUndefined();
    expect(parseSelect('lowest price, fewest', 'price')).toBeUndefined();
    expect(parseSelect('lowest price please', 'price')).toBeUndefined();
    expect(parseSelect('', 'price')).toBeUndefined();
    expect(ruleText(parseSelect('lowest price, then most stars', 'x')!)).toBe('lowest price, then highest stars');
  });

  it('ranks key by key; a bid without a value ranks below those with one; ties keep the order received', () => {
    const a = proposal('a', { price: 9, days: 5 });
    const b = proposal('b', { price: 9, days: 2 });
    const c = proposal('c', { price: 7 });
    const d = proposal('d', { price: 9, days: 2 });
    const e = proposal('e', 'no figure');
    const sel = parseSelect('lowest price, then fewest days', 'price')!;
    expect(rankProposals([e, a, b, c, d], sel).map((r) => r.message.sender)).toEqual(['c', 'b', 'd', 'a', 'e']);
    expect(rankProposals([a, b], sel)[0]!.values).toEqual({
      price: { value: 9, source: 'typed' },
      days: { value: 2, source: 'typed' },
    });
    expect(chooseWinner([a, b, d], { rule: 'highest', field: 'days' })!.sender).toBe('a');
  });
});
