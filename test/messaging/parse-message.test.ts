/**
 * parseMessage unit tests: what src/messaging/message-validate.ts promises, error by error
 * (CaxtonError 'invalid_message' naming the field, 'payload_too_large'), and the exact
 * normalised AclMessage it returns.
 */
import { describe, expect, it } from 'vitest';
import { CaxtonError } from '../../src/shared/errors.js';
import { parseMessage, type FieldIssue, type ParseMessageOptions } from '../../src/messaging/message-validate.js';

const NOW = Date.UTC(2026, 0, 2, 3, 4, 5, 6);
const OPTS: ParseMessageOptions = { maxMessageSize: 10_000, now: NOW };

function parse(body: unknown, opts: Partial<ParseMessageOptions> = {}, bodySize?: number) {
  return parseMessage(body, { ...OPTS, ...opts }, bodySize);
}

function fail(body: unknown, opts: Partial<ParseMessageOptions> = {}, bodySize?: number): CaxtonError {
  try {
    parse(body, opts, bodySize);
  } catch (e) {
    expect(e).toBeInstanceOf(CaxtonError);
    return e as CaxtonError;
  }
  throw new Error('expected parseMessage to throw');
}

function issues(e: CaxtonError): FieldIssue[] {
  return (e.details as { issues: FieldIssue[] }).issues;
}

/** The error is invalid_message (HTTP 400) and its first issue names `field`. */
function invalidField(body: unknown, field: string, opts: Partial<ParseMessageOptions> = {}): CaxtonError {
  const e = fail(body, opts);
  expect(e.code).toBe('invalid_message');
  expect(e.status).toBe(400);
  expect(issues(e)[0]!.field).toBe(field);
  expect(e.message.startsWith(`invalid message: ${field}: `)).toBe(true);
  return e;
}

const base = { performative: 'request', receiver: 'alice', content: 'hi' };

describe('parseMessage: the body', () => {
  for (const body of [null, [], 'text', 42, true]) {
    it(`rejects ${JSON.stringify(body)} as not an object`, () => {
      const e = invalidField(body, '(message)');
      expect(e.message).toBe('invalid message: (message): expected a JSON object');
      expect(issues(e)).toEqual([{ field: '(message)', message: 'expected a JSON object' }]);
    });
  }

  it('a missing performative names the field', () => {
    const e = invalidField({ receiver: 'alice', content: 'hi' }, 'performative');
    expect(issues(e)[0]!.message).toBe('expected one of the 22 FIPA acts, e.g. "request"');
  });

  it('no receiver and no capability names "receivers"', () => {
    const e = invalidField({ performative: 'request', content: 'hi' }, 'receivers');
    expect(issues(e)[0]!.message).toContain('needs a receiver');
    // An empty receivers array is no receiver either.
    invalidField({ performative: 'request', receivers: [], content: 'hi' }, 'receivers');
  });

  it('receivers and a capability together name "capability"', () => {
    const e = invalidField({ ...base, capability: 'math' }, 'capability');
    expect(issues(e)[0]!.message).toBe('give either receivers or a capability, not both');
    invalidField({ performative: 'request', receivers: ['a'], capability: 'math', content: 'x' }, 'capability');
  });

  it('missing content is required, except for cancel (then content is "")', () => {
    const e = invalidField({ performative: 'request', receiver: 'alice' }, 'content');
    expect(e.message).toBe('invalid message: content: is required');
    const m = parse({ performative: 'cancel', receiver: 'alice' });
    expect(m.content).toBe('');
    expect(m.performative).toBe('cancel');
  });

  it('content may be any JSON value', () => {
    for (const content of ['', 0, false, null, [1, 'a'], { a: { b: [true] } }])
      expect(parse({ ...base, content }).content).toEqual(content);
  });

  it('field values of the wrong shape name their path', () => {
    invalidField({ ...base, id: '-bad' }, 'id');
    invalidField({ ...base, receiver: 'two  spaces' }, 'receiver');
    invalidField({ ...base, receiver: undefined, receivers: ['ok', 'not ok!'] }, 'receivers.1');
    invalidField({ performative: 'request', capability: 'Data Analysis', content: 'x' }, 'capability');
    invalidField({ ...base, ontology: '' }, 'ontology');
    invalidField({ ...base, language: 'x'.repeat(257) }, 'language');
    invalidField({ ...base, trace_context: { traceparent: 'nope' } }, 'trace_context.traceparent');
    invalidField({ ...base, reply_by: 30 }, 'reply_by');
  });

  it('several issues: the message names the first and counts the rest', () => {
    const e = fail({ ...base, id: '-bad', conversation_id: '-bad', reply_with: '-bad' });
    expect(issues(e).map((i) => i.field)).toEqual(['id', 'conversation_id', 'reply_with']);
    expect(e.message).toMatch(/^invalid message: id: .* \(and 2 more\)$/);
    const one = fail({ ...base, id: '-bad' });
    expect(one.message).not.toContain('more)');
  });
});

