import { describe, expect, it } from 'vitest';
import { MAX_SSE_EVENT_CHARS, SseParser, SseTooLarge } from '../../src/llm/sse-parser.js';
import { backoffDelay, MAX_RETRY_AFTER_MS, parseRetryAfter, retryDelay } from '../../src/llm/retry.js';

const enc = new TextEncoder();

function parseAll(chunks: (string | Uint8Array)[]): { event: string; data: string }[] {
  const p = new SseParser();
  const out = chunks.flatMap((c) => p.push(typeof c === 'string' ? enc.encode(c) : c));
  return [...out, ...p.end()];
}

describe('SseParser', () => {
  it('parses events, names, multi-line data and comments', () => {
    expect(parseAll([': keep-alive\n\nevent: ping\ndata: {}\n\ndata: line 1\ndata:line 2\n\n'])).toEqual([
      { event: 'ping', data: '{}' },
      { event: 'message', data: 'line 1\nline 2' },
    ]);
  });

  it('handles CRLF and CR line ends, including a CRLF split across chunks', () => {
    expect(parseAll(['data: a\r', '\n\r', '\ndata: b\r\rdata: c\n\n'])).toEqual([
      { event: 'message', data: 'a' },
      { event: 'message', data: 'b' },
      { event: 'message', data: 'c' },
    ]);
  });

  it('reassembles UTF-8 split inside a character, and flushes a final unterminated event', () => {
    const bytes = enc.encode('data: héllo ✓\n\ndata: tail');
    const chunks = Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1));
    expect(parseAll(chunks)).toEqual([
      { event: 'message', data: 'héllo ✓' },
      { event: 'message', data: 'tail' },
    ]);
  });
});

describe('SseParser on text', () => {
  it('joins a line that spans several chunks, and a CR ending one chunk with the LF starting the next', () => {
    const p = new SseParser();
    const out = [
      ...p.feed('event: del'),
      ...p.feed('ta\r'),
      ...p.feed('\ndata: {"a"'),
      ...p.feed(':'),
      ...p.feed('1}\r\n\r\ndata: x\n'),
      ...p.feed('\n'),
    ];
    expect([...out, ...p.end()]).toEqual([
      { event: 'delta', data: '{"a":1}' },
      { event: 'message', data: 'x' },
    ]);
  });

  it('refuses a line, or an event, longer than the bound', () => {
    const long = 'x'.repeat(MAX_SSE_EVENT_CHARS / 4);
    const p = new SseParser();
    p.feed('data: ');
    expect(() => {
      for (let i = 0; i < 5; i++) p.feed(long);
    }).toThrow(SseTooLarge);
    const q = new SseParser();
    expect(() => {
      for (let i = 0; i < 5; i++) q.feed(`data: ${long}\n`);
    }).toThrow(SseTooLarge);
  });
});

describe('retry policy', () => {
  it('parses Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter('0.5', now)).toBe(500);
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:00:10 GMT', now)).toBe(10_000);
    expect(parseRetryAfter('Tue, 31 Dec 2024 00:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });

  it('backs off exponentially with jitter, and caps Retry-After', () => {
    expect(backoffDelay(0, 100, () => 0)).toBe(50);
    expect(backoffDelay(0, 100, () => 0.999)).toBe(100);
    expect(backoffDelay(3, 100, () => 0.999)).toBe(800);
    for (let i = 0; i < 50; i++) {
      const d = backoffDelay(2, 100);
      expect(d).toBeGreaterThanOrEqual(200);
      expect(d).toBeLessThanOrEqual(400);
    }
    expect(retryDelay(0, 100, 3_600_000)).toBe(MAX_RETRY_AFTER_MS);
    expect(retryDelay(5, 100, 250)).toBe(250);
  });
});
