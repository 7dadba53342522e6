/**
 * The console's pure helpers, without a browser: the live tails' bounded buffer (Logs and Events
 * pages), the located JSON errors of the Tools page's argument fields, and the run page's reading
 * of a durable run's steps (where a resumed run left marks).
 */
import { describe, expect, it } from 'vitest';
import { entriesOf, type Step } from '../../console/src/pages/run-entries.js';
import { axisOf, spansOf } from '../../console/src/pages/run-spans.js';
import { firstJsonError, JsonTextError, parseJsonText } from '../../console/src/pages/json-text.js';
import { appendBounded, MAX_LINES } from '../../console/src/pages/tail-buffer.js';
import { EVENT_TYPES, FIPA_ACTS, RUN_ORIGINS, RUN_STATUSES } from '../../console/src/vocabulary.js';
import {
  RUN_ORIGINS as SERVER_RUN_ORIGINS,
  RUN_STATUSES as SERVER_RUN_STATUSES,
  type RunStep,
} from '../../src/execution/index.js';
import { PERFORMATIVES } from '../../src/messaging/index.js';
import { EVENT_TYPES as SERVER_EVENT_TYPES } from '../../src/observability/agent-events.js';

describe("the console's copies of the server's words", () => {
  it('offers exactly the performatives, event types, run states and run origins the server knows', () => {
    expect([...FIPA_ACTS].sort()).toEqual([...PERFORMATIVES].sort());
    expect([...EVENT_TYPES].sort()).toEqual([...SERVER_EVENT_TYPES].sort());
    expect([...RUN_STATUSES]).toEqual([...SERVER_RUN_STATUSES]);
    expect([...RUN_ORIGINS]).toEqual([...SERVER_RUN_ORIGINS]);
    expect(stepsAlike).toBe(true);
  });
});

// The console's copy of a run step is the server's: this fails to compile when either changes alone.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const stepsAlike: Same<Step, RunStep> = true;

describe('the live tail buffer', () => {
  it(`keeps the last ${MAX_LINES} lines and counts the ones it drops`, () => {
    const first = Array.from({ length: MAX_LINES - 1 }, (_, i) => i);
    expect(appendBounded(first, [MAX_LINES - 1])).toEqual({ lines: [...first, MAX_LINES - 1], dropped: 0 });
    const full = Array.from({ length: MAX_LINES }, (_, i) => i);
    const next = appendBounded(full, [MAX_LINES, MAX_LINES + 1, MAX_LINES + 2]);
    expect(next.dropped).toBe(3);
    expect(next.lines).toHaveLength(MAX_LINES);
    expect(next.lines[0]).toBe(3);
    expect(next.lines.at(-1)).toBe(MAX_LINES + 2);
    // A batch larger than the bound keeps its own newest lines.
    expect(appendBounded([1, 2], [3, 4, 5, 6], 3)).toEqual({ lines: [4, 5, 6], dropped: 3 });
  });
});

describe('located JSON errors', () => {
  const where = (text: string) => {
    try {
      parseJsonText(text);
    } catch (e) {
      expect(e).toBeInstanceOf(JsonTextError);
      const j = e as JsonTextError;
      return `${j.line}:${j.column} ${j.reason}`;
    }
    return 'valid';
  };

  it('parses valid JSON and says nothing is wrong with it', () => {
    expect(parseJsonText('{"a": [1, -2.5e3, true, null, "x\\"y"]}')).toEqual({ a: [1, -2500, true, null, 'x"y'] });
    for (const ok of ['0', '"s"', '[]', '{}', ' {"a": {"b": [{}]}} ', '-0.5'])
      expect(firstJsonError(ok), ok).toBeUndefined();
  });

  it('names the line and column of the first problem, and what was expected', () => {
    expect(where('{\n  "a": 1,\n  "b": \n}')).toBe('4:1 expected a value, found "}"');
    expect(where('{"a": 1,}')).toBe('1:9 expected a property name in double quotes, found "}"');
    expect(where('[1 2]')).toBe('1:4 expected "," or "]" in the array, found "2"');
    expect(where('{"a" 1}')).toBe('1:6 expected ":" after the property name, found "1"');
    expect(where("{'a': 1}")).toBe('1:2 expected a property name in double quotes, found "\'"');
    expect(where('{"a": 1')).toBe('1:8 expected "," or "}" in the object, found the end of the text');
    expect(where('{"a": "open')).toBe('1:7 the string is never closed');
    expect(where('{"a": "line\nbreak"}')).toBe('1:12 a control character (a line break?) inside a string');
    expect(where('{} x')).toBe('1:4 unexpected "x" after the JSON value');
    expect(where('')).toBe('1:1 expected a value, found the end of the text');
    expect(where('[01]')).toBe('1:3 expected "," or "]" in the array, found "1"');
  });
});

