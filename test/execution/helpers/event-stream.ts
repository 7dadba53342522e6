/**
 * Reads a server-sent-events response as it arrives: every event parsed into `events`, so a test
 * waits for the one it expects (`next`) while the stream stays open, and sees when the server ends
 * it (`ended`).
 */
import { waitUntil } from '../../helpers/wait.js';

export interface SseEvent {
  event: string;
  data: string;
  /** `data` parsed as JSON, when it is JSON. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

export interface OpenStream {
  status: number;
  events: SseEvent[];
  /** Resolves once the server ended the stream. */
  ended: Promise<void>;
  /** The first event from index `from` matching `pred` (waits for it). */
  next(pred: (e: SseEvent) => boolean, from?: number): Promise<SseEvent>;
  close(): void;
}

export async function openStream(url: string, init: RequestInit = {}): Promise<OpenStream> {
  const ac = new AbortController();
  const res = await fetch(url, {
    ...init,
    headers: { accept: 'text/event-stream', ...init.headers },
    signal: ac.signal,
  });
  const events: SseEvent[] = [];
  if (!(res.headers.get('content-type') ?? '').includes('text/event-stream')) {
    const text = await res.text();
    throw new Error(`${url}: ${res.status} ${text}`);
  }
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  const ended = (async () => {
    let buf = '';
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        buf += decoder.decode(value, { stream: true });
        let at: number;
        while ((at = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, at);
          buf = buf.slice(at + 2);
          let event = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue;
            if (line.startsWith('event:')) event = line.slice(6).trim();
            else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
          }
          if (data.length === 0) continue;
          const text = data.join('\n');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          events.push({ event, data: text, json });
        }
      }
    } catch {
      // aborted by close()
    }
  })();
  return {
    status: res.status,
    events,
    ended,
    async next(pred, from = 0) {
      const { value } = await waitUntil(() => events.slice(from).find(pred), {
        timeoutMs: 30_000,
        what: `an event in ${events.map((e) => e.event).join(',')}`,
      });
      return value;
    },
    close() {
      ac.abort();
    },
  };
}
