export * from './errors.js';
export type { Brand } from './brand.js';
export { levenshtein, closest } from './suggest.js';
export { parseDuration, parseSize } from './units.js';
export { fieldPath, formatIssue, type SourceIssue, type Locator, type Position } from './issues.js';
export { scanTomlKeys, tomlLocator, tomlSyntaxMessage } from './toml-locator.js';
export { decodeUtf8 } from './utf8.js';
export { COPY_ROOT } from './objects.js';
export { VERSION } from './version.js';
export { MAX_INPUT_DEPTH, assertValueDepth, tooDeepError, valueDepth } from './depth.js';
export {
  MIN_SECRET_LENGTH,
  SCRUBBED,
  SecretScrubber,
  registerSecrets,
  scrubError,
  scrubSecrets,
  scrubSecretsIn,
  secretScrubber,
  secretVariants,
} from './secrets.js';
export { StreamScrubber } from './stream-scrub.js';
export {
  jsonProblemError,
  lineColumn,
  parseJsonText,
  scanJsonText,
  type JsonProblemKind,
  type JsonScanOptions,
  type JsonTextProblem,
  type ParseJsonTextOptions,
} from './json-text.js';
export { backoffDelay, type BackoffPolicy } from './backoff.js';
export { TurnBatcher, type TurnBatcherOptions } from './turn-batcher.js';
export { CONFIRM_WAIT_MS, settledWithin, wantedByListeners, WhileWanted } from './while-wanted.js';
export { Ticks } from './ticks.js';
