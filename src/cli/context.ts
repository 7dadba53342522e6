import type { ApiClient } from './client.js';
import type { Output } from './output.js';

/** What every command gets: the API client (from --server) and the output mode (from --json). */
export interface CliContext {
  client(): ApiClient;
  output(): Output;
}
