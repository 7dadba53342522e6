/**
 * The undici package, loaded on its first use: a model call (src/llm/transport.ts), a tool's or
 * an A2A push's outbound request (src/tools/egress.ts). A server start makes none of these, and
 * loading undici costs about 20 ms of CPU (its own modules and Node's internal copy, which its
 * cookie module reaches through a global), so `caxton serve` answers before it is loaded.
 */
import type * as Undici from 'undici';

let undici: Promise<typeof Undici> | undefined;

export function loadUndici(): Promise<typeof Undici> {
  // Node's import of the CommonJS package gives its exports by name; the bundle's lazy chunk
  // of it gives them only under `default`.
  return (undici ??= import('undici').then((ns) => (ns as unknown as { default?: typeof Undici }).default ?? ns));
}