describe('parseMessage: performative and protocol', () => {
  it('an unknown performative suggests the closest act and lists all 22', () => {
    const e = invalidField({ ...base, performative: 'requets' }, 'performative');
    expect(issues(e)[0]!.message).toMatch(
      /^unknown performative "requets"; did you mean "request"\?; expected one of: accept-proposal, agree, .*, subscribe$/,
    );
    const far = invalidField({ ...base, performative: 'xyzzyplugh' }, 'performative');
    expect(issues(far)[0]!.message).not.toContain('did you mean');
  });

  it('performatives are normalised: case, underscores and spaces around', () => {
    expect(parse({ ...base, performative: 'QUERY_IF' }).performative).toBe('query-if');
    expect(parse({ ...base, performative: ' Inform-Ref ' }).performative).toBe('inform-ref');
  });

  it('the protocol is one of the four FIPA protocols, case-insensitive, stored lower case', () => {
    expect(parse({ ...base, protocol: 'FIPA-Query' }).protocol).toBe('fipa-query');
    const e = invalidField({ ...base, protocol: 'fipa-auction' }, 'protocol');
    expect(issues(e)[0]!.message).toBe(
      'unknown protocol "fipa-auction"; expected one of: fipa-request, fipa-query, fipa-contract-net, fipa-subscribe, fipa-english-auction, fipa-dutch-auction, fipa-iterated-contract-net',
    );
  });

  it("a first message without a protocol gets its act's default; a reply (in_reply_to) does not", () => {
    expect(parse({ ...base, performative: 'request' }).protocol).toBe('fipa-request');
    expect(parse({ ...base, performative: 'query-ref' }).protocol).toBe('fipa-query');
    expect(parse({ ...base, performative: 'cfp' }).protocol).toBe('fipa-contract-net');
    expect(parse({ ...base, performative: 'subscribe' }).protocol).toBe('fipa-subscribe');
    expect('protocol' in parse({ ...base, performative: 'inform' })).toBe(false);
    expect('protocol' in parse({ ...base, performative: 'request', in_reply_to: 'r1' })).toBe(false);
    // An explicit protocol wins over the default, reply or not.
    expect(parse({ ...base, performative: 'request', protocol: 'fipa-query' }).protocol).toBe('fipa-query');
    expect(parse({ ...base, performative: 'inform', in_reply_to: 'r1', protocol: 'fipa-request' }).protocol).toBe(
      'fipa-request',
    );
  });
});

describe('parseMessage: unknown parameters and X- parameters', () => {
  it('an unknown parameter is rejected with a suggestion and the X- hint', () => {
    const e = invalidField({ ...base, recevier: 'bob' }, 'recevier');
    expect(issues(e)[0]!.message).toBe(
      'unknown parameter; did you mean "receiver"? (user-defined parameters start with "X-")',
    );
    const far = invalidField({ ...base, zzzzzzzzzz: 1 }, 'zzzzzzzzzz');
    expect(issues(far)[0]!.message).toBe('unknown parameter (user-defined parameters start with "X-")');
  });

  it('every unknown parameter is listed', () => {
    const e = fail({ ...base, foo: 1, bar: 2 });
    expect(issues(e).map((i) => i.field)).toEqual(['foo', 'bar']);
    expect(e.message).toContain('(and 1 more)');
  });

  it('a very long unknown key is named by its first 100 characters and its length', () => {
    const k = 'k'.repeat(150);
    const e = fail({ ...base, [k]: 1 });
    expect(issues(e)[0]!.field).toBe(`${'k'.repeat(100)}… (150 characters)`);
    const k100 = 'q'.repeat(100);
    expect(issues(fail({ ...base, [k100]: 1 }))[0]!.field).toBe(k100);
  });

  it("FIPA's hyphenated spellings are accepted", () => {
    const m = parse({
      ...base,
      'conversation-id': 'c-1',
      'reply-with': 'rw',
      'in-reply-to': 'irt',
      'reply-to': 'carol',
    });
    expect(m.conversation_id).toBe('c-1');
    expect(m.reply_with).toBe('rw');
    expect(m.in_reply_to).toBe('irt');
    expect(m.reply_to).toEqual(['carol']);
  });

  it('top-level X- parameters (either case of the x) join params, and win over params', () => {
    const m = parse({ ...base, 'X-Trace': 't', 'x-lower': 'l', params: { 'X-Trace': 'from-params', 'X-Other': 'o' } });
    expect(m.params).toEqual({ 'X-Trace': 't', 'X-lower': 'l', 'X-Other': 'o' });
  });

  it('X- parameter values must be strings; names must follow the X- pattern', () => {
    const e = invalidField({ ...base, 'X-n': 5 }, 'X-n');
    expect(issues(e)[0]!.message).toBe('expected a string value');
    invalidField({ ...base, params: { 'X-n': 5 } }, 'params.X-n');
    const bad = invalidField({ ...base, params: { Custom: 'v' } }, 'params.Custom');
    expect(issues(bad)[0]!.message).toContain('start with "X-"');
    invalidField({ ...base, 'X-': 'v' }, 'params.X-');
    invalidField({ ...base, params: { [`X-${'a'.repeat(65)}`]: 'v' } }, `params.X-${'a'.repeat(65)}`);
    expect(parse({ ...base, params: { [`X-${'a'.repeat(64)}`]: 'v' } }).params).toEqual({
      [`X-${'a'.repeat(64)}`]: 'v',
    });
  });
});

