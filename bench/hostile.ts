/**
 * Hostile agent input must not block the event loop: a real `caxton serve` child
 * process (dist/cli/main.js), /health asked one request after another from this process, first
 * idle (the baseline), then while each hostile agent body is posted over and over on another
 * connection (one in flight). Reports /health latency during each, beside the idle baseline of
 * the same run, and what the hostile request itself took and answered.
 *
 * Then the same while a tool module loops on the log host call (ADR 0112): deployed through the
 * API with a 2 s limit, once with fuel above `in_thread_fuel` (its calls run on a worker) and once
 * within it (they run in the server thread, bounded by the fuel its host calls spend).
 *
 * Target: /health answers within 50 ms (p99 and max) while each hostile input is processed.
 */
import { spawnListening, type Listening } from './lib/listening.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import wabtInit from 'wabt';
import { parseAgent } from '../src/agents/index.js';
import { note } from './lib/progress.js';
import type { Row, Suite, SuiteReport } from './lib/report.js';
import { fmtMs, msSince, summarize, type Summary } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';

const SECONDS = Number(process.env.BENCH_DURATION ?? 3);
const TARGET_MS = 50;

const nested = (n: number) => '['.repeat(n) + '1' + ']'.repeat(n);
const LAUGHS = [
  'l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]',
  ...Array.from({ length: 8 }, (_, i) => `l${i + 1}: &l${i + 1} [${Array(9).fill(`*l${i}`).join(', ')}]`),
];

/** label, path, content type, body: the hostile inputs that reach the agent parser. */
const HOSTILE: [string, string, string, string][] = [
  [
    'TOML header `[` + 3,200 spaces + `"]"` + 3,200 spaces + `]` (6.4 KB)',
    'agents/validate',
    'application/toml',
    `name = "h"\nsystem_prompt = "p"\n[${' '.repeat(3200)}"]"${' '.repeat(3200)}]\n`,
  ],
  [
    'YAML alias bomb (9 levels × 9 aliases)',
    'agents',
    'text/markdown',
    `---\nname: bomb\nmetadata:\n${LAUGHS.map((l) => `  ${l}`).join('\n')}\n---\nhello\n`,
  ],
  [
    'JSON parameters nested 100,000 deep (200 KB)',
    'agents',
    'application/json',
    `{"name":"d","system_prompt":"x","parameters":{"p":${nested(100_000)}}}`,
  ],
  [
    'JSON metadata nested 2,000 deep',
    'agents',
    'application/json',
    `{"name":"d","system_prompt":"x","metadata":{"m":${nested(2000)}}}`,
  ],
  [
    'TOML `[parameters.k.k…]` with 20,000 dotted parts (40 KB)',
    'agents',
    'application/toml',
    `name = "d"\nsystem_prompt = "x"\n[parameters.${Array(20_000).fill('k').join('.')}]\nx = 1\n`,
  ],
  [
    'YAML frontmatter of 100,000 `- ` (200 KB)',
    'agents',
    'text/markdown',
    `---\nname: d\nmetadata:\n  ${'- '.repeat(100_000)}x\n---\nhi\n`,
  ],
  [
    'YAML frontmatter with 16,000 anchors, each aliased once (340 KB)',
    'agents/validate',
    'text/markdown',
    `---\nname: a\nmetadata:\n${Array.from({ length: 16_000 }, (_, i) => `  k${i}: &a${i} x\n  r${i}: *a${i}`).join('\n')}\n---\nhi\n`,
  ],
  [
    'YAML frontmatter with 16,000 plain keys (200 KB, valid: the cost of a large body)',
    'agents/validate',
    'text/markdown',
    `---\nname: a\nmetadata:\n${Array.from({ length: 16_000 }, (_, i) => `  k${i}: x`).join('\n')}\n---\nhi\n`,
  ],
  [
    '`limits.timeout` = "1" + 200,000 spaces + "x"',
    'agents/validate',
    'application/toml',
    `name = "u"\nsystem_prompt = "x"\n[limits]\ntimeout = "1${' '.repeat(200_000)}x"\n`,
  ],
  // Not hostile, just large: about a second of parsing, done on the parser's worker thread (ADR 0020).
  [
    'TOML agent of 1.2 MB, 35,600 flat `[metadata]` keys (valid: parsed on the worker thread)',
    'agents/validate',
    'application/toml',
    largeToml(1_200_000),
  ],
];

