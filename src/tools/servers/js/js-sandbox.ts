/**
 * JavaScript tool modules, run in QuickJS compiled to WebAssembly (quickjs-emscripten), under the
 * same limits and grants as WebAssembly modules (docs/adr/0011-javascript-tools-quickjs.md):
 *
 *  - The module is an ES module; each tool is an exported function (`export function stats(input)
 *    { return {...} }`) taking the arguments as a JSON value and returning its output: a string is
 *    the output as is, anything else is serialized as JSON (`undefined`: no output). A thrown
 *    exception is the tool's error (outcome `error`). An async function may be used; its promise
 *    must settle without host I/O (host functions are synchronous).
 *  - One QuickJS runtime and context per server (all servers share the QuickJS WebAssembly
 *    module, loaded once): `setMemoryLimit(limits.memory)`, a maximum stack size, and an interrupt
 *    handler that stops the call when the wall-clock deadline passes or the fuel runs out. QuickJS
 *    polls it every 10,000 ticks (function calls and loop back-edges, the same events the WASM fuel
 *    counts), so fuel is counted as polls × 10,000, plus what host calls are charged (meter.ts).
 *  - Every host function passes through one entry that charges its fuel and checks the deadline;
 *    log lines and bytes per call are bounded (meter.ts).
 *  - The only capabilities are on the global `caxton` object, and only those granted: `log`,
 *    `config`, `vars` (key-value state) always; `http` when both the manifest and the operator
 *    grant hosts; `files` when a path root is granted; `sqlite` when a database is. They are the
 *    WebAssembly host functions' implementations (fs-access.ts, host-http.ts, sqlite-access.ts).
 *  - After a call that is interrupted, runs out of memory or stack, or uses a refused host function,
 *    the runtime is disposed and the next call creates it afresh (vars survive).
 */
import {
  newQuickJSWASMModule,
  newQuickJSWASMModuleFromVariant,
  newVariant,
  RELEASE_SYNC,
  type CustomizeVariantOptions,
  type QuickJSContext,
  type QuickJSHandle,
  type QuickJSRuntime,
  type QuickJSWASMModule,
} from 'quickjs-emscripten';
import { CaxtonError } from '../../../shared/errors.js';
import { HostTrap, type CallOutcome } from '../errors.js';
import { checkHttpRequest } from '../host-http.js';
import { GuestLog, HOST_BYTES_PER_FUEL, hostCallFuel } from '../meter.js';
import {
  WA,
  type CallResult,
  type LogLevel,
  type SandboxGrants,
  type SandboxHooks,
  type SandboxLimits,
} from '../wasm/index.js';

/** QuickJS polls the interrupt handler every this many ticks (JS_INTERRUPT_COUNTER_INIT). */
export const JS_FUEL_PER_POLL = 10_000;
/** QuickJS's own stack limit (the interpreter's C stack, in the WebAssembly memory). */
export const JS_MAX_STACK_BYTES = 256 * 1024;
const ERROR_MAX = 2048;
const HTTP_MAX_BYTES = 64 * 1024 * 1024;

/**
 * The QuickJS WebAssembly module shared by the sandboxes of this thread, loaded once (about 10 ms)
 * by `loadQuickJS()`: not at import, as a module with top-level `await` cannot be in the CommonJS
 * serve bundle (src/cli/code-cache.ts).
 */
let QJS: QuickJSWASMModule | undefined;
let loadingQJS: Promise<QuickJSWASMModule> | undefined;

/** Loads the shared QuickJS module; a sandbox without a `qjs` hook needs it loaded first. */
export function loadQuickJS(): Promise<QuickJSWASMModule> {
  return (loadingQJS ??= newQuickJSWASMModule(RELEASE_SYNC).then((m) => (QJS = m)));
}

function sharedQuickJS(): QuickJSWASMModule {
  if (!QJS) throw new Error('QuickJS is not loaded: await loadQuickJS() before instantiating a JsSandbox');
  return QJS;
}

