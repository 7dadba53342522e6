export * from './errors.js';
export type { Brand } from './brand.js';
export { levenshtein, closest } from './suggest.js';
export { parseDuration, parseSize } from './units.js';
