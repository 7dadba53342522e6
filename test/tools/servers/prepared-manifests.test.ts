/**
 * The built-in manifests prepared at build time (src/tools/servers/prepared-manifests.ts) are what
 * parsing the same text gives, and are used for that text only.
 */
import { readdirSync, readFileSync, existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parseToolManifest } from '../../../src/tools/servers/manifest.js';
import { prepareManifests, readPreparedManifests } from '../../../src/tools/servers/prepared-manifests.js';
import { makeTempDir, removeTempDirs } from '../../helpers/tmp.js';

afterAll(removeTempDirs);

const BUILTIN = resolve(import.meta.dirname, '../../../tools/builtin');
const texts = readdirSync(BUILTIN, { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(BUILTIN, d.name, 'caxton-tool.toml')))
  .map((d) => readFileSync(join(BUILTIN, d.name, 'caxton-tool.toml'), 'utf8'));

function written(json: string): URL {
  const file = join(makeTempDir('caxton-prepared-'), 'builtin-manifests.json');
  writeFileSync(file, json);
  return pathToFileURL(file);
}

describe('prepared built-in manifests', () => {
  it('hold, for each built-in manifest text, what parsing it gives', () => {
    expect(texts.length).toBeGreaterThan(0);
    const prepared = readPreparedManifests(written(prepareManifests(texts)));
    expect(prepared.size).toBe(texts.length);
    for (const text of texts) {
      const parsed = parseToolManifest(text, 'caxton-tool.toml', { compileSchemas: false });
      if (!parsed.ok) throw new Error('a built-in manifest does not parse');
      expect(prepared.get(text)).toEqual(parsed.manifest);
    }
  });

  it('leave out a text that does not parse or was not UTF-8, and find nothing for another text', () => {
    const bad = 'name = "x"\n';
    const replaced = texts[0]!.replace('description', 'descr\uFFFDiption');
    const prepared = readPreparedManifests(written(prepareManifests([bad, replaced, texts[0]!])));
    expect([...prepared.keys()]).toEqual([texts[0]]);
    expect(prepared.get(`${texts[0]}\n# edited\n`)).toBeUndefined();
  });

  it('are none when the build wrote no file, or an unreadable one', () => {
    const dir = makeTempDir('caxton-prepared-');
    expect(readPreparedManifests(pathToFileURL(join(dir, 'missing.json'))).size).toBe(0);
    expect(readPreparedManifests(written('{not json')).size).toBe(0);
  });
});