const PAGE = 65536;
/** The QuickJS build's own minimum memory (its static data and C stack), pages. */
const QJS_BASE_PAGES = 256;
/** Room above the scripts' memory limit for the interpreter's own allocations, pages (4 MiB). */
const QJS_SLACK_PAGES = 64;

/**
 * A QuickJS module of its own whose WebAssembly memory cannot grow past what `memoryBytes` needs.
 * QuickJS's `setMemoryLimit` does not count every allocation (typed-array backing stores, for
 * one): with the shared module a script could grow the thread's memory to 2 GiB whatever its
 * limit. A worker (off-thread.ts) loads one of these per sandbox; the memory goes with the worker.
 */
export async function loadBoundedQuickJS(memoryBytes: number): Promise<QuickJSWASMModule> {
  const maximum = Math.min(65536, QJS_BASE_PAGES + Math.ceil(memoryBytes / PAGE) + QJS_SLACK_PAGES);
  return newQuickJSWASMModuleFromVariant(
    newVariant(RELEASE_SYNC, {
      wasmMemory: new WA.Memory({
        initial: QJS_BASE_PAGES,
        maximum,
      }) as unknown as CustomizeVariantOptions['wasmMemory'],
    }),
  );
}

/** JsSandbox's hooks: `qjs`, a QuickJS module of its own (default: the process-wide one). */
export interface JsSandboxHooks extends SandboxHooks {
  qjs?: QuickJSWASMModule;
}

/** Whether a package's module is JavaScript (runs in QuickJS) rather than WebAssembly. */
export function isJsModule(module: string): boolean {
  return /\.(m?js)$/i.test(module);
}

/**
 * Set up before the tool module runs; captures JSON so a module that replaces it cannot change
 * how its input is parsed or its output serialized. `h` holds the host functions granted.
 */
const PRELUDE = `(function (h) {
  const parse = JSON.parse, stringify = JSON.stringify, freeze = Object.freeze;
  const out = (v) => (typeof v === 'string' ? v : v === undefined ? undefined : stringify(v));
  const c = { log: (level, ...msg) => h.log(String(level), msg.map((m) => (typeof m === 'string' ? m : stringify(m))).join(' ')) };
  for (const l of ['trace', 'debug', 'info', 'warn', 'error']) c.log[l] = (...msg) => c.log(l, ...msg);
  c.config = (key) => h.config(String(key));
  c.vars = freeze({ get: (key) => h.var_get(String(key)), set: (key, value) => h.var_set(String(key), value === undefined || value === null ? undefined : String(value)) });
  if (h.http) c.http = (req, body) => {
    if (typeof req === 'string') req = { url: req };
    const r = parse(h.http(stringify({ url: req.url, method: req.method, headers: req.headers }), body === undefined ? req.body : body));
    r.json = () => parse(r.body);
    return r;
  };
  if (h.file_read) c.files = freeze({ read: (p) => h.file_read(String(p)), write: (p, d) => h.file_write(String(p), String(d)), list: (p) => parse(h.file_list(String(p))) });
  if (h.sqlite) c.sqlite = freeze({ query: (req) => parse(h.sqlite(stringify(req))) });
  freeze(c.log);
  globalThis.caxton = freeze(c);
  return {
    invoke(fn, input) {
      const r = fn(parse(input));
      if (r !== null && typeof r === 'object' && typeof r.then === 'function') return r.then(out);
      return out(r);
    },
    exports: (ns) => stringify(Object.keys(ns).filter((k) => typeof ns[k] === 'function')),
  };
})`;

const enc = new TextEncoder();
const dec = new TextDecoder();

interface Live {
  rt: QuickJSRuntime;
  ctx: QuickJSContext;
  invoke: QuickJSHandle;
  exports: Map<string, QuickJSHandle>;
}

