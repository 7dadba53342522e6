/**
 * The JavaScript sandbox of tool servers: an ES module run in QuickJS compiled to WebAssembly, under
 * the same limits and grants as WebAssembly modules (ADR 0011). Loaded on first use: QuickJS is
 * compiled only when a server needs it.
 */
export {
  JsSandbox,
  isJsModule,
  decodeJsSource,
  loadQuickJS,
  loadBoundedQuickJS,
  JS_FUEL_PER_POLL,
  JS_MAX_STACK_BYTES,
  type JsSandboxHooks,
} from './js-sandbox.js';
