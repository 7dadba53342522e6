/**
 * "unbounded growth": a real `caxton serve` child with small retention settings gets a
 * flood of request messages over HTTP (keep-alive, concurrent) for an agent answering through the
 * scripted provider. After the queue drains, the process's RSS (from /proc/PID/status) is back
 * within 1.5x of what it was at the start, and the database holds no more than its retention
 * allows, in rows and in file size.
 */
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, cleanup, startServe, tempDir, tomlAgent, type ServeProcess } from '../cli/helpers/cli.js';

/**
 * Over three times the retention below, so pruning runs many times during the flood, and enough
 * that an unbounded table outgrows the file bound below. CAXTON_FLOOD_MESSAGES=60000 is the
 * flood of docs/benchmarks.md ("A flood of messages"), with the retention of 20,000 and more; the
 * suite's default of 10,000 halves the retention and the file bound with it, which keeps every
 * ratio the test judges and spends half the CPU.
 */
const MESSAGES = Number(process.env.CAXTON_FLOOD_MESSAGES ?? 10_000);
const SCALE = Math.min(1, MESSAGES / 20_000);
const CONCURRENCY = 64;
const RETENTION = { max_conversations: 2_000 * SCALE, max_messages: 6_000 * SCALE };

const CONFIG = `data_dir = "data"
agents_dir = "agents"

# Authentication off: this test is about memory and retention (test/auth covers the keys).
[auth]
enabled = false

[logging]
level = "warn"
buffer_lines = 1000

[events]
max_rows = ${5_000 * SCALE}

[llm]
default_provider = "demo"

[llm.providers.demo]
type = "scripted"
script = "replies.toml"

[messaging]
max_conversations = ${RETENTION.max_conversations}
max_messages = ${RETENTION.max_messages}

# Every delivery is an execution, and execution records have a bound of their own.
[executions]
max_rows = ${RETENTION.max_messages}
`;

function memKb(pid: number): { rss: number; anon: number; file: number } {
  const st = readFileSync(`/proc/${pid}/status`, 'utf8');
  const v = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(st)?.[1] ?? NaN);
  return { rss: v('VmRSS'), anon: v('RssAnon'), file: v('RssFile') };
}

/** Resident kB of the process's mappings of `file` (SQLite maps caxton.db: its pages count as RssFile). */
function mappedKb(pid: number, file: string): number {
  let total = 0;
  let inFile = false;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) inFile = line.endsWith(file);
    else if (inFile && line.startsWith('Rss:')) total += Number(/(\d+) kB/.exec(line)?.[1] ?? 0);
  }
  return total;
}

/** A few of the server's own metrics (heap, idle collections) from its /metrics text. */
async function heapMetrics(port: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const pick = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return {
    heap_used_mb: pick('caxton_nodejs_heap_size_used_bytes') / 2 ** 20,
    heap_total_mb: pick('caxton_nodejs_heap_size_total_bytes') / 2 ** 20,
    external_mb: pick('caxton_nodejs_external_memory_bytes') / 2 ** 20,
    idle_gc: pick('caxton_idle_gc_total'),
    idle_gc_freed_mb: pick('caxton_idle_gc_freed_bytes_total') / 2 ** 20,
  };
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]);
}

function post(agent: Agent, url: URL, body: string): Promise<{ status: number; retryAfter: number }> {
  return new Promise((res, rej) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (r) => {
        r.resume();
        r.on('end', () => res({ status: r.statusCode ?? 0, retryAfter: Number(r.headers['retry-after'] ?? 0) }));
      },
    );
    req.on('error', rej);
    req.end(body);
  });
}

async function getJson<T>(url: string): Promise<T> {
  const r = await fetch(url);
  return (await r.json()) as T;
}