/** A readable one-line message from a dumped QuickJS error. */
function errorText(e: unknown): { name: string; message: string; text: string } {
  if (e !== null && typeof e === 'object') {
    const o = e as { name?: unknown; message?: unknown; stack?: unknown; lineNumber?: unknown; fileName?: unknown };
    const name = typeof o.name === 'string' ? o.name : 'Error';
    const message = typeof o.message === 'string' ? o.message : JSON.stringify(e);
    const at = typeof o.stack === 'string' ? /\(?([^\s()]+:\d+:\d+)\)?/.exec(o.stack)?.[1] : undefined;
    const text = `${name}: ${message}${at ? ` (at ${at})` : ''}`;
    return { name, message, text: text.length > ERROR_MAX ? `${text.slice(0, ERROR_MAX)}…` : text };
  }
  const s = String(e);
  return { name: 'Error', message: s, text: s.slice(0, ERROR_MAX) };
}

export class JsSandbox {
  readonly source: string;
  readonly file: string;
  readonly limits: SandboxLimits;
  readonly #grants: SandboxGrants;
  readonly #hooks: JsSandboxHooks;
  readonly #logs: GuestLog;
  #live: Live | undefined;
  /** Exported functions of the module (known once it has been instantiated). */
  exports: ReadonlySet<string> = new Set();

  // The current call.
  #deadline = Infinity;
  #polls = 0;
  /** Fuel charged by host calls during the current call. */
  #hostFuel = 0;
  #pollBudget = Infinity;
  #why: 'fuel' | 'timeout' | undefined;
  #trap: HostTrap | undefined;
  #traceparent: string | undefined;

  readonly #vars = new Map<string, string>();
  #varBytes = 0;
  /** Bumped by every var_set: a worker sends the state back only when it changed (off-thread.ts). */
  varsVersion = 0;

  readonly stats = { calls: 0, failures: 0, instantiations: 0 };

  constructor(source: string, file: string, limits: SandboxLimits, grants: SandboxGrants, hooks: JsSandboxHooks = {}) {
    this.source = source;
    this.file = file;
    this.limits = limits;
    this.#grants = grants;
    this.#hooks = hooks;
    this.#logs = new GuestLog(hooks.log);
  }

  get instantiated(): boolean {
    return this.#live !== undefined;
  }

  /** Bytes the live runtime has allocated (0 when none). */
  get memoryBytes(): number {
    return this.#live ? this.#memoryUsed(this.#live) : 0;
  }

  /** No host-side kernel memory: data crosses as strings. */
  get kernelBytes(): number {
    return 0;
  }

