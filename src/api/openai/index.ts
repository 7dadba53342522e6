/**
 * The OpenAI-compatible surface: /v1/chat/completions and /v1/models (chat-completions.ts),
 * /v1/responses (responses.ts) and the stored responses behind `previous_response_id`. Any OpenAI
 * client talks to Caxton agents here, the model name being the agent name (docs/openai.md).
 */
export { openAiRoutes } from './chat-completions.js';
export { responsesRoutes } from './responses.js';
export {
  MemoryResponseStore,
  type MemoryResponseStoreOptions,
  type ResponseStore,
  type StoredResponse,
  type TranscriptMessage,
} from './response-store.js';
export { SqliteResponseStore, RESPONSE_MIGRATIONS } from './sqlite-response-store.js';
