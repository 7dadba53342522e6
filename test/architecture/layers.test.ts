/**
 * The layering docs/architecture.md draws ("Layers"), checked on every import in src/: a folder
 * imports only folders of lower layers; folders of one layer are peers and import none of each
 * other. Type-only and dynamic imports count too. A new top-level folder fails here until it is
 * given a layer (in this table and in the document).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = resolve(import.meta.dirname, '../../src');

/** Lowest first. `index` is the package's library entry (src/index.ts). */
const LAYERS: readonly (readonly string[])[] = [
  ['shared'],
  ['storage'],
  ['observability', 'llm', 'agents'],
  ['auth'],
  ['config', 'audit'],
  ['tools'],
  ['execution'],
  ['memory', 'messaging'],
  ['cluster'],
  ['api', 'mcp', 'a2a'],
  ['server'],
  ['cli', 'index'],
];

/**
 * Imports allowed against the layering, each with its reason. Keep this list short: an entry
 * here is a seam to move, not a habit.
 */
const EXCEPTIONS: readonly { from: string; to: string; why: string }[] = [
  {
    from: 'config/config-schema.ts',
    to: 'server/tls-config.ts',
    why: 'the [server.tls]/[metrics.tls] zod schema is a leaf (zod only) kept beside the TLS code that uses it',
  },
];

/**
 * Adapters kept beside their port inside a folder: the rest of the folder (its core) never imports
 * them, they import the core only through its entry point, and other folders reach them only
 * through their own entry point. Dependencies inside the folder then point one way too.
 */
const BESIDE: readonly { adapters: string; core: string; why: string; uses?: readonly string[] }[] = [
  {
    adapters: 'messaging/cluster',
    core: 'messaging/index.ts',
    why: "the messaging ports' JetStream adapter and the cluster's bus over it and PostgreSQL",
    // The cluster's bus composes the PostgreSQL StepStore with the JetStream queue.
    uses: ['messaging/postgres'],
  },
  {
    adapters: 'messaging/postgres',
    core: 'messaging/index.ts',
    why: "the messaging ports' PostgreSQL adapter (the cluster's StepStore and reads)",
  },
  {
    adapters: 'messaging/sqlite',
    core: 'messaging/index.ts',
    why: "the messaging ports' SQLite and in-process adapters (a single node's bus)",
  },
];

/**
 * Feature folders inside a top-level folder: every file outside one reaches it only through its
 * entry point (`index.ts`), and a folder never imports the ones listed as above it, so the
 * dependencies between features point one way.
 */
const FEATURES: readonly { folder: string; above: readonly string[] }[] = [
  { folder: 'agents/versions', above: ['agents/rollouts'] },
  { folder: 'agents/rollouts', above: [] },
  // The tool servers' two sandboxes: QuickJS is itself WebAssembly, so js/ uses wasm/, never the reverse.
  { folder: 'tools/servers/wasm', above: ['tools/servers/js'] },
  { folder: 'tools/servers/js', above: [] },
  { folder: 'api/openai', above: [] },
];

interface Import {
  /** File importing, relative to src/. */
  file: string;
  /** File or folder imported, relative to src/. */
  target: string;
}

function folderOf(path: string): string {
  return path.split('/')[0]!.replace(/\.(ts|js)$/, '');
}

