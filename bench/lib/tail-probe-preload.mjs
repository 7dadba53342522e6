/**
 * Preloaded into a `caxton serve` by bench/tail-probe.mjs (`--import`): what the server's event
 * loop and its threads did, on the monotonic clock (ms), for the probe to lay beside each request.
 * On the main thread: young- and old-generation GC pauses, each outermost SQLite transaction
 * (wall, the process's CPU, the rows of a turn-writer batch) and each HTTP request's arrival and
 * finish, written to TAILPROBE_OUT on SIGUSR2. In the WAL checkpoint worker (its eval'd source
 * gets a prologue): each checkpoint, appended to TAILPROBE_OUT.ckpt as it ends.
 */
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import workerThreads from 'node:worker_threads';

const out = process.env.TAILPROBE_OUT;
const hr = () => Number(process.hrtime.bigint()) / 1e6;
const offset = hr() - performance.now();
const gc = [];
const tx = [];
const reqs = [];
const load = createRequire(`${process.env.TAILPROBE_ROOT}/package.json`);
const Database = load('better-sqlite3');

/** Prepended to the checkpoint worker's CommonJS source: times each checkpoint. */
const CHECKPOINT_PROLOGUE = `{
  const D = require(require('node:worker_threads').workerData.module);
  const pragma = D.prototype.pragma;
  const hr = () => Number(process.hrtime.bigint()) / 1e6;
  D.prototype.pragma = function (s, o) {
    if (!String(s).includes('wal_checkpoint')) return pragma.call(this, s, o);
    const t0 = hr();
    const r = pragma.call(this, s, o);
    require('node:fs').appendFileSync(${JSON.stringify(`${out}.ckpt`)}, JSON.stringify([t0, hr() - t0, r[0] && r[0].log]) + '\\n');
    return r;
  };
}
`;

if (workerThreads.isMainThread) {
  const Worker = workerThreads.Worker;
  workerThreads.Worker = class extends Worker {
    constructor(source, options) {
      const checkpoints = options?.eval === true && String(source).includes('wal_checkpoint');
      super(checkpoints ? CHECKPOINT_PROLOGUE + source : source, options);
    }
  };
  syncBuiltinESMExports();

  new PerformanceObserver((l) => {
    for (const e of l.getEntries()) gc.push([e.startTime + offset, e.duration, e.detail?.kind]);
  }).observe({ entryTypes: ['gc'] });

  const transaction = Database.prototype.transaction;
  let depth = 0;
  Database.prototype.transaction = function (fn) {
    const wrapped = transaction.call(this, fn);
    const timed = function (...args) {
      if (depth++ > 0) {
        try {
          return wrapped.apply(this, args);
        } finally {
          depth--;
        }
      }
      const t0 = hr();
      const c0 = process.cpuUsage();
      try {
        return wrapped.apply(this, args);
      } finally {
        depth--;
        const c = process.cpuUsage(c0);
        let rows = -1;
        if (args[0] instanceof Map) {
          rows = 0;
          for (const v of args[0].values()) rows += v.length;
        }
        tx.push([t0, hr() - t0, (c.user + c.system) / 1000, rows]);
      }
    };
    for (const k of ['deferred', 'immediate', 'exclusive']) timed[k] = wrapped[k];
    return timed;
  };

  const emit = http.Server.prototype.emit;
  http.Server.prototype.emit = function (event, ...args) {
    if (event === 'request') {
      const t = hr();
      args[1].once('finish', () => reqs.push([t, hr()]));
    }
    return emit.call(this, event, ...args);
  };

  process.on('SIGUSR2', () => writeFileSync(out, JSON.stringify({ gc, tx, reqs })));
}
