#!/usr/bin/env node
/**
 * Parses the built-in tool servers' manifests (tools/builtin/NAME/caxton-tool.toml) into
 * dist/tools/servers/builtin-manifests.json, which a start registers the built-in tools from
 * (src/tools/servers/prepared-manifests.ts). Runs after `tsc`, with its output of the parser.
 */
import { readdirSync, readFileSync, existsSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { prepareManifests, PREPARED_MANIFESTS_URL } = await import(
  join(root, 'dist/tools/servers/prepared-manifests.js')
);
const dir = join(root, 'tools/builtin');
const texts = readdirSync(dir, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => join(dir, d.name, 'caxton-tool.toml'))
  .filter((f) => existsSync(f))
  .sort()
  .map((f) => readFileSync(f, 'utf8'));
writeFileSync(PREPARED_MANIFESTS_URL, prepareManifests(texts));
console.log(`tool manifests prepared: ${fileURLToPath(PREPARED_MANIFESTS_URL)} (${texts.length} built-in servers)`);
