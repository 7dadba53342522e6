export * from './errors.js';
export type { Brand } from './brand.js';
export { levenshtein, closest } from './suggest.js';
export { parseDuration, parseSize } from './units.js';
export { fieldPath, formatIssue, type SourceIssue, type Locator, type Position } from './issues.js';
export { scanTomlKeys, tomlLocator, tomlSyntaxMessage } from './toml-locator.js';
export { decodeUtf8 } from './utf8.js';
export { VERSION } from './version.js';
export { MAX_INPUT_DEPTH, assertJsonTextDepth, assertValueDepth, jsonTextDepth, tooDeepError, valueDepth } from './depth.js';
