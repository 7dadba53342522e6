/**
 * Where agent bodies are parsed (ADR 0020): small ones on the calling thread, large ones on one
 * worker thread, so a large valid agent (a 1.2 MB TOML of flat keys takes about a second to parse)
 * does not hold the event loop, and /health and every other request keep answering meanwhile.
 *
 * One long-lived worker, started on the first large body and ended by `close()` (with the server);
 * large bodies queue on it one after another, which also bounds the CPU and memory they can take
 * at once. The worker has its own heap limit: a body that would exhaust it ends that worker (the
 * parse fails, the next one starts a new worker), not the server. Results are the same objects
 * as `parseAgent`'s (structured-cloned), and an error thrown by the parser is thrown here.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { parseAgent, type ParseOptions, type ParseResult } from './parse.js';
import type { ParseReply, ParseRequest } from './parse-worker.js';

/** Bodies of at least this many bytes are parsed on the worker (the parser takes ≈ 1 ms per 1-2 KB of many small keys). */
export const OFF_THREAD_PARSE_BYTES = 64 * 1024;
/** The worker's old-generation heap, in MiB: a body several times the body limit fits with room to spare. */
const WORKER_HEAP_MB = 256;

/** The compiled worker module (workers load JavaScript: from src, use the build in dist/). */
function workerPath(): string {
  const here = fileURLToPath(import.meta.url);
  const js = here.replace(/parse-pool\.(ts|js)$/, 'parse-worker.js');
  if (existsSync(js)) return js;
  return js.replace(/([\\/])src([\\/])agents([\\/])parse-worker\.js$/, '$1dist$2agents$3parse-worker.js');
}

interface Pending {
  resolve(r: ParseResult): void;
  reject(e: Error): void;
}

export interface ParseStats {
  /** Bodies parsed on the calling thread (below the threshold). */
  in_thread: number;
  /** Bodies parsed on the worker. */
  off_thread: number;
  workers_started: number;
  /** The worker thread's id of the last parse done there (the calling thread's is 0 in the main thread). */
  last_thread: number | undefined;
}

export class AgentParser {
  readonly #threshold: number;
  #worker: Worker | undefined;
  readonly #pending = new Map<number, Pending>();
  #next = 1;
  #closed = false;
  readonly #stats: ParseStats = { in_thread: 0, off_thread: 0, workers_started: 0, last_thread: undefined };

  /** `offThreadBytes`: bodies this large or larger go to the worker (default OFF_THREAD_PARSE_BYTES). */
  constructor(opts: { offThreadBytes?: number } = {}) {
    this.#threshold = opts.offThreadBytes ?? OFF_THREAD_PARSE_BYTES;
  }

  stats(): ParseStats {
    return { ...this.#stats };
  }

  /** parseAgent, on the worker when `input` is large; after close(), always in-thread. */
  parse(input: string | Uint8Array, opts: ParseOptions): Promise<ParseResult> {
    // A string's length counts UTF-16 units, not bytes: near enough for a threshold.
    const size = typeof input === 'string' ? input.length : input.byteLength;
    if (size < this.#threshold || this.#closed) {
      this.#stats.in_thread++;
      try {
        return Promise.resolve(parseAgent(input, opts));
      } catch (e) {
        return Promise.reject(e instanceof Error ? e : new Error(String(e)));
      }
    }
    const worker = this.#ensureWorker();
    const id = this.#next++;
    return new Promise<ParseResult>((resolve, reject) => {
      if (this.#pending.size === 0) worker.ref();
      this.#pending.set(id, { resolve, reject });
      worker.postMessage({ id, input, opts } satisfies ParseRequest);
    });
  }

  #ensureWorker(): Worker {
    if (this.#worker) return this.#worker;
    const w = new Worker(workerPath(), { resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB } });
    // Idle, it must not keep the process alive (it is ref'd while parses are pending).
    w.unref();
    this.#stats.workers_started++;
    w.on('message', (m: ParseReply) => {
      const p = this.#pending.get(m.id);
      if (!p) return;
      this.#pending.delete(m.id);
      if (this.#pending.size === 0) w.unref();
      this.#stats.off_thread++;
      this.#stats.last_thread = m.thread;
      if ('result' in m) p.resolve(m.result);
      else p.reject(Object.assign(new Error(m.error.message), { name: m.error.name }));
    });
    const ended = (why: string) => {
      if (this.#worker !== w) return;
      this.#worker = undefined;
      for (const p of this.#pending.values()) p.reject(new Error(`the agent parser's worker thread ended (${why})`));
      this.#pending.clear();
    };
    w.on('error', (e) => ended(e.message));
    w.on('exit', (code) => ended(`exit code ${code}`));
    this.#worker = w;
    return w;
  }

  /** Ends the worker; parses still pending fail. Later parses run in-thread. */
  async close(): Promise<void> {
    this.#closed = true;
    const w = this.#worker;
    if (!w) return;
    this.#worker = undefined;
    for (const p of this.#pending.values()) p.reject(new Error('the server is stopping'));
    this.#pending.clear();
    await w.terminate();
  }
}