describe('parseMessage: size', () => {
  it('a body over max_message_size is payload_too_large (413) with size and limit, before any field check', () => {
    const body = { performative: 'nonsense', content: 'x'.repeat(200) };
    const size = Buffer.byteLength(JSON.stringify(body));
    const e = fail(body, { maxMessageSize: size - 1 });
    expect(e.code).toBe('payload_too_large');
    expect(e.status).toBe(413);
    expect(e.details).toEqual({ size, limit: size - 1, field: 'content' });
    expect(e.message).toBe(
      `the message is ${size} bytes; the server accepts at most ${size - 1} ([messaging] max_message_size)`,
    );
  });

  it('a body of exactly max_message_size is accepted', () => {
    const body = { ...base, content: 'é'.repeat(50) };
    const size = Buffer.byteLength(JSON.stringify(body));
    expect(parse(body, { maxMessageSize: size }).content).toBe('é'.repeat(50));
    expect(fail(body, { maxMessageSize: size - 1 }).code).toBe('payload_too_large');
  });

  it('counts bytes, not characters', () => {
    const body = { ...base, content: '€'.repeat(10) };
    const chars = JSON.stringify(body).length;
    expect(fail(body, { maxMessageSize: chars }).code).toBe('payload_too_large');
  });

  it('a given body size (the raw request) is used instead of re-serialising', () => {
    expect(fail(base, { maxMessageSize: 1000 }, 1001).code).toBe('payload_too_large');
    expect((fail(base, { maxMessageSize: 1000 }, 1001).details as { size: number }).size).toBe(1001);
    expect(parse(base, { maxMessageSize: 10 }, 10).content).toBe('hi');
  });
});

describe('parseMessage: reply_by', () => {
  it('a duration is relative to now', () => {
    expect(parse({ ...base, reply_by: '30s' }).reply_by).toBe(new Date(NOW + 30_000).toISOString());
    expect(parse({ ...base, reply_by: '2m' }).reply_by).toBe(new Date(NOW + 120_000).toISOString());
    expect(parse({ ...base, reply_by: '1.5h' }).reply_by).toBe(new Date(NOW + 5_400_000).toISOString());
  });

  it('an ISO 8601 time is normalised to UTC with milliseconds', () => {
    expect(parse({ ...base, reply_by: '2026-05-01T12:00:00+02:00' }).reply_by).toBe('2026-05-01T10:00:00.000Z');
  });

  it('neither a time nor a duration names reply_by', () => {
    for (const reply_by of ['soon', '10x', 'tomorrow at noon', '']) {
      const e = invalidField({ ...base, reply_by }, 'reply_by');
      expect(issues(e)[0]!.message).toBe(`"${reply_by}" is neither an ISO 8601 time nor a duration such as "30s"`);
    }
  });

  it('the range ends at ±8.64e15 ms: the limit itself is accepted, beyond it is out of range', () => {
    expect(parse({ ...base, reply_by: '100000000d' }, { now: 0 }).reply_by).toBe('+275760-09-13T00:00:00.000Z');
    const e = invalidField({ ...base, reply_by: '100000000d' }, 'reply_by', { now: 1 });
    expect(issues(e)[0]!.message).toBe(
      '"100000000d" is out of range: use a time before the year 275760 or a shorter duration',
    );
    invalidField({ ...base, reply_by: '99999999999d' }, 'reply_by');
  });

  it('a cfp without reply_by gets the default deadline; other acts and explicit reply_by do not', () => {
    expect(parse({ ...base, performative: 'cfp' }, { defaultCfpDeadlineMs: 60_000 }).reply_by).toBe(
      new Date(NOW + 60_000).toISOString(),
    );
    expect(parse({ ...base, performative: 'cfp', reply_by: '5s' }, { defaultCfpDeadlineMs: 60_000 }).reply_by).toBe(
      new Date(NOW + 5_000).toISOString(),
    );
    expect('reply_by' in parse({ ...base, performative: 'request' }, { defaultCfpDeadlineMs: 60_000 })).toBe(false);
    expect('reply_by' in parse({ ...base, performative: 'cfp' })).toBe(false);
  });
});

