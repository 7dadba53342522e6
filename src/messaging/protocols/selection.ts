import type { AclMessage, Content } from '../message.js';

export type SelectRule = 'lowest' | 'highest' | 'first';

/** One key a rule ranks on: the field, and whether less or more is better. */
export interface SelectKey {
  field: string;
  order: 'lowest' | 'highest';
}

export interface Selection {
  rule: SelectRule;
  /** The first key's field (the only one of a single-key rule). */
  field: string;
  /** Keys that break ties on the first, in order (`lowest price, then fewest delivery_days`). */
  then?: SelectKey[];
}

/** How a bid's value was found: a field of structured content, or a number read from text. */
export type ValueSource = 'typed' | 'text';

export interface ReadValue {
  value: number;
  source: ValueSource;
  /** For a value read from text: the words it was read from. */
  read_from?: string;
}

const NUMBER_RE = /-?\d+(?:\.\d+)?/;
const LESS = new Set(['lowest', 'least', 'fewest', 'smallest', 'min']);
const MORE = new Set(['highest', 'most', 'largest', 'max', 'greatest']);
/** Fields that are amounts of money: in text, a number written with a currency is read first. */
const MONEY_FIELDS = new Set(['price', 'cost', 'amount', 'fee', 'bid', 'total']);
const CURRENCY = '(?:€|\\$|£|¥|EUR|USD|GBP|CHF|JPY|euros?|dollars?|pounds?)';
const MONEY_RE = new RegExp(
  `(?:${CURRENCY}\\s?(-?\\d+(?:[.,]\\d+)?))|(?:(-?\\d+(?:[.,]\\d+)?)\\s?${CURRENCY}(?![A-Za-z]))`,
  'i',
);

/**
 * The number a proposal offers for `field`, and how it was found: the field of a JSON object
 * (typed: what a model-driven agent's `propose` tool call carries), else, in text, "field: 12"
 * (or "field = 12"), then — for a money field — a number written with a currency ("12 EUR",
 * "$12"), then the first number. Undefined when there is none.
 */
export function readValue(content: Content, field: string): ReadValue | undefined {
  if (typeof content === 'object' && content !== null && !Array.isArray(content)) {
    const v = (content as Record<string, Content>)[field];
    if (typeof v === 'number' && Number.isFinite(v)) return { value: v, source: 'typed' };
    if (typeof v === 'string' && NUMBER_RE.test(v))
      return { value: Number(NUMBER_RE.exec(v)![0]), source: 'text', read_from: v.slice(0, 80) };
    return undefined;
  }
  const text = typeof content === 'string' ? content : JSON.stringify(content);
  if (text === undefined) return undefined;
  const escaped = field.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  // Up to three separators between the name and the number, but never its minus sign.
  const named = new RegExp(`${escaped}[^\\w-]{0,3}\\s*[:=]?\\s*\\$?\\s*(-?\\d+(?:\\.\\d+)?)`, 'i').exec(text);
  if (named) return { value: Number(named[1]), source: 'text', read_from: named[0] };
  if (MONEY_FIELDS.has(field.toLowerCase())) {
    const money = MONEY_RE.exec(text);
    if (money) return { value: Number((money[1] ?? money[2])!.replace(',', '.')), source: 'text', read_from: money[0] };
  }
  const any = NUMBER_RE.exec(text);
  return any ? { value: Number(any[0]), source: 'text', read_from: any[0] } : undefined;
}

/** The number a proposal offers for `field` (readValue without how it was found). */
export function proposalValue(content: Content, field: string): number | undefined {
  return readValue(content, field)?.value;
}

/**
 * Parses a selection rule: one word (`lowest`, `highest`, `first`) ranking on `field`, or keys
 * separated by commas or "then", each an order word and a field: `lowest price, then fewest
 * delivery_days`. Undefined when it is not one.
 */
export function parseSelect(text: string, field: string): Selection | undefined {
  const parts = text
    .trim()
    .toLowerCase()
    .split(/\s*,\s*(?:then\s+)?|\s+then\s+/)
    .filter((p) => p !== '');
  if (parts.length === 0) return undefined;
  if (parts.length === 1 && parts[0] === 'first') return { rule: 'first', field };
  const keys: SelectKey[] = [];
  for (const [i, part] of parts.entries()) {
    const [word, name, ...rest] = part.split(/\s+/);
    if (rest.length > 0 || word === undefined) return undefined;
    const order = LESS.has(word) ? 'lowest' : MORE.has(word) ? 'highest' : undefined;
    if (order === undefined) return undefined;
    if (name === undefined && i > 0) return undefined;
    if (name !== undefined && !/^[a-z_][\w.-]{0,63}$/.test(name)) return undefined;
    keys.push({ field: name ?? field, order });
  }
  const [head, ...then] = keys;
  return { rule: head!.order, field: head!.field, ...(then.length > 0 && { then }) };
}

/** The selection rule of a cfp: its X-select / X-select-field parameters, else the defaults. */
export function selectionOf(cfp: AclMessage, defaults: Selection): Selection {
  const field = cfp.params['X-select-field'] ?? defaults.field;
  const given = cfp.params['X-select'];
  if (given !== undefined) {
    const parsed = parseSelect(given, field);
    if (parsed) return parsed;
  }
  return { ...defaults, field };
}

/** The rule in words, as it is shown: `lowest price, then lowest delivery_days`. */
export function ruleText(sel: Selection): string {
  if (sel.rule === 'first') return 'first';
  return keysOf(sel)
    .map((k) => `${k.order} ${k.field}`)
    .join(', then ');
}

/** The keys a rule ranks on, the first one first (none for `first`). */
export function keysOf(sel: Selection): SelectKey[] {
  if (sel.rule === 'first') return [];
  return [{ field: sel.field, order: sel.rule }, ...(sel.then ?? [])];
}

/** One proposal as a rule ranks it. */
export interface RankedBid {
  message: AclMessage;
  /** The value of each key's field (absent: the proposal offers none). */
  values: Record<string, ReadValue>;
}

/**
 * Ranks proposals by the rule: best first, key by key (a proposal without a key's value ranks
 * below those with one), ties to the earlier proposal; `first` keeps the order received.
 */
export function rankProposals(proposals: readonly AclMessage[], sel: Selection): RankedBid[] {
  const keys = keysOf(sel);
  const ranked = proposals.map((message, i) => {
    const values: Record<string, ReadValue> = {};
    for (const k of keys) {
      const v = readValue(message.content, k.field);
      if (v !== undefined) values[k.field] = v;
    }
    return { message, values, i };
  });
  ranked.sort((a, b) => {
    for (const k of keys) {
      const x = a.values[k.field]?.value;
      const y = b.values[k.field]?.value;
      if (x === y) continue;
      if (x === undefined) return 1;
      if (y === undefined) return -1;
      return k.order === 'lowest' ? x - y : y - x;
    }
    return a.i - b.i;
  });
  return ranked.map(({ message, values }) => ({ message, values }));
}

/**
 * Picks the winning proposal: the best by the rule's keys (proposals without the first key's
 * value rank last), or the first received; ties go to the earlier proposal.
 */
export function chooseWinner(proposals: readonly AclMessage[], sel: Selection): AclMessage | undefined {
  if (proposals.length === 0) return undefined;
  return rankProposals(proposals, sel)[0]!.message;
}