describe('a flood of messages', () => {
  let dir: string;
  let serve: ServeProcess;
  beforeAll(async () => {
    assertBuilt();
    dir = tempDir('caxton-flood-');
    mkdirSync(join(dir, 'agents'));
    writeFileSync(join(dir, 'caxton.toml'), CONFIG);
    writeFileSync(join(dir, 'replies.toml'), 'fallback = "done"\n');
    writeFileSync(
      join(dir, 'agents', 'worker.toml'),
      tomlAgent('worker', { capabilities: ['work'], extra: '\n[messaging]\nmax_concurrency = 16\n' }),
    );
    // CAXTON_FLOOD_HEAPSNAPSHOT=1: SIGUSR2 writes a heap snapshot (after a full GC) once drained, to see what holds memory.
    serve = await startServe({
      cwd: dir,
      args: ['--config', join(dir, 'caxton.toml')],
      ...(process.env.CAXTON_FLOOD_HEAPSNAPSHOT && { env: { NODE_OPTIONS: '--heapsnapshot-signal=SIGUSR2' } }),
    });
  });
  afterAll(cleanup);

  it('leaves RSS within 1.5x of its start and the database within its retention, after draining', async () => {
    const pid = serve.child.pid!;
    // Warm up (JIT, pools, prepared statements), then take the baseline.
    const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    const url = new URL(`${serve.url}/api/v1/messages`);
    const body = JSON.stringify({
      performative: 'request',
      protocol: 'fipa-request',
      sender: 'flooder',
      capability: 'work',
      content: 'do the thing',
    });
    const send = async (n: number) => {
      let next = 0;
      let accepted = 0;
      let refused = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < n) {
            next++;
            for (;;) {
              const r = await post(agent, url, body);
              if (r.status === 202) break;
              if (r.status !== 429) throw new Error(`POST /api/v1/messages answered ${r.status}`);
              refused++;
              await new Promise((res) => setTimeout(res, Math.min(1000, r.retryAfter * 100)));
            }
            accepted++;
          }
        }),
      );
      return { accepted, refused };
    };
    const drained = async () => {
      for (;;) {
        const s = await getJson<{ queued: number; running: number; retrying: number; open_conversations: number }>(
          `${serve.url}/api/v1/messaging/stats`,
        );
        if (s.queued + s.running + s.retrying === 0 && s.open_conversations === 0) return;
        await new Promise((r) => setTimeout(r, 250));
      }
    };
    await send(1000);
    await drained();
    const rss0 = rssKb(pid);
    const mem0 = memKb(pid);
    const dbMapped0Kb = mappedKb(pid, join(dir, 'data', 'caxton.db'));
    const heap0 = await heapMetrics(serve.metricsPort);
    const t0 = Date.now();
    const { accepted, refused } = await send(MESSAGES);
    const sendMs = Date.now() - t0;
    const rssPeak = rssKb(pid);
    await drained();
    const drainMs = Date.now() - t0;
    // The flood is over: its clients hang up (the server's side of 64 keep-alive sockets goes too).
    agent.destroy();
    // Retention runs every tenth of the smaller limit and on its own after the flood; give the
    // last run a moment (it yields between batches), then look.
    let rss1 = rssKb(pid);
    const dbFile = join(dir, 'data', 'caxton.db');
    const counts = () => {
      const db = new Database(dbFile, { readonly: true, fileMustExist: true });
      try {
        return {
          messages: db.prepare('SELECT count(*) FROM messages').pluck().get() as number,
          conversations: db
            .prepare("SELECT count(*) FROM conversations WHERE state IN ('completed', 'failed', 'expired')")
            .pluck()
            .get() as number,
          deliveries: db.prepare('SELECT count(*) FROM deliveries').pluck().get() as number,
          pages: db.pragma('page_count', { simple: true }) as number,
          pageSize: db.pragma('page_size', { simple: true }) as number,
        };
      } finally {
        db.close();
      }
    };
    let c = counts();
    // Up to 2 minutes: on a loaded machine the idle collection waits for the pruning after the flood.
    for (let i = 0; i < 240 && (c.messages > RETENTION.max_messages + 2_000 * SCALE || rss1 > rss0 * 1.5); i++) {
      await new Promise((r) => setTimeout(r, 500));
      c = counts();
      rss1 = rssKb(pid);
    }
    const walBytes = (() => {
      try {
        return statSync(`${dbFile}-wal`).size;
      } catch {
        return 0;
      }
    })();
    const fileBytes = statSync(dbFile).size;
    const memAfter = memKb(pid);
    const dbMappedAfterKb = mappedKb(pid, dbFile);
    const heapAfter = await heapMetrics(serve.metricsPort);
    let afterGc: ReturnType<typeof memKb> | undefined;
    if (process.env.CAXTON_FLOOD_HEAPSNAPSHOT) {
      serve.child.kill('SIGUSR2');
      await new Promise((r) => setTimeout(r, 15_000));
      afterGc = memKb(pid);
      console.log(`heap snapshot in ${dir}; memory after its full GC (kB): ${JSON.stringify(afterGc)}`);
    }
    const report = {
      sent: MESSAGES,
      accepted,
      refused_429: refused,
      send_ms: sendMs,
      drain_ms: drainMs,
      rss_start_mb: rss0 / 1024,
      rss_peak_mb: rssPeak / 1024,
      rss_after_mb: rss1 / 1024,
      mem_start_kb: mem0,
      mem_after_kb: memAfter,
      db_mapped_kb: { start: dbMapped0Kb, after: dbMappedAfterKb },
      heap: { start: heap0, after: heapAfter },
      db_bytes: fileBytes,
      wal_bytes: walBytes,
      ...c,
    };
    console.log(`flood: ${JSON.stringify(report)}`);
    console.log(
      serve
        .stdout()
        .split('\n')
        .filter((l) => /retention|error/i.test(l))
        .slice(-5)
        .join('\n'),
    );

    expect(accepted).toBe(MESSAGES);
    // Within the retention: every message of a conversation goes with it (a request makes 3:
    // request, agree, inform), and a pruning run can lag by at most a tenth of the limit plus a batch.
    expect(c.conversations).toBeLessThanOrEqual(RETENTION.max_conversations * 1.2);
    expect(c.messages).toBeLessThanOrEqual(RETENTION.max_messages * 1.2);
    expect(c.deliveries).toBeLessThanOrEqual(RETENTION.max_messages * 1.2);
    // On disk, at the retention of a 20,000 flood (the bound scales with it): ~6,000 messages are
    // a few MB plus the free pages pruning leaves (SQLite reuses them, it does not shrink the
    // file); without retention 60,000 requests made ~270 MB (20,000 about 90). Under heavy load (a
    // CI run beside other work) the file reached 33.2 MB while pruning lagged: the bound is set
    // where unbounded growth fails for sure and that lag does not.
    expect(fileBytes).toBeLessThan(48 * SCALE * 1024 * 1024);
    expect(walBytes).toBeLessThanOrEqual(64 * 1024 * 1024 + 1024 * 1024);
    // The target. Without the idle collection ([server] idle_gc, ADR 0031) the flood's
    // garbage stayed in V8's heap while the server sat idle: 1.37-1.58x on a quiet machine, 2.1x
    // under load (docs/benchmarks.md, "Flood"); without retention it was 3.8x and growing.
    expect(rss1).toBeLessThanOrEqual(rss0 * 1.5);
  }, 600_000);
});