function importsOf(file: string): Import[] {
  const text = readFileSync(join(SRC, file), 'utf8');
  const out: Import[] = [];
  for (const m of text.matchAll(/(?:\bfrom|\bimport)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
    out.push({ file, target: relative(SRC, resolve(dirname(join(SRC, file)), m[1]!)).replace(/\.js$/, '.ts') });
  }
  return out;
}

function allImports(): Import[] {
  return readdirSync(SRC, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .flatMap((f) => importsOf(f));
}

/** The imports that break the layering (an exception's exact pair excepted). */
function violations(imports: readonly Import[], layers = LAYERS, exceptions = EXCEPTIONS): string[] {
  const layerOf = new Map<string, number>();
  layers.forEach((names, i) => names.forEach((n) => layerOf.set(n, i)));
  const bad: string[] = [];
  for (const i of imports) {
    const from = folderOf(i.file);
    const to = folderOf(i.target);
    if (from === to) continue;
    if (exceptions.some((e) => e.from === i.file && e.to === i.target)) continue;
    const lf = layerOf.get(from);
    const lt = layerOf.get(to);
    if (lf === undefined || lt === undefined)
      bad.push(`${i.file} → ${i.target}: ${lf === undefined ? from : to} has no layer`);
    else if (lt > lf)
      bad.push(`${i.file} → ${i.target}: ${from} (layer ${lf}) imports ${to} (layer ${lt}), a higher layer`);
    else if (lt === lf)
      bad.push(`${i.file} → ${i.target}: ${from} and ${to} are peers (layer ${lf}) and import none of each other`);
  }
  return bad;
}

/** The imports that cross a BESIDE boundary the wrong way. */
function besideViolations(imports: readonly Import[], beside = BESIDE): string[] {
  const bad: string[] = [];
  const user = (file: string, adapters: string) =>
    beside.some((b) => b.uses?.includes(adapters) && file.startsWith(`${b.adapters}/`));
  for (const { adapters, core, uses = [] } of beside) {
    const inside = (path: string) => path.startsWith(`${adapters}/`);
    const entry = `${adapters}/index.ts`;
    const folder = folderOf(adapters);
    for (const i of imports) {
      const used = uses.some((u) => i.target === `${u}/index.ts`);
      if (inside(i.file) && !inside(i.target) && folderOf(i.target) === folder && i.target !== core && !used)
        bad.push(`${i.file} → ${i.target}: ${adapters} imports ${folder} only through ${core}`);
      else if (!inside(i.file) && inside(i.target) && folderOf(i.file) === folder && !user(i.file, adapters))
        bad.push(`${i.file} → ${i.target}: ${folder} does not import its adapters (${adapters})`);
      else if (!inside(i.file) && inside(i.target) && i.target !== entry)
        bad.push(`${i.file} → ${i.target}: ${adapters} is reached through ${entry}`);
    }
  }
  return bad;
}

/** The imports that skip a feature folder's entry point, or point from a feature to one above it. */
function featureViolations(imports: readonly Import[], features = FEATURES): string[] {
  const bad: string[] = [];
  for (const { folder, above } of features) {
    const inside = (path: string) => path.startsWith(`${folder}/`);
    for (const i of imports) {
      if (!inside(i.file) && inside(i.target) && i.target !== `${folder}/index.ts`)
        bad.push(`${i.file} → ${i.target}: ${folder} is reached through ${folder}/index.ts`);
      const up = above.find((a) => i.target.startsWith(`${a}/`));
      if (inside(i.file) && up !== undefined) bad.push(`${i.file} → ${i.target}: ${folder} does not import ${up}`);
    }
  }
  return bad;
}

describe('layers (docs/architecture.md, "Layers")', () => {
  const imports = allImports();

  it('every import in src/ points to a lower layer', () => {
    expect(imports.length).toBeGreaterThan(500);
    expect(violations(imports)).toEqual([]);
  });

  it('every top-level folder of src/ has a layer, and the table names no folder that does not exist', () => {
    const folders = readdirSync(SRC, { withFileTypes: true }).map((d) =>
      d.isDirectory() ? d.name : d.name.replace(/\.ts$/, ''),
    );
    expect([...LAYERS.flat()].sort()).toEqual(folders.sort());
  });

  it('each exception is still needed, and its target imports nothing of Caxton (a leaf)', () => {
    for (const e of EXCEPTIONS) {
      expect(imports.some((i) => i.file === e.from && i.target === e.to)).toBe(true);
      expect(importsOf(e.to)).toEqual([]);
    }
  });

  it('adapters beside their port: the core never imports them, they import the core through its entry point', () => {
    for (const { adapters } of BESIDE) {
      expect(imports.some((i) => i.file.startsWith(`${adapters}/`))).toBe(true);
      expect(imports.some((i) => i.target === `${adapters}/index.ts` && !i.file.startsWith(`${adapters}/`))).toBe(true);
    }
    expect(besideViolations(imports)).toEqual([]);
  });

  it('feature folders: reached through their entry point, dependencies between them one way', () => {
    for (const { folder } of FEATURES) expect(imports.some((i) => i.target === `${folder}/index.ts`)).toBe(true);
    expect(featureViolations(imports)).toEqual([]);
  });

  it('catches a caller skipping a feature entry point and a feature importing one above it', () => {
    expect(
      featureViolations([
        { file: 'agents/agent-service.ts', target: 'agents/rollouts/rollouts.ts' },
        { file: 'agents/agent-service.ts', target: 'agents/rollouts/index.ts' },
        { file: 'agents/versions/versions.ts', target: 'agents/rollouts/index.ts' },
        { file: 'agents/rollouts/rollouts.ts', target: 'agents/versions/index.ts' },
        { file: 'agents/rollouts/canary-runner.ts', target: 'agents/rollouts/canary.ts' },
      ]),
    ).toEqual([
      'agents/versions/versions.ts → agents/rollouts/index.ts: agents/versions does not import agents/rollouts',
      'agents/agent-service.ts → agents/rollouts/rollouts.ts: agents/rollouts is reached through agents/rollouts/index.ts',
    ]);
  });

  it('catches an adapter reaching past the core entry, the core importing an adapter, and a caller skipping the entry', () => {
    expect(
      besideViolations([
        { file: 'messaging/postgres/pg-message-store.ts', target: 'messaging/rows.ts' },
        { file: 'messaging/postgres/pg-message-store.ts', target: 'messaging/index.ts' },
        { file: 'messaging/bus-rules.ts', target: 'messaging/cluster/index.ts' },
        { file: 'server/components/cluster.ts', target: 'messaging/cluster/cluster-bus.ts' },
        { file: 'server/components/cluster.ts', target: 'messaging/cluster/index.ts' },
      ]),
    ).toEqual([
      'messaging/bus-rules.ts → messaging/cluster/index.ts: messaging does not import its adapters (messaging/cluster)',
      'server/components/cluster.ts → messaging/cluster/cluster-bus.ts: messaging/cluster is reached through messaging/cluster/index.ts',
      'messaging/postgres/pg-message-store.ts → messaging/rows.ts: messaging/postgres imports messaging only through messaging/index.ts',
    ]);
  });

  it('catches an upward import, a peer import and a folder without a layer', () => {
    expect(
      violations([
        { file: 'storage/database.ts', target: 'messaging/index.ts' },
        { file: 'memory/store.ts', target: 'messaging/index.ts' },
        { file: 'nowhere/x.ts', target: 'shared/index.ts' },
        { file: 'messaging/bus-rules.ts', target: 'storage/index.ts' },
      ]),
    ).toEqual([
      'storage/database.ts → messaging/index.ts: storage (layer 1) imports messaging (layer 7), a higher layer',
      'memory/store.ts → messaging/index.ts: memory and messaging are peers (layer 7) and import none of each other',
      'nowhere/x.ts → shared/index.ts: nowhere has no layer',
    ]);
  });
});