  #memoryUsed(live: Live): number {
    const h = live.rt.computeMemoryUsage();
    try {
      const m = live.ctx.getProp(h, 'memory_used_size');
      const n = live.ctx.getNumber(m);
      m.dispose();
      return n;
    } catch {
      return 0;
    } finally {
      h.dispose();
    }
  }

  /**
   * Creates the runtime and context and evaluates the module, under the limits. Returns a failure
   * (syntax error, the module throwing, a limit hit) or undefined when ready.
   */
  instantiate(): CallResult | undefined {
    if (this.#live) return undefined;
    try {
      return this.#instantiate();
    } finally {
      this.#logs.end();
    }
  }

  #instantiate(): CallResult | undefined {
    const t0 = performance.now();
    this.#begin(t0 + this.limits.timeoutMs);
    const rt = (this.#hooks.qjs ?? sharedQuickJS()).newRuntime();
    rt.setMemoryLimit(this.limits.memoryBytes);
    rt.setMaxStackSize(JS_MAX_STACK_BYTES);
    rt.setInterruptHandler(() => this.#interrupt());
    let ctx: QuickJSContext | undefined;
    const handles: QuickJSHandle[] = [];
    const own = <T extends QuickJSHandle>(h: T): T => {
      handles.push(h);
      return h;
    };
    try {
      ctx = rt.newContext();
      this.stats.instantiations++;
      const prelude = ctx.evalCode(PRELUDE, '<caxton>');
      if (prelude.error) throw new Error(`prelude: ${errorText(ctx.dump(own(prelude.error))).text}`);
      const factory = own(prelude.value);
      const host = own(this.#hostObject(ctx));
      const made = ctx.callFunction(factory, ctx.undefined, host);
      if (made.error) throw new Error(`prelude: ${errorText(ctx.dump(own(made.error))).text}`);
      const helpers = own(made.value);
      const invoke = own(ctx.getProp(helpers, 'invoke'));
      const listExports = own(ctx.getProp(helpers, 'exports'));
      const evaluated = ctx.evalCode(this.source, this.file, { type: 'module', strict: true });
      if (evaluated.error) {
        return this.#abandon(
          rt,
          ctx,
          handles,
          this.#classify(ctx.dump(own(evaluated.error)), t0, 'the module failed to load: '),
        );
      }
      let ns = own(evaluated.value);
      if (ctx.typeof(ns) === 'object' && this.#isPromise(ctx, ns)) {
        rt.executePendingJobs();
        const state = ctx.getPromiseState(ns);
        if (state.type === 'pending') {
          return this.#abandon(rt, ctx, handles, {
            outcome: 'trap',
            error: 'the module failed to load: its top-level await did not settle',
            fuel_used: 0,
            memory_bytes: 0,
            duration_us: 0,
          });
        }
        if (state.type === 'rejected') {
          return this.#abandon(
            rt,
            ctx,
            handles,
            this.#classify(ctx.dump(own(state.error)), t0, 'the module failed to load: '),
          );
        }
        ns = own(state.value);
      }
      const exports = new Map<string, QuickJSHandle>();
      const listed = ctx.callFunction(listExports, ctx.undefined, ns);
      if (listed.error) throw new Error(errorText(ctx.dump(own(listed.error))).text);
      for (const k of JSON.parse(ctx.getString(own(listed.value))) as string[]) exports.set(k, ctx.getProp(ns, k));
      this.exports = new Set(exports.keys());
      for (const h of handles) if (h.alive && h !== invoke) h.dispose();
      this.#live = { rt, ctx, invoke, exports };
      return undefined;
    } catch (e) {
      const r: CallResult = {
        outcome: 'trap',
        error: `the module failed to load: ${e instanceof Error ? e.message : String(e)}`,
        fuel_used: 0,
        memory_bytes: 0,
        duration_us: Math.round((performance.now() - t0) * 1000),
      };
      return this.#abandon(rt, ctx, handles, r);
    }
  }

  #isPromise(ctx: QuickJSContext, h: QuickJSHandle): boolean {
    const then = ctx.getProp(h, 'then');
    const is = ctx.typeof(then) === 'function';
    then.dispose();
    return is;
  }

  #abandon(rt: QuickJSRuntime, ctx: QuickJSContext | undefined, handles: QuickJSHandle[], r: CallResult): CallResult {
    for (const h of handles) if (h.alive) h.dispose();
    try {
      ctx?.dispose();
      rt.dispose();
    } catch {
      // a runtime that cannot be freed cleanly is left to the garbage collector
    }
    return r;
  }

  /** Runs exported function `name` on `input` (UTF-8 JSON). Never throws for anything the guest does. */
  call(name: string, input: Uint8Array, deadline = Infinity, traceparent?: string): CallResult {
    try {
      return this.#call(name, input, deadline, traceparent);
    } finally {
      this.#logs.end();
    }
  }

  #call(name: string, input: Uint8Array, deadline: number, traceparent: string | undefined): CallResult {
    this.stats.calls++;
    const t0 = performance.now();
    if (input.byteLength > this.limits.maxInputBytes) {
      this.stats.failures++;
      return {
        outcome: 'input_too_large',
        error: `the input is ${input.byteLength} bytes, above the limit of ${this.limits.maxInputBytes}`,
        fuel_used: 0,
        memory_bytes: 0,
        duration_us: 0,
      };
    }
    const failedStart = this.instantiate();
    if (failedStart) {
      this.stats.failures++;
      return failedStart;
    }
    const live = this.#live!;
    const fn = live.exports.get(name);
    if (!fn) {
      this.stats.failures++;
      return {
        outcome: 'trap',
        error: `the module exports no function "${name}"`,
        fuel_used: 0,
        memory_bytes: 0,
        duration_us: 0,
      };
    }
    const until = Math.min(t0 + this.limits.timeoutMs, deadline === Infinity ? Infinity : t0 + (deadline - Date.now()));
    this.#begin(until);
    this.#traceparent = traceparent;
    const { ctx, rt } = live;
    let result: CallResult;
    try {
      const arg = ctx.newString(dec.decode(input));
      const r = ctx.callFunction(live.invoke, ctx.undefined, fn, arg);
      arg.dispose();
      let value: QuickJSHandle | undefined;
      let thrown: unknown;
      let threw = false;
      if (r.error) {
        threw = true;
        thrown = ctx.dump(r.error);
        r.error.dispose();
      } else if (ctx.typeof(r.value) === 'object' && this.#isPromise(ctx, r.value)) {
        rt.executePendingJobs();
        const state = ctx.getPromiseState(r.value);
        r.value.dispose();
        if (state.type === 'fulfilled') value = state.value;
        else if (state.type === 'rejected') {
          threw = true;
          thrown = ctx.dump(state.error);
          state.error.dispose();
        } else {
          threw = true;
          thrown = {
            name: 'Error',
            message: "the tool's promise did not settle (host functions are synchronous; nothing else can resolve it)",
          };
        }
      } else value = r.value;
      if (threw) result = this.#classify(thrown, t0);
      else {
        const s = value && ctx.typeof(value) === 'string' ? ctx.getString(value) : undefined;
        value?.dispose();
        result = this.#ok(live, t0, s);
      }
    } catch (e) {
      // The QuickJS machinery itself failed (a trap in the interpreter): start afresh.
      result = this.#classify({ name: 'InternalError', message: e instanceof Error ? e.message : String(e) }, t0);
      if (result.outcome === 'error') result.outcome = 'trap';
      this.reset();
    }
    if (result.outcome !== 'ok') this.stats.failures++;
    return result;
  }

  #ok(live: Live, t0: number, s: string | undefined): CallResult {
    const elapsed = performance.now() - t0;
    const base = {
      fuel_used: Math.min(this.#polls * JS_FUEL_PER_POLL + this.#hostFuel, this.limits.fuel),
      memory_bytes: this.#memoryUsed(live),
      duration_us: Math.round(elapsed * 1000),
    };
    if (this.#trap) return this.#failed({ ...base, outcome: this.#trap.kind, error: this.#trap.message });
    if (performance.now() > this.#deadline)
      return this.#failed({
        ...base,
        outcome: 'timeout',
        error: `the call exceeded its deadline (${Math.round(elapsed)} ms; limit ${this.limits.timeoutMs} ms)`,
      });
    if (s === undefined) return { ...base, outcome: 'ok' };
    // UTF-16 length ≤ UTF-8 length: a string this long is too large without encoding it.
    if (s.length > this.limits.maxOutputBytes)
      return this.#failed({
        ...base,
        outcome: 'output_too_large',
        error: `the output is at least ${s.length} bytes, above the limit of ${this.limits.maxOutputBytes}`,
      });
    const output = enc.encode(s);
    if (output.byteLength > this.limits.maxOutputBytes)
      return this.#failed({
        ...base,
        outcome: 'output_too_large',
        error: `the output is ${output.byteLength} bytes, above the limit of ${this.limits.maxOutputBytes}`,
      });
    return { ...base, outcome: 'ok', output };
  }

  /** A failure that drops the runtime (the next call creates it afresh). */
  #failed(r: CallResult): CallResult {
    this.reset();
    return r;
  }

  /** Turns what the guest threw (dumped) into an outcome; limits hit also drop the runtime. */
  #classify(thrown: unknown, t0: number, prefix = ''): CallResult {
    const live = this.#live;
    const base = {
      fuel_used: Math.min(this.#polls * JS_FUEL_PER_POLL + this.#hostFuel, this.limits.fuel),
      memory_bytes: live ? this.#memoryUsed(live) : 0,
      duration_us: Math.round((performance.now() - t0) * 1000),
    };
    const err = errorText(thrown);
    let outcome: Exclude<CallOutcome, 'ok'>;
    let error: string;
    if (this.#trap) {
      outcome = this.#trap.kind;
      error = this.#trap.message;
    } else if (this.#why === 'fuel') {
      outcome = 'fuel_exhausted';
      error = `the call ran out of fuel (limit ${this.limits.fuel} units: a loop or recursion that does not end?)`;
    } else if (this.#why === 'timeout' || (err.name === 'InternalError' && err.message === 'interrupted')) {
      outcome = 'timeout';
      error = `the call exceeded its deadline (limit ${this.limits.timeoutMs} ms)`;
    } else if (err.name === 'InternalError' && /out of memory/i.test(err.message)) {
      outcome = 'out_of_memory';
      base.memory_bytes = Math.max(base.memory_bytes, this.limits.memoryBytes);
      error = `the script ran out of memory (limit ${this.limits.memoryBytes} bytes)`;
    } else if (
      (err.name === 'InternalError' || err.name === 'RangeError') &&
      /stack overflow|call stack/i.test(err.message)
    ) {
      outcome = 'stack_overflow';
      error = 'the call overflowed the stack (recursion too deep)';
    } else {
      // An exception the tool threw: its error, the runtime is kept.
      return { ...base, outcome: 'error', error: `${prefix}${err.text}` };
    }
    this.reset();
    return { ...base, outcome, error: `${prefix}${error}` };
  }

  #interrupt(): boolean {
    this.#polls++;
    if (this.#trap) return true;
    if (this.#polls > this.#pollBudget || this.#polls * JS_FUEL_PER_POLL + this.#hostFuel > this.limits.fuel) {
      this.#why = 'fuel';
      return true;
    }
    if (performance.now() > this.#deadline) {
      this.#why = 'timeout';
      return true;
    }
    return false;
  }

  #begin(deadline: number): void {
    this.#deadline = deadline;
    this.#polls = 0;
    this.#hostFuel = 0;
    this.#pollBudget = Math.ceil(this.limits.fuel / JS_FUEL_PER_POLL);
    this.#why = undefined;
    this.#trap = undefined;
    this.#traceparent = undefined;
  }

  /** The key-value state (vars), to carry it into a replacement sandbox. */
  exportVars(): [string, string][] {
    return [...this.#vars];
  }

  /** Restores state exported by exportVars (a new worker taking over a server). */
  importVars(vars: readonly [string, string | Uint8Array][]): void {
    this.#vars.clear();
    this.#varBytes = 0;
    for (const [k, v] of vars) {
      const text = typeof v === 'string' ? v : dec.decode(v);
      this.#vars.set(k, text);
      this.#varBytes += Buffer.byteLength(text) + k.length;
    }
  }

  /** Drops the runtime; the next call creates it afresh. */
  reset(): void {
    const live = this.#live;
    this.#live = undefined;
    if (!live) return;
    try {
      live.invoke.dispose();
      for (const h of live.exports.values()) h.dispose();
      live.ctx.dispose();
      live.rt.dispose();
    } catch {
      // see #abandon
    }
  }

  // ── host functions ─────────────────────────────────────────────────────────

  /** Records a refusal (it decides the call's outcome even if the script catches it) and throws it into the script. */
  #refuse(e: unknown): never {
    if (e instanceof HostTrap) {
      this.#trap ??= e;
      throw new Error(e.message);
    }
    throw e;
  }

  #checkDeadline(): void {
    if (performance.now() > this.#deadline)
      this.#refuse(new HostTrap('timeout', `the call exceeded its deadline (limit ${this.limits.timeoutMs} ms)`));
  }

  /** Charges a host call's fuel (its cost and the bytes it was given); ends the call when it runs out. */
  #charge(units: number): void {
    this.#hostFuel += units;
    if (this.#polls * JS_FUEL_PER_POLL + this.#hostFuel > this.limits.fuel) {
      this.#why = 'fuel';
      this.#refuse(
        new HostTrap(
          'fuel_exhausted',
          `the call ran out of fuel (limit ${this.limits.fuel} units: a loop or recursion that does not end?)`,
        ),
      );
    }
  }

  #hostObject(ctx: QuickJSContext): QuickJSHandle {
    const obj = ctx.newObject();
    const str = (h: QuickJSHandle | undefined): string | undefined =>
      h === undefined || ctx.typeof(h) === 'undefined' ? undefined : ctx.getString(h);
    const ret = (s: string | undefined): QuickJSHandle => (s === undefined ? ctx.undefined : ctx.newString(s));
    // The one entry of every host function: charges its fuel and checks the deadline first.
    const def = (name: string, fn: (...args: (string | undefined)[]) => string | undefined) => {
      const cost = hostCallFuel(name);
      const f = ctx.newFunction(name, (...args: QuickJSHandle[]) => {
        try {
          const given = args.map(str);
          let bytes = 0;
          for (const a of given) bytes += a?.length ?? 0;
          this.#charge(cost + Math.floor(bytes / HOST_BYTES_PER_FUEL));
          this.#checkDeadline();
          return ret(fn(...given));
        } catch (e) {
          return this.#refuse(e);
        }
      });
      ctx.setProp(obj, name, f);
      f.dispose();
    };
    def('log', (level, msg) => {
      const lv = (['trace', 'debug', 'info', 'warn', 'error'] as const).find((l) => l === level) ?? 'info';
      const m = msg ?? '';
      if (this.#logs.accepts(m.length)) this.#logs.write(lv as LogLevel, m);
      return undefined;
    });
    def('config', (key) => this.#grants.config.get(key ?? ''));
    def('var_get', (key) => this.#vars.get(key ?? ''));
    def('var_set', (key = '', value) => {
      const old = this.#vars.get(key);
      const size = (s: string) => Buffer.byteLength(s);
      const bytes =
        this.#varBytes -
        (old !== undefined ? size(old) + key.length : 0) +
        (value !== undefined ? size(value) + key.length : 0);
      if (bytes > this.limits.maxStateBytes)
        throw new HostTrap(
          'out_of_memory',
          `vars.set("${key}") would take the state to ${bytes} bytes, above the limit of ${this.limits.maxStateBytes}`,
        );
      if (value !== undefined) this.#vars.set(key, value);
      else this.#vars.delete(key);
      this.#varBytes = bytes;
      this.varsVersion++;
      return undefined;
    });
    if (this.#grants.httpGranted) def('http', (req = '{}', body) => this.#http(req, body));
    if (this.#grants.files.roots.length > 0) {
      def('file_read', (p = '') => {
        return dec.decode(
          this.#grants.files.read(p, Math.min(this.limits.memoryBytes, this.limits.maxOutputBytes * 4)),
        );
      });
      def('file_write', (p = '', d = '') => {
        this.#grants.files.write(p, enc.encode(d));
        return undefined;
      });
      def('file_list', (p = '') => {
        return JSON.stringify(this.#grants.files.list(p));
      });
    }
    const db = this.#grants.databases;
    if (db) {
      def('sqlite', (r = '') => {
        let req: unknown;
        try {
          req = JSON.parse(r);
        } catch {
          throw new HostTrap(
            'denied',
            'caxton.sqlite.query: the request is not valid JSON ({"database", "sql", "params", "max_rows"})',
          );
        }
        return dec.decode(
          db.query(req, {
            maxBytes: Math.min(this.limits.memoryBytes, this.limits.maxOutputBytes),
            deadline: this.#deadline,
          }),
        );
      });
    }
    return obj;
  }

  #http(reqText: string, body: string | undefined): string {
    const req = checkHttpRequest(reqText, 'caxton.http', this.#grants, this.#traceparent);
    const http = this.#hooks.http;
    if (!http) throw new HostTrap('denied', 'HTTP is not available in this sandbox');
    const res = http.request(
      { ...req, ...(body !== undefined && { body: enc.encode(body) }) },
      { timeoutMs: this.#deadline - performance.now(), maxBytes: Math.min(HTTP_MAX_BYTES, this.limits.memoryBytes) },
    );
    return JSON.stringify({ status: res.status, headers: res.headers, body: dec.decode(res.body) });
  }
}

/**
 * Checks a JavaScript module before it is deployed: it must be UTF-8, parse, and load under the
 * limits. Throws CaxtonError('validation_failed') naming the file and the error.
 */
export function decodeJsSource(bytes: Uint8Array, file: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new CaxtonError('validation_failed', `${file}: the JavaScript module is not valid UTF-8`, { file });
  }
}
