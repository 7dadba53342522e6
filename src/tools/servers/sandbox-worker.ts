/**
 * Worker entry of OffThreadSandbox (off-thread.ts): builds the tool server's sandbox from the
 * compiled module, limits, grants and state it is given, then runs calls one at a time. HTTP
 * requests and long computations block this thread only.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { FileAccess } from './fs-access.js';
import { parseHostGrants } from '../../shared/host-grants.js';
import { sharedHttpClient } from './host-http.js';
import type { OffThreadInit, WorkerReply, WorkerRequest } from './off-thread.js';
import { JsSandbox, loadBoundedQuickJS } from './js/index.js';
import { WasmSandbox, type LogLevel, type SandboxGrants } from './wasm/index.js';
import { SqliteAccess } from './sqlite-access.js';

const port = parentPort!;
const init = workerData as OffThreadInit;
const send = (m: WorkerReply, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

let sandbox: WasmSandbox | JsSandbox;
/** How much the thread's QuickJS memory has grown since it was loaded (WebAssembly memories never shrink). */
let grown: () => number = () => 0;
/** A dropped instance that took at least this much has its worker replaced (off-thread.ts). */
const RECYCLE_BYTES = 32 * 1024 * 1024;
try {
  const grants: SandboxGrants = {
    httpGranted: init.manifestHosts.length > 0 && init.operatorHosts.length > 0,
    hosts: [parseHostGrants(init.manifestHosts), parseHostGrants(init.operatorHosts)],
    files: new FileAccess(init.roots),
    ...(init.databases.length > 0 && { databases: new SqliteAccess(init.databases) }),
    config: new Map(init.config),
  };
  const hooks = {
    ...(init.log !== false && { log: (level: LogLevel, message: string) => send({ type: 'log', level, message }) }),
    http: sharedHttpClient(() => init.own),
  };
  // QuickJS in a memory bounded by the limit (setMemoryLimit alone does not bound it).
  if (init.js) {
    const qjs = await loadBoundedQuickJS(init.limits.memoryBytes);
    const base = qjs.getWasmMemory().buffer.byteLength;
    grown = () => qjs.getWasmMemory().buffer.byteLength - base;
    sandbox = new JsSandbox(init.js.source, init.js.file, init.limits, grants, { ...hooks, qjs });
  } else if (init.prepared) sandbox = new WasmSandbox(init.prepared, init.limits, grants, hooks);
  else throw new Error('neither a WebAssembly nor a JavaScript module was given');
  if (init.vars && init.vars.length > 0) sandbox.importVars(init.vars);
  const failed = sandbox.instantiate();
  if (failed) send({ type: 'init-failed', error: `${failed.error ?? 'instantiation failed'} (${failed.outcome})` });
  else send({ type: 'ready' });
} catch (e) {
  send({ type: 'init-failed', error: e instanceof Error ? e.message : String(e) });
}

port.on('message', (m: WorkerRequest) => {
  if (m.type !== 'call') return;
  const version = sandbox.varsVersion;
  const result = sandbox.call(m.name, m.input, m.deadline, m.traceparent);
  // A failed call that left no live instance dropped it: when it took much memory, the parent
  // replaces this worker so that memory (a grown WebAssembly memory never shrinks) is given back.
  // Smaller ones are left to the garbage collector (a new worker costs a thread start, and for
  // servers granted HTTP a new helper thread too).
  const dropped =
    !['ok', 'error', 'invalid_input', 'input_too_large'].includes(result.outcome) &&
    !sandbox.instantiated &&
    Math.max(result.memory_bytes, grown()) > RECYCLE_BYTES;
  send({
    type: 'result',
    id: m.id,
    result,
    stats: { ...sandbox.stats },
    // QuickJS's memory usage is a query (an object built and read): the call's own figure serves.
    memory_bytes:
      sandbox instanceof JsSandbox
        ? sandbox.instantiated
          ? result.memory_bytes
          : 0
        : sandbox.memoryBytes + sandbox.kernelBytes,
    dropped,
    ...(sandbox.varsVersion !== version && { vars: sandbox.exportVars() }),
  });
});
