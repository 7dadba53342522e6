/**
 * Stored responses of POST /v1/responses (`store`, default true as at OpenAI): what a later
 * request's `previous_response_id` continues from, and what GET/DELETE /v1/responses/{id} read.
 * A response belongs to the principal that created it: another principal's id is not found.
 */

/** A chat message in OpenAI's chat-completions shape: the transcript a stored response continues. */
export type TranscriptMessage =
  | { role: 'system' | 'developer' | 'user'; content: string }
  | {
      role: 'assistant';
      content: string | null;
      tool_calls?: { id: string; type: 'function'; function: { name: string; arguments: string } }[];
    }
  | { role: 'tool'; tool_call_id: string; content: string };

export interface StoredResponse {
  id: string;
  agent: string;
  /** Principal.id of the creator; null when authentication is off and there is none. */
  principal: string | null;
  /**
   * The conversation up to and including this response's output. Without the request's
   * `instructions`: as at OpenAI, they are not carried over to a response that continues this one.
   */
  messages: TranscriptMessage[];
  /** The response object as it was returned. */
  response: Record<string, unknown>;
  /** A background response whose run has not ended: what is needed to build its outcome then. */
  request?: unknown;
}

export interface ResponseStore {
  save(r: StoredResponse): void;
  /** The response, if it exists, has not expired, and belongs to `principal`. */
  get(id: string, principal: string | null): StoredResponse | undefined;
  /** True when a response of `principal` was deleted. */
  delete(id: string, principal: string | null): boolean;
}

export interface MemoryResponseStoreOptions {
  /** How long a response is kept (default 24 h). */
  ttlMs?: number;
  /** The most JSON characters kept in all (default 64 Mi); the oldest responses go first. */
  maxChars?: number;
  now?: () => number;
}

/**
 * A bounded in-process store: responses last `ttlMs` and, together, at most `maxChars` of JSON
 * (the oldest are dropped first), so a busy client cannot grow the server's memory without end.
 * A restart forgets them; a later continuation then gets the 404 an expired id gets.
 */
export class MemoryResponseStore implements ResponseStore {
  private readonly items = new Map<string, { r: StoredResponse; expires: number; size: number }>();
  private chars = 0;
  private readonly ttlMs: number;
  private readonly maxChars: number;
  private readonly now: () => number;

  constructor(opts: MemoryResponseStoreOptions = {}) {
    this.ttlMs = opts.ttlMs ?? 24 * 3600_000;
    this.maxChars = opts.maxChars ?? 64 * 1024 * 1024;
    this.now = opts.now ?? Date.now;
  }

  save(r: StoredResponse): void {
    this.remove(r.id);
    const size = JSON.stringify(r.messages).length + JSON.stringify(r.response).length;
    if (size > this.maxChars) return;
    this.items.set(r.id, { r, expires: this.now() + this.ttlMs, size });
    this.chars += size;
    this.prune();
  }

  get(id: string, principal: string | null): StoredResponse | undefined {
    this.prune();
    const e = this.items.get(id);
    return e && e.r.principal === principal ? e.r : undefined;
  }

  delete(id: string, principal: string | null): boolean {
    if (this.get(id, principal) === undefined) return false;
    this.remove(id);
    return true;
  }

  private remove(id: string): void {
    const e = this.items.get(id);
    if (!e) return;
    this.items.delete(id);
    this.chars -= e.size;
  }

  /** Insertion order is expiry order (one TTL for all), so both bounds drop from the front. */
  private prune(): void {
    const now = this.now();
    for (const [id, e] of this.items) {
      if (e.expires > now && this.chars <= this.maxChars) break;
      this.remove(id);
    }
  }
}