/** A valid TOML agent of about `bytes` bytes: flat keys in [metadata] (as test/agents/parse-off-thread.test.ts). */
function largeToml(bytes: number): string {
  const lines = ['name = "large"', 'system_prompt = "You hold a lot of metadata."', '[metadata]'];
  for (let size = 0, i = 0; size < bytes; i++) {
    const line = `key_${String(i).padStart(6, '0')} = "value number ${i}"`;
    lines.push(line);
    size += line.length + 1;
  }
  return `${lines.join('\n')}\n`;
}

/** A tool module whose `stall` logs "still here" forever (as a C tool calling cx_host_log_info in a loop). */
const LOG_LOOP_WAT = `(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "log_info" (func $log_info (param i64)))
  (memory (export "memory") 1)
  (func (export "stall") (result i32) (local $p i64)
    (local.set $p (call $alloc (i64.const 10)))
    ${[...'still here'].map((c, i) => `(call $store_u8 (i64.add (local.get $p) (i64.const ${i})) (i32.const ${c.charCodeAt(0)}))`).join('\n    ')}
    (loop $l (call $log_info (local.get $p)) (br $l))
    (i32.const 0)))`;

async function logLoopModule(): Promise<string> {
  const wabt = await wabtInit();
  const m = wabt.parseWat('log-loop.wat', LOG_LOOP_WAT);
  try {
    return Buffer.from(m.toBinary({}).buffer).toString('base64');
  } finally {
    m.destroy();
  }
}

/** Deploys the log-looping tool server `name` with `fuel`, a 2 s limit. */
async function deployLogLoop(url: string, name: string, fuel: string): Promise<void> {
  const manifest = `name = "${name}"\nversion = "1.0.0"\ndescription = "logs forever"\n[[tools]]\nname = "stall"\ndescription = "logs forever"\n[limits]\nfuel = ${fuel}\ntimeout = "2s"\n`;
  const res = await fetch(`${url}/api/v1/tools`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ manifest, wasm: await logLoopModule() }),
  });
  if (res.status !== 201 && res.status !== 200) throw new Error(`deploying ${name}: ${res.status} ${await res.text()}`);
}

async function startServe(): Promise<Listening & { remove(): void }> {
  const tmp = tempDir('caxton-bench-hostile-');
  const dir = tmp.path;
  const config = join(dir, 'caxton.toml');
  // 2 MiB: room for the 1.2 MB agent (the default body limit is 1 MiB).
  // Authentication off: this suite measures parsing (the auth suite measures authentication).
  writeFileSync(
    config,
    '[server]\nport = 0\nmax_body_size = "2MiB"\n[metrics]\nenabled = false\n[logging]\nlevel = "error"\n[auth]\nenabled = false\n',
  );
  const server = await spawnListening(
    [join(process.cwd(), 'dist/cli/main.js'), 'serve', '--config', config],
    'caxton serve',
    {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir },
    },
  );
  return { ...server, remove: tmp.remove };
}

/** /health one request after another until `stop()` is true; latency of each. */
async function healthLoop(url: string, stop: () => boolean): Promise<Summary & { errors: number }> {
  const samples: number[] = [];
  let errors = 0;
  do {
    const t0 = process.hrtime.bigint();
    const res = await fetch(`${url}/health`);
    await res.text();
    samples.push(msSince(t0));
    if (res.status !== 200) errors++;
  } while (!stop());
  return { ...summarize(samples), errors };
}

/** POSTs `body` to `path` back to back for `seconds` while /health is asked back to back on another connection. */
async function whilePosting(url: string, path: string, type: string, body: string, seconds: number) {
  let done = false;
  const times: number[] = [];
  const statuses = new Set<number>();
  const poster = (async () => {
    const end = Date.now() + seconds * 1000;
    while (Date.now() < end) {
      const t0 = process.hrtime.bigint();
      const res = await fetch(`${url}/api/v1/${path}`, { method: 'POST', headers: { 'content-type': type }, body });
      await res.text();
      times.push(msSince(t0));
      statuses.add(res.status);
    }
    done = true;
  })();
  const during = await healthLoop(url, () => done);
  await poster;
  return { during, post: summarize(times), statuses: [...statuses] };
}