describe("the run page's reading of a durable run's steps", () => {
  const usage = { input_tokens: 1, output_tokens: 1, total_tokens: 2 };
  const reply = (calls: { id: string; name: string }[], content = '') => ({
    content,
    tool_calls: calls.map((c) => ({ ...c, arguments: { line: c.id } })),
    usage,
    finish_reason: calls.length > 0 ? 'tool_calls' : 'stop',
    provider: 'p',
    model: 'm',
    latency_ms: 5,
  });
  const steps: Step[] = [
    {
      kind: 'model',
      turn: 1,
      reply: reply([
        { id: 'a', name: 'journal.append' },
        { id: 'r', name: 'web.fetch' },
      ]),
    },
    { kind: 'tool_start', turn: 1, id: 'a', name: 'journal.append' },
    // The server died while both calls ran: the append is not run again, the fetch is.
    {
      kind: 'tool_end',
      turn: 1,
      id: 'a',
      name: 'journal.append',
      result: 'unknown',
      is_error: true,
      duration_ms: 0,
      interrupted: true,
    },
    { kind: 'tool_start', turn: 1, id: 'r', name: 'web.fetch' },
    { kind: 'tool_start', turn: 1, id: 'r', name: 'web.fetch' },
    { kind: 'tool_end', turn: 1, id: 'r', name: 'web.fetch', result: 'page', is_error: false, duration_ms: 3 },
    { kind: 'model', turn: 2, reply: reply([{ id: 'b', name: 'journal.append' }]) },
    { kind: 'approval_requested', turn: 2, id: 'b', name: 'journal.append', arguments: { line: 'b' }, at: 1_000 },
    { kind: 'approval', turn: 2, id: 'b', decision: 'approved', by: 'key:ops', at: 2_000 },
    { kind: 'tool_start', turn: 2, id: 'b', name: 'journal.append' },
    {
      kind: 'tool_end',
      turn: 2,
      id: 'b',
      name: 'journal.append',
      result: 'appended b',
      is_error: false,
      duration_ms: 1,
    },
    { kind: 'model', turn: 3, reply: reply([], 'done') },
  ];
  const approvals = [
    {
      turn: 2,
      call_id: 'b',
      tool: 'journal.append',
      arguments: { line: 'b' },
      requested_at: new Date(1_000).toISOString(),
      decision: 'approved' as const,
      decided_by: 'key:ops',
      decided_at: new Date(2_000).toISOString(),
      reason: null,
    },
  ];

  it('marks where the run resumed: an interrupted call, an idempotent call run again, a decision', () => {
    const { entries, unlocated } = entriesOf({ steps, approvals, resumes: 3 });
    expect(entries.map((e) => (e.kind === 'call' ? `call ${e.call.id}` : e.kind))).toEqual([
      'model',
      'call a',
      'resumed',
      'call r',
      'resumed',
      'model',
      'resumed',
      'call b',
      'model',
    ]);
    expect(unlocated).toBe(0);
    const calls = entries.flatMap((e) => (e.kind === 'call' ? [e.call] : []));
    // Each call with the arguments its model turn gave it and its end.
    expect(calls.map((c) => [c.id, c.arguments, c.starts, c.end?.interrupted ?? false])).toEqual([
      ['a', { line: 'a' }, 1, true],
      ['r', { line: 'r' }, 2, false],
      ['b', { line: 'b' }, 1, false],
    ]);
    expect(calls[2]!.approval?.decided_by).toBe('key:ops');
    const why = entries.flatMap((e) => (e.kind === 'resumed' ? [e.why] : []));
    expect(why[0]).toMatch(/journal\.append above was running when the server stopped.*not run again/);
    expect(why[1]).toMatch(/web\.fetch had started and not finished, and runs again/);
    expect(why[2]).toMatch(/^Waited for approval of journal\.append from .+ and resumed when key:ops approved it/);
  });

  it('counts the resumes the steps do not show (an interruption between two steps)', () => {
    expect(entriesOf({ steps, approvals, resumes: 5 }).unlocated).toBe(2);
    expect(entriesOf({ steps: steps.slice(0, 1), approvals: [], resumes: 1 }).unlocated).toBe(1);
  });

  describe('recorded with their times and resumes', () => {
    // A run killed while its append ran, resumed 30 s later; then a call waiting for a person.
    const timed: Step[] = [
      { kind: 'context', memory_context: 'likes tea', at: 1_000 },
      { ...steps[0]!, at: 1_005 },
      { kind: 'tool_start', turn: 1, id: 'a', name: 'journal.append', at: 1_005 },
      { kind: 'resumed', at: 31_005 },
      // An idempotent call's end is committed with the turn's other results: its own end is earlier.
      { ...(steps[2] as Extract<Step, { kind: 'tool_end' }>), at: 31_010 },
      {
        kind: 'tool_end',
        turn: 1,
        id: 'r',
        name: 'web.fetch',
        result: 'page',
        is_error: false,
        duration_ms: 3,
        at: 31_010,
      },
      { ...steps[6]!, at: 31_020 },
      { kind: 'approval_requested', turn: 2, id: 'b', name: 'journal.append', arguments: { line: 'b' }, at: 31_020 },
      { kind: 'approval', turn: 2, id: 'b', decision: 'denied', by: 'key:ops', at: 91_020, reason: 'no' },
      { kind: 'resumed', at: 91_021 },
      {
        kind: 'tool_end',
        turn: 2,
        id: 'b',
        name: 'journal.append',
        result: 'denied: no',
        is_error: true,
        duration_ms: 0,
        at: 91_030,
      },
      { ...steps[11]!, at: 91_040 },
    ];
    const denied = [{ ...approvals[0]!, decision: 'denied' as const, reason: 'no' }];

    it('places each resume with its gap, once, and says what each turn was sent', () => {
      const { entries, unlocated } = entriesOf({ steps: timed, approvals: denied, resumes: 2, request: 'Append a.' });
      expect(unlocated).toBe(0);
      expect(entries.map((e) => e.key)).toEqual([
        'context',
        'model-1',
        'call-1-a',
        'resume-1',
        'interrupted-1-a',
        'call-1-r',
        'model-2',
        'decision-2-b',
        'call-2-b',
        'model-3',
      ]);
      const why = entries.flatMap((e) => (e.kind === 'resumed' ? [e.why] : []));
      expect(why[0]).toMatch(/^Resumed after an interruption, 30\.0 s after its last recorded step/);
      expect(why[1]).toMatch(/^The call of journal\.append above was running when the server stopped/);
      const sent = entries.flatMap((e) => (e.kind === 'model' ? [e.sent] : []));
      expect(sent[0]).toEqual({
        first: true,
        memory: true,
        messages: [{ role: 'user', content: 'Append a.' }],
        unrecorded: [],
      });
      expect(sent[1]!.messages.map((m) => (m.role === 'tool' ? [m.name, m.content, m.is_error] : m.role))).toEqual([
        ['journal.append', 'unknown', true],
        ['web.fetch', 'page', false],
      ]);
      expect(sent[2]!.messages).toEqual([
        { role: 'tool', name: 'journal.append', call_id: 'b', content: 'denied: no', is_error: true },
      ]);
    });

    it('draws spans from the step times: a batch ends at its commit, a gap before the resume, the wait for a person', () => {
      const { spans, untimed } = spansOf(timed, 100_000);
      expect(untimed).toBe(0);
      expect(spans.map((s) => [s.key, s.kind, s.start, s.end])).toEqual([
        ['model-1', 'model', 1_000, 1_005],
        ['resume-1', 'gap', 1_005, 31_005],
        ['call-1-a', 'tool', 1_005, 1_005],
        ['call-1-r', 'tool', 31_007, 31_010],
        ['model-2', 'model', 31_015, 31_020],
        ['call-2-b', 'approval', 31_020, 91_020],
        ['call-2-b', 'tool', 91_030, 91_030],
        ['model-3', 'model', 91_035, 91_040],
      ]);
      expect(spans.find((s) => s.kind === 'approval')).toMatchObject({ open: false, failed: true });
      // A resume before any step: its gap begins when the run started.
      const early: Step[] = [{ kind: 'resumed', at: 5_000 }];
      expect(spansOf(early, 9_000, 1_000).spans.map((s) => [s.kind, s.start, s.end])).toEqual([['gap', 1_000, 5_000]]);
      expect(
        entriesOf({ steps: early, approvals: [], resumes: 1, created_at: new Date(1_000).toISOString() }).entries[0],
      ).toMatchObject({
        kind: 'resumed',
        why: expect.stringMatching(/^Resumed after an interruption, 4\.0 s after it started/) as unknown,
      });
      // The waits are drawn at a fixed width: the minute-long wait takes no more room than the 30 s gap.
      const at = axisOf(spans);
      expect(at(1_000)).toBe(0);
      expect(at(91_040)).toBe(100);
      expect(at(91_020) - at(31_020)).toBeCloseTo(at(31_005) - at(1_005));
      // Old rows have times only on their approvals: the wait is drawn, the other steps counted.
      const old = spansOf(steps, 0);
      expect(old.spans.map((s) => [s.kind, s.start, s.end])).toEqual([['approval', 1_000, 2_000]]);
      expect(old.untimed).toBe(steps.length - 2);
    });
  });
});
