/**
 * Where a node's CPU goes, by layer: reads a V8 `.cpuprofile` (`node --cpu-prof`; the cluster
 * suite writes one per node, in DIR/c<cluster size>-node-<letter>, with BENCH_CLUSTER_NODE_PROFILE=DIR), maps each sample
 * through the bundle's source maps, and charges it to the innermost frame that belongs to a layer
 * (the PostgreSQL client, the NATS client, HTTP and the routes, the delivery engine, …). A socket
 * write or a JSON.stringify is charged to the layer that called it. Samples whose stack passes
 * through module loading or server start are "startup" and left out, so a short run reads as its
 * workload (in a cluster node under this suite the WebAssembly tools run only at start).
 *
 *   node --import tsx bench/cpu-layers.ts FILE.cpuprofile [--per MS_PER_MESSAGE]
 *
 * `--per`: the node's CPU per delivered message the suite measured for the same run; each layer's
 * share is then also given in ms per message.
 */
import { existsSync, readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** The layers, tried in order on a frame's source path (bundled sources map back to src/ and node_modules/). */
const LAYERS: readonly [string, RegExp][] = [
  // Module loading, server start, configuration, the migrations, the WebAssembly tools' compilation.
  [
    'startup',
    /^node:internal\/modules\/|^src\/(server\/server|storage\/database)\.ts$|^src\/(cli|config|tools\/wasm)\//,
  ],
  ['PostgreSQL client (pg, batching, tx)', /node_modules\/(pg|pg-pool|pg-protocol|pg-types)\/|^src\/storage\/pg\//],
  ['NATS client (@nats-io)', /node_modules\/@nats-io\//],
  ['HTTP: fastify and the routes', /node_modules\/(fastify|find-my-way|avvio|@fastify)|^node:_http|^src\/api\//],
  ['messaging: cluster adapters (JetStream queue, PG store)', /^src\/messaging\/cluster\//],
  ['messaging: delivery engine', /^src\/messaging\/engine\//],
  ['messaging: parse, validate, route, rows', /^src\/messaging\//],
  [
    'audit, events, traces, metrics',
    /^src\/(audit|observability)\/|^src\/storage\/turn-writer|^src\/shared\/turn-batcher/,
  ],
  ['other Caxton code', /^src\//],
];

export interface LayerReport {
  /** Busy CPU (idle left out) in ms, and per layer in ms, largest first. */
  busyMs: number;
  layers: { layer: string; ms: number }[];
}

export function cpuLayers(profile: Profile): LayerReport {
  const maps = new Map<string, SourceMap | null>();
  const sourceOf = (cf: ProfileNode['callFrame']): string => {
    if (cf.url.startsWith('file://') && cf.url.includes('/dist/')) {
      const file = fileURLToPath(cf.url);
      if (!maps.has(file))
        maps.set(
          file,
          existsSync(`${file}.map`)
            ? new SourceMap(
                JSON.parse(readFileSync(`${file}.map`, 'utf8')) as ConstructorParameters<typeof SourceMap>[0],
              )
            : null,
        );
      const entry = maps.get(file)?.findEntry(cf.lineNumber, cf.columnNumber);
      if (entry && 'originalSource' in entry && entry.originalSource) {
        const original = entry.originalSource;
        // A package the bundle inlined keeps its path under node_modules/; Caxton's own under src/.
        return original.includes('node_modules/')
          ? original.replace(/.*?node_modules\//, 'node_modules/')
          : original.replace(/.*?\/src\//, 'src/');
      }
    }
    return cf.url.replace(/.*\/node_modules\//, 'node_modules/') || cf.functionName;
  };
  const parent = new Map<number, number>();
  const source = new Map<number, string>();
  for (const n of profile.nodes) {
    source.set(n.id, sourceOf(n.callFrame));
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const layerOf = new Map<number, string>();
  const resolve = (id: number): string => {
    const known = layerOf.get(id);
    if (known !== undefined) return known;
    const own = source.get(id)!;
    let layer: string | undefined = /^\((idle|garbage collector|program)\)$/.test(own) ? own : undefined;
    // Startup anywhere in the stack wins: a module's top level runs inside the loader's frames.
    for (let cur: number | undefined = id; layer === undefined && cur !== undefined; cur = parent.get(cur))
      if (LAYERS[0]![1].test(source.get(cur)!)) layer = 'startup';
    for (let cur: number | undefined = id; layer === undefined && cur !== undefined; cur = parent.get(cur))
      layer = LAYERS.slice(1).find(([, re]) => re.test(source.get(cur!)!))?.[0];
    layer ??= 'Node.js internals (sockets, timers) with no Caxton frame';
    layerOf.set(id, layer);
    return layer;
  };
  const ms = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const layer = resolve(id);
    ms.set(layer, (ms.get(layer) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  });
  ms.delete('(idle)');
  ms.delete('startup');
  const busyMs = [...ms.values()].reduce((a, b) => a + b, 0);
  return { busyMs, layers: [...ms].map(([layer, v]) => ({ layer, ms: v })).sort((a, b) => b.ms - a.ms) };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2];
  if (!file) throw new Error('usage: bench/cpu-layers.ts FILE.cpuprofile [--per MS_PER_MESSAGE]');
  const per = process.argv.indexOf('--per');
  const perMessage = per > 0 ? Number(process.argv[per + 1]) : undefined;
  const r = cpuLayers(JSON.parse(readFileSync(file, 'utf8')) as Profile);
  console.log(
    `| Layer | share of the node's busy CPU (${(r.busyMs / 1000).toFixed(2)} s, startup left out) |${perMessage ? ' ms per delivered message |' : ''}`,
  );
  console.log(`| --- | --- |${perMessage ? ' --- |' : ''}`);
  for (const { layer, ms } of r.layers) {
    const share = ms / r.busyMs;
    console.log(
      `| ${layer} | ${(100 * share).toFixed(1)} % |${perMessage ? ` ${(share * perMessage).toFixed(3)} |` : ''}`,
    );
  }
}
