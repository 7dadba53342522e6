import { createHash } from 'node:crypto';
import type { ChatRequest } from './types.js';

/**
 * Tool names as a provider's API accepts them. Caxton names tools `SERVER.TOOL` (and MCP servers
 * name theirs freely), but OpenAI and Anthropic accept only `^[a-zA-Z0-9_-]{1,64}$` as a function
 * name and refuse the whole request otherwise. Each request gets its own table: a name that is
 * already valid is sent as it is (a client-defined tool keeps the name its client knows); any other
 * becomes its characters outside that set replaced by `_`, cut to the limit, with a short hash of
 * the original added when the result is too long or taken by another name of the same request.
 * Tool calls coming back are mapped through the same table, so everything above the provider
 * clients (audit, events, logs, traces, the console) sees Caxton's names only.
 */

const VALID_CHARS = /[^A-Za-z0-9_-]/g;
const HASH_LENGTH = 8;

/** The function-name limit both Chat Completions and the Messages API enforce. */
export const WIRE_NAME_MAX = 64;

export class WireNames {
  readonly #toWire = new Map<string, string>();
  readonly #fromWire = new Map<string, string>();

  /** A table for these names; the result depends on the set of names only, never on their order. */
  constructor(names: Iterable<string>, maxLength = WIRE_NAME_MAX) {
    const valid = new RegExp(`^[A-Za-z0-9_-]{1,${maxLength}}$`);
    const unique = [...new Set(names)].sort();
    // Names the API accepts keep themselves first, so a mapped name never takes one of theirs.
    for (const name of unique) if (valid.test(name)) this.#set(name, name);
    for (const name of unique) {
      if (this.#toWire.has(name)) continue;
      const plain = name.replace(VALID_CHARS, '_');
      if (plain !== '' && plain.length <= maxLength && !this.#fromWire.has(plain)) {
        this.#set(name, plain);
        continue;
      }
      this.#set(name, this.#hashed(name, plain, maxLength));
    }
  }

  /** Every tool name a request carries: its tools, the calls in its history and a forced choice. */
  static forRequest(
    req: Pick<ChatRequest, 'tools' | 'messages' | 'tool_choice'>,
    maxLength = WIRE_NAME_MAX,
  ): WireNames {
    const names: string[] = (req.tools ?? []).map((t) => t.name);
    for (const m of req.messages) {
      if (m.role === 'assistant') for (const c of m.tool_calls ?? []) names.push(c.name);
      else if (m.role === 'tool') names.push(m.name);
    }
    if (typeof req.tool_choice === 'object') names.push(req.tool_choice.name);
    return new WireNames(names, maxLength);
  }

  /** The name sent to the provider. */
  toWire(name: string): string {
    return this.#toWire.get(name) ?? name;
  }

  /** Caxton's name for a name the provider sent back; one the request never offered comes back as it is. */
  fromWire(wire: string): string {
    return this.#fromWire.get(wire) ?? wire;
  }

  #set(name: string, wire: string): void {
    this.#toWire.set(name, wire);
    this.#fromWire.set(wire, name);
  }

  /** `plain` cut to leave room for `_` and a hash of `name`; a (vanishingly rare) clash of hashes adds a counter. */
  #hashed(name: string, plain: string, maxLength: number): string {
    const hash = createHash('sha256').update(name).digest('hex');
    for (let n = 0; ; n++) {
      const suffix = `_${hash.slice(0, HASH_LENGTH)}${n === 0 ? '' : String(n)}`;
      const wire = plain.slice(0, maxLength - suffix.length) + suffix;
      if (!this.#fromWire.has(wire)) return wire;
    }
  }
}