describe('parseMessage: the normalised message', () => {
  it('a minimal message gets generated ids, the default sender, the timestamp and empty params and chain', () => {
    const m = parse({ performative: 'inform', receiver: 'alice', content: 'hi' });
    expect(m).toEqual({
      id: expect.stringMatching(/^msg_[0-9a-f]{34}$/),
      performative: 'inform',
      sender: 'user',
      receivers: ['alice'],
      content: 'hi',
      conversation_id: expect.stringMatching(/^conv_[0-9a-f]{34}$/),
      params: {},
      timestamp: '2026-01-02T03:04:05.006Z',
      chain: [],
    });
    // Absent optionals are absent keys, not undefined values.
    expect(Object.keys(m).sort()).toEqual([
      'chain',
      'content',
      'conversation_id',
      'id',
      'params',
      'performative',
      'receivers',
      'sender',
      'timestamp',
    ]);
  });

  it('generated ids are unique and sort in the order they were made', () => {
    const a = parse(base);
    const b = parse(base);
    expect(a.id).not.toBe(b.id);
    expect(a.conversation_id).not.toBe(b.conversation_id);
    expect(a.id < b.id).toBe(true);
  });

  it('the sender is the body\'s, else the default sender, else "user"', () => {
    expect(parse({ ...base, sender: 'bob' }, { defaultSender: 'svc' }).sender).toBe('bob');
    expect(parse(base, { defaultSender: 'svc' }).sender).toBe('svc');
    expect(parse(base).sender).toBe('user');
  });

  it('receivers: the array first, then receiver, duplicates removed keeping the first', () => {
    expect(parse({ ...base, receiver: 'alice', receivers: ['carol', 'alice', 'bob', 'carol'] }).receivers).toEqual([
      'carol',
      'alice',
      'bob',
    ]);
    expect(parse({ performative: 'request', receivers: ['x'], receiver: 'y', content: 1 }).receivers).toEqual([
      'x',
      'y',
    ]);
  });

  it('a capability-addressed message has no receivers and keeps the capability', () => {
    const m = parse({ performative: 'request', capability: 'data-analysis', content: 'x' });
    expect(m.receivers).toEqual([]);
    expect(m.capability).toBe('data-analysis');
  });

  it('every given parameter is carried over as given', () => {
    const body = {
      id: 'm-1',
      performative: 'propose',
      sender: 'Code Reviewer',
      receivers: ['alice'],
      reply_to: ['bob', 'carol'],
      content: { price: 3 },
      language: 'json',
      encoding: 'utf-8',
      ontology: 'market',
      protocol: 'fipa-contract-net',
      conversation_id: 'c:1',
      reply_with: 'w1',
      in_reply_to: 'r0',
      reply_by: '2030-01-01T00:00:00Z',
      params: { 'X-a': 'b' },
      trace_context: { traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`, tracestate: 'k=v' },
    };
    expect(parse(body)).toEqual({
      ...body,
      reply_by: '2030-01-01T00:00:00.000Z',
      timestamp: '2026-01-02T03:04:05.006Z',
      chain: [],
    });
  });

  it('reply_to as one name becomes a one-element array', () => {
    expect(parse({ ...base, reply_to: 'bob' }).reply_to).toEqual(['bob']);
  });

  it('without opts.now the timestamp is the current time', () => {
    const before = Date.now();
    const m = parseMessage(base, { maxMessageSize: 10_000 });
    const t = Date.parse(m.timestamp);
    expect(t).toBeGreaterThanOrEqual(before);
    expect(t).toBeLessThanOrEqual(Date.now());
  });
});
