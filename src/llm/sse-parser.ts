/**
 * A Server-Sent Events parser (the subset both providers use): `event:` and `data:` fields,
 * multi-line data joined with "\n", `:` comments, LF / CRLF / CR line ends, and UTF-8 split
 * across chunks. An event is dispatched at a blank line; a trailing event without one is
 * dispatched at the end of the stream.
 *
 * Each chunk is decoded once (a character split across two chunks is kept whole), scanned once,
 * and its lines sliced from that text; a line that spans chunks is kept in pieces and joined
 * once, when it ends, so a long line costs no more than a short one per character.
 */

import { StringDecoder } from 'node:string_decoder';

export interface SseEvent {
  /** The `event:` field; "message" when absent. */
  event: string;
  data: string;
}

/** The longest line, and the most data one event may gather, before the stream is refused. */
export const MAX_SSE_EVENT_CHARS = 8 * 1024 * 1024;

/** Thrown when a line or an event passes MAX_SSE_EVENT_CHARS. */
export class SseTooLarge extends Error {
  constructor() {
    super(`an event of the stream is longer than ${MAX_SSE_EVENT_CHARS} characters`);
  }
}

const LF = 10;

export class SseParser {
  private decoder: StringDecoder | undefined;
  /** The pieces of an unfinished last line, from one or more chunks, and their length. */
  private rest: string[] = [];
  private restChars = 0;
  private event = '';
  private data: string[] = [];
  private dataChars = 0;
  /** The previous chunk ended in "\r": a "\n" starting the next one belongs to it. */
  private pendingCr = false;

  /** Feeds a chunk of bytes; returns the events it completed. */
  push(chunk: Uint8Array): SseEvent[] {
    this.decoder ??= new StringDecoder('utf8');
    return this.feed(this.decoder.write(chunk));
  }

  /** Feeds a chunk of text; returns the events it completed. */
  feed(text: string): SseEvent[] {
    const out: SseEvent[] = [];
    let start = 0;
    if (this.pendingCr && text.charCodeAt(0) === LF) start = 1;
    this.pendingCr = false;
    // The next "\n" and "\r" at or after `start`, each searched again only once passed.
    let lf = text.indexOf('\n', start);
    let cr = text.indexOf('\r', start);
    while (lf >= 0 || cr >= 0) {
      const end = cr < 0 || (lf >= 0 && lf < cr) ? lf : cr;
      if (this.rest.length > 0) {
        // A line begun in an earlier chunk: joined once, when it ends.
        this.rest.push(text.slice(start, end));
        const line = this.rest.join('');
        this.rest = [];
        this.restChars = 0;
        this.line(line, 0, line.length, out);
      } else this.line(text, start, end, out);
      if (end === cr) {
        if (end + 1 === text.length) {
          // A lone "\r" at the very end may be the first half of "\r\n".
          this.pendingCr = true;
          start = end + 1;
          break;
        }
        start = text.charCodeAt(end + 1) === LF ? end + 2 : end + 1;
      } else start = end + 1;
      if (lf >= 0 && lf < start) lf = text.indexOf('\n', start);
      if (cr >= 0 && cr < start) cr = text.indexOf('\r', start);
    }
    if (start < text.length) {
      this.restChars += text.length - start;
      if (this.restChars > MAX_SSE_EVENT_CHARS) throw new SseTooLarge();
      this.rest.push(start === 0 ? text : text.slice(start));
    }
    return out;
  }

  /** Ends the stream; returns the last event if it was not terminated by a blank line. */
  end(): SseEvent[] {
    const out = this.decoder ? this.feed(this.decoder.end()) : [];
    if (this.rest.length > 0) {
      const line = this.rest.join('');
      this.rest = [];
      this.restChars = 0;
      this.line(line, 0, line.length, out);
    }
    this.dispatch(out);
    return out;
  }

  /** The line text[from, to). */
  private line(text: string, from: number, to: number, out: SseEvent[]): void {
    if (from === to) {
      this.dispatch(out);
      return;
    }
    const first = text.charCodeAt(from);
    if (first === 0x3a /* ':' */) return;
    const colon = text.indexOf(':', from);
    const fieldEnd = colon < 0 || colon >= to ? to : colon;
    let valueStart = fieldEnd === to ? to : fieldEnd + 1;
    if (valueStart < to && text.charCodeAt(valueStart) === 0x20) valueStart++;
    const len = fieldEnd - from;
    if (len === 4 && text.startsWith('data', from)) {
      this.dataChars += to - valueStart + 1;
      if (this.dataChars > MAX_SSE_EVENT_CHARS) throw new SseTooLarge();
      this.data.push(text.slice(valueStart, to));
    } else if (len === 5 && text.startsWith('event', from)) this.event = text.slice(valueStart, to);
  }

  private dispatch(out: SseEvent[]): void {
    if (this.data.length > 0)
      out.push({
        event: this.event || 'message',
        data: this.data.length === 1 ? this.data[0]! : this.data.join('\n'),
      });
    this.data = [];
    this.dataChars = 0;
    this.event = '';
  }
}
