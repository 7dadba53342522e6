import type { ApiClient } from './api-client.js';
import type { CodeCacheHook } from './code-cache.js';
import type { Credentials } from './credentials.js';
import type { Output } from './output.js';

/** What every command gets: the API client (from --server) and the output mode (from --json). */
export interface CliContext {
  client(): ApiClient;
  output(): Output;
  /** The server and key the client uses, and where they came from. */
  credentials(): Credentials;
  /** Set when `caxton serve` runs from the CommonJS bundle (code-cache.ts): saves V8's code cache. */
  codeCache?: CodeCacheHook;
}