async function run(): Promise<SuiteReport> {
  const { pid, url, stop, remove } = await startServe();
  note(`caxton serve (pid ${pid}) on ${url}`);
  try {
    // Warm-up, then the idle baseline.
    let until = Date.now() + 500;
    await healthLoop(url, () => Date.now() > until);
    until = Date.now() + SECONDS * 1000;
    const idle = await healthLoop(url, () => Date.now() > until);
    const rows: Row[] = [];
    const raw: unknown[] = [{ label: 'idle', health_ms: idle }];
    for (const [label, path, type, body] of HOSTILE) {
      note(`posting: ${label}`);
      const { during, post, statuses } = await whilePosting(url, path, type, body, SECONDS);
      // The parser alone, in this process: what one hostile body costs the server's event loop.
      const format = type === 'application/toml' ? 'toml' : type === 'text/markdown' ? 'markdown' : 'json';
      const parses: number[] = [];
      // A large body takes about a second a parse: a few runs are enough.
      for (let i = 0, runs = body.length > 256 * 1024 ? 3 : 20; i < runs; i++) {
        const t0 = process.hrtime.bigint();
        parseAgent(body, { format });
        parses.push(msSince(t0));
      }
      const parse = summarize(parses);
      const ok = during.p99 <= TARGET_MS && during.max <= TARGET_MS && during.errors === 0;
      rows.push({
        metric: `/health while posting ${label}`,
        value: `p50 ${fmtMs(during.p50)} / p99 ${fmtMs(during.p99)} / max ${fmtMs(during.max)} (${during.n} requests); the POST: ${statuses.join(', ')} in p50 ${fmtMs(post.p50)} (${post.n} posts); parseAgent alone p50 ${fmtMs(parse.p50)} / max ${fmtMs(parse.max)}`,
        baseline: `idle p50 ${fmtMs(idle.p50)} / p99 ${fmtMs(idle.p99)} / max ${fmtMs(idle.max)}`,
        target: `≤ ${TARGET_MS} ms`,
        verdict: ok ? 'pass' : 'fail',
      });
      raw.push({
        label,
        path,
        bytes: Buffer.byteLength(body),
        statuses: statuses,
        post_ms: post,
        health_ms: during,
        parse_ms: parse,
      });
    }
    for (const [name, fuel, where] of [
      ['log-loop-worker', '1_000_000_000', 'on its worker'],
      ['log-loop-inline', '1_000_000', 'in the server thread'],
    ] as const) {
      const label = `a tool looping on the log host call (fuel ${fuel}, 2 s limit, ${where})`;
      note(`calling: ${label}`);
      await deployLogLoop(url, name, fuel);
      const {
        during,
        post: call,
        statuses,
      } = await whilePosting(url, `tools/${name}/stall/call`, 'application/json', '{"args":{}}', Math.max(SECONDS, 5));
      const ok = during.p99 <= Math.max(TARGET_MS, 5 * idle.p99) && during.errors === 0;
      rows.push({
        metric: `/health while calling ${label}`,
        value: `p50 ${fmtMs(during.p50)} / p99 ${fmtMs(during.p99)} / max ${fmtMs(during.max)} (${during.n} requests); the call: ${statuses.join(', ')} in p50 ${fmtMs(call.p50)} / max ${fmtMs(call.max)} (${call.n} calls)`,
        baseline: `idle p50 ${fmtMs(idle.p50)} / p99 ${fmtMs(idle.p99)} / max ${fmtMs(idle.max)}`,
        target: `p99 ≤ 5× idle p99 (or ${TARGET_MS} ms); each call ends by 3 s`,
        verdict: ok && call.max <= 3_000 ? 'pass' : 'fail',
      });
      raw.push({ label, statuses: statuses, call_ms: call, health_ms: during });
    }
    return {
      rows,
      notes: [
        `Each input posted back to back for ${SECONDS} s on one connection while /health is asked back to back on another; the server is a \`caxton serve\` child process, so its event loop is not the client's.`,
      ],
      raw,
    };
  } finally {
    await stop();
    remove();
  }
}

export const hostileSuite: Suite = {
  name: 'hostile',
  description: '/health latency while hostile agent bodies are posted, and while a tool loops on the log host call',
  run,
};
