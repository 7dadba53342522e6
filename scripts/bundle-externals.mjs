/**
 * Loaded from node_modules at run time, never bundled: native addons (better-sqlite3,
 * onnxruntime-node, usearch), packages reading WebAssembly or model files beside their modules
 * (quickjs-emscripten and its @jitl builds, the @lat.md model), and optional peers of bundled
 * packages that Caxton does not install (a `require` of them is inside a try or never reached).
 */
export const EXTERNAL = [
  'better-sqlite3',
  'onnxruntime-node',
  'usearch',
  'quickjs-emscripten',
  'quickjs-emscripten-core',
  '@jitl/*',
  '@lat.md/*',
  'pg-native',
  'pg-cloudflare',
  'fsevents',
  'bufferutil',
  'utf-8-validate',
  '*.wasm',
  '*.node',
];
