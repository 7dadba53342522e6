/**
 * The built-in tool servers' manifests, parsed at build time (`npm run build:code-cache` runs
 * scripts/build-tool-manifests.mjs): a start registers the built-in tools from them instead of
 * parsing six TOML files and checking them with zod (about 15 ms of CPU before the first answer).
 *
 * Each entry holds the manifest file's text with what parsing it gave (without compiling the tools'
 * schemas, as a start reads them), and is used only for a file whose text is that text: a manifest
 * edited after the build, a builtin directory of one's own or a build without the file parse as
 * they would without it. A parse depends on the text alone, so the two cannot differ.
 */
import { readFileSync } from 'node:fs';
import { MANIFEST_FILE, parseToolManifest, type ToolManifest } from './manifest.js';

/** Where the build writes them: beside this module in dist/. */
export const PREPARED_MANIFESTS_URL = new URL('./builtin-manifests.json', import.meta.url);

interface Prepared {
  text: string;
  manifest: ToolManifest;
}

/** The JSON the build writes: each manifest text that parses without errors, with its manifest. */
export function prepareManifests(texts: readonly string[]): string {
  const out: Prepared[] = [];
  for (const text of texts) {
    // A file that is not UTF-8 is read with U+FFFD in place of its bad bytes: it is parsed, and refused, at start.
    if (text.includes('\uFFFD')) continue;
    const r = parseToolManifest(text, MANIFEST_FILE, { compileSchemas: false });
    if (r.ok) out.push({ text, manifest: r.manifest });
  }
  return JSON.stringify(out);
}

/**
 * The prepared manifests by their text, each a fresh object; empty when the build wrote none.
 * Read once per call: a manager reads them as it begins.
 */
export function readPreparedManifests(url: URL = PREPARED_MANIFESTS_URL): Map<string, ToolManifest> {
  let list: Prepared[];
  try {
    list = JSON.parse(readFileSync(url, 'utf8')) as Prepared[];
  } catch {
    return new Map();
  }
  return new Map(Array.isArray(list) ? list.map((p) => [p.text, p.manifest]) : []);
}
