/**
 * The yaml package, required on first use. Only Markdown agent files (their frontmatter) need it,
 * and its ~60 CommonJS modules are most of a start's YAML cost if loaded with the rest: compiled
 * and run by every start, most of which read TOML agents only. A synchronous `require` keeps the
 * Markdown parser synchronous; the bundle leaves the package in node_modules, loaded from there.
 */
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';

let yamlModule: typeof Yaml | undefined;

export function yaml(): typeof Yaml {
  return (yamlModule ??= createRequire(import.meta.url)('yaml') as typeof Yaml);
}
