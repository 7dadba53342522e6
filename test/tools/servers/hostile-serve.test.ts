/**
 * Hostile input against a real `caxton serve` child process: deployed JavaScript and
 * WebAssembly tools cannot starve or bloat the server.
 *  - A manifest asking for more than `[tools.limits]` allows (1 GiB, 2e9 fuel, 30 s) is refused
 *    with a 422 naming each field, the value and the cap; nothing is stored.
 *  - While a tool burns its whole budget (a JS loop until its timeout, a WASM loop until its fuel
 *    runs out), GET /health keeps answering (bound 2 s; before, it took the whole call: 3 s+).
 *  - A tool that takes all the memory it may has it given back when its instance is dropped: the
 *    server's RSS returns near where it started.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, cleanup, startServe, tempDir, type ServeProcess } from '../../cli/helpers/cli.js';
import { sleep } from '../../helpers/wait.js';
import { EXTISM_IMPORTS, outputText, wat } from '../wasm/helpers.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const MiB = 1024 * 1024;

const JS_SOURCE = `
export function ok() { return 'ok'; }
export function spin() { for (;;) {} }
export function bomb() { const a = []; for (;;) a.push(new Uint8Array(1 << 20).fill(1)); }
`;

/** `spin`: a loop that only fuel stops; `bomb`: touches every page it can grow, then traps. */
const WASM_SOURCE = `(module ${EXTISM_IMPORTS}
  (memory (export "memory") 1)
  (func (export "ok") (result i32) (local $p i64)
    ${outputText('ok')}
    (i32.const 0))
  (func (export "spin") (result i32)
    (loop $l (br $l))
    (i32.const 0))
  (func (export "bomb") (result i32) (local $page i32)
    (loop $l
      (local.set $page (memory.grow (i32.const 1)))
      (if (i32.eq (local.get $page) (i32.const -1)) (then unreachable))
      (memory.fill (i32.mul (local.get $page) (i32.const 65536)) (i32.const 1) (i32.const 65536))
      (br $l))
    (i32.const 0)))`;

const manifest = (name: string, module: string, limits: string) =>
  `name = "${name}"\nversion = "1.0.0"\ndescription = "hostile ${name}"\nmodule = "${module}"\n` +
  ['ok', 'spin', 'bomb'].map((t) => `[[tools]]\nname = "${t}"\ndescription = "${t}"\n`).join('') +
  `[limits]\n${limits}\n`;

/** The child's resident set and its peak so far (Linux /proc), bytes. */
function rss(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

describe('hostile tools against a real server', () => {
  let serve: ServeProcess;
  let wasmB64: string;

  const post = async (path: string, body: unknown): Promise<{ status: number; json: Json }> => {
    const res = await fetch(serve.url + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, json: await res.json() };
  };
  const deploy = (manifestText: string, module: string) =>
    post('/api/v1/tools', { manifest: manifestText, wasm: module });
  const call = (tool: string) => post(`/api/v1/tools/${tool.replace('.', '/')}/call`, { args: {} });

  /** Polls /health while `work` runs: every answer's latency (ms). */
  async function healthDuring(work: Promise<unknown>): Promise<number[]> {
    let done = false;
    void work.finally(() => (done = true));
    const lat: number[] = [];
    while (!done) {
      const t0 = performance.now();
      const res = await fetch(`${serve.url}/health`, { signal: AbortSignal.timeout(10_000) });
      await res.text();
      expect(res.status).toBe(200);
      lat.push(performance.now() - t0);
      await sleep(20);
    }
    return lat;
  }

  beforeAll(async () => {
    assertBuilt();
    const dir = tempDir('caxton-hostile-tools-');
    // Authentication off: this test is about tools (test/auth covers the keys).
    writeFileSync(
      join(dir, 'caxton.toml'),
      'data_dir = "data"\nagents_dir = "agents"\n\n[auth]\nenabled = false\n\n[logging]\nlevel = "warn"\n',
    );
    mkdirSync(join(dir, 'agents'));
    serve = await startServe({ cwd: dir, args: ['--config', join(dir, 'caxton.toml')] });
    wasmB64 = Buffer.from(await wat(WASM_SOURCE)).toString('base64');
  });
  afterAll(cleanup);

  it('a manifest asking for more than [tools.limits] is refused with 422 naming field, value and cap; nothing is stored', async () => {
    const greedy = 'memory = "1GiB"\nfuel = 2_000_000_000\ntimeout = "30s"';
    for (const [name, module, body] of [
      ['greedy-js', 'tool.js', Buffer.from(JS_SOURCE).toString('base64')],
      ['greedy-wasm', 'tool.wasm', wasmB64],
    ] as const) {
      const res = await deploy(manifest(name, module, greedy), body);
      expect(res.status).toBe(422);
      expect(res.json.error.code).toBe('validation_failed');
      expect(res.json.error.message).toMatch(
        /limits\.memory: limits\.memory = 1GiB is above the operator's cap of 128MiB; ask for at most 128MiB, or have the operator raise \[tools\.limits\] memory/,
      );
      expect(res.json.error.details.errors.map((e: Json) => e.field)).toEqual([
        'limits.memory',
        'limits.fuel',
        'limits.timeout',
      ]);
      expect(res.json.error.details.limits).toEqual([
        { field: 'limits.memory', requested: 1024 * MiB, cap: 128 * MiB },
        { field: 'limits.fuel', requested: 2_000_000_000, cap: 1_000_000_000 },
        { field: 'limits.timeout', requested: 30_000, cap: 10_000 },
      ]);
      const list = (await (await fetch(`${serve.url}/api/v1/tools`)).json()) as Json;
      expect(list.servers.map((s: Json) => s.name)).not.toContain(name);
    }
  });

  it('/health answers while a JavaScript tool spins until its timeout and a WebAssembly tool until its fuel runs out', async () => {
    const js = await deploy(
      manifest('spin-js', 'tool.js', 'memory = "128MiB"\nfuel = 1_000_000_000\ntimeout = "3s"'),
      Buffer.from(JS_SOURCE).toString('base64'),
    );
    expect(js.status, JSON.stringify(js.json)).toBe(201);
    const wasm = await deploy(
      manifest('spin-wasm', 'tool.wasm', 'memory = "1MiB"\nfuel = 1_000_000_000\ntimeout = "3s"'),
      wasmB64,
    );
    expect(wasm.status, JSON.stringify(wasm.json)).toBe(201);
    for (const tool of ['spin-js.spin', 'spin-wasm.spin']) {
      const started = performance.now();
      const running = call(tool);
      const lat = await healthDuring(running);
      const r = await running;
      const took = performance.now() - started;
      expect(r.status).toBe(200);
      expect(r.json).toMatchObject({ is_error: true });
      expect(['timeout', 'fuel_exhausted'], JSON.stringify(r.json)).toContain(r.json.outcome);
      console.log(
        `${tool}: ${r.json.outcome} after ${Math.round(took)} ms; /health ×${lat.length}, max ${lat.reduce((a, b) => Math.max(a, b), 0).toFixed(1)} ms`,
      );
      expect(lat.length).toBeGreaterThan(3);
      // Generous bound (shared CI machine); before the fix /health waited for the whole call.
      for (const ms of lat) expect(ms).toBeLessThan(2_000);
      // The server is fine afterwards, and so is the tool (a fresh instance).
      expect((await call(`${tool.split('.')[0]}.ok`)).json).toMatchObject({ is_error: false, content: 'ok' });
    }
  });

  it('a call that outlives the deadline its caller gave ends as a timeout, and the tool answers again', async () => {
    const js = await deploy(
      manifest('late-js', 'tool.js', 'memory = "128MiB"\nfuel = 1_000_000_000\ntimeout = "3s"'),
      Buffer.from(JS_SOURCE).toString('base64'),
    );
    expect(js.status, JSON.stringify(js.json)).toBe(201);
    // The caller's 300 ms end before the tool's own 3 s: the answer is the caller's deadline's.
    const r = await post('/api/v1/tools/late-js/spin/call', { args: {}, timeout_ms: 300 });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({
      is_error: true,
      outcome: 'timeout',
      content: expect.stringMatching(/^tool "late-js\.spin" timed out after \d+ ms$/),
    });
    expect((await call('late-js.ok')).json).toMatchObject({ is_error: false, content: 'ok' });
  });

  it('memory a tool took is given back when its instance is dropped (RSS back near its start)', async () => {
    const js = await deploy(
      manifest('bomb-js', 'tool.js', 'memory = "128MiB"\ntimeout = "10s"'),
      Buffer.from(JS_SOURCE).toString('base64'),
    );
    expect(js.status, JSON.stringify(js.json)).toBe(201);
    const wasm = await deploy(manifest('bomb-wasm', 'tool.wasm', 'memory = "128MiB"\nfuel = 100_000_000'), wasmB64);
    expect(wasm.status, JSON.stringify(wasm.json)).toBe(201);
    const pid = serve.child.pid!;
    for (const server of ['bomb-js', 'bomb-wasm']) {
      expect((await call(`${server}.ok`)).json).toMatchObject({ is_error: false });
      await sleep(500);
      // Resets the peak (VmHWM) so that `during` is this call's own.
      writeFileSync(`/proc/${pid}/clear_refs`, '5');
      const before = rss(pid);
      const r = await call(`${server}.bomb`);
      expect(r.json).toMatchObject({ is_error: true });
      expect(['out_of_memory', 'trap', 'timeout'], JSON.stringify(r.json)).toContain(r.json.outcome);
      const during = rss(pid);
      // The worker holding the instance is ended; give the OS a moment to unmap it.
      let after = rss(pid);
      for (let i = 0; i < 100 && after.rss > before.rss + 48 * MiB; i++) {
        await sleep(100);
        after = rss(pid);
      }
      console.log(
        `${server}: RSS before ${(before.rss / MiB).toFixed(0)} MiB, peak ${(during.peak / MiB).toFixed(0)} MiB, after ${(after.rss / MiB).toFixed(0)} MiB (${r.json.outcome}, memory_bytes ${r.json.memory_bytes})`,
      );
      // It did take the memory (the peak rose by most of the 128 MiB cap) ...
      expect(during.peak - before.rss).toBeGreaterThan(64 * MiB);
      // ... and gave it back: within 48 MiB of where it started (V8 keeps some heap).
      expect(after.rss - before.rss).toBeLessThan(48 * MiB);
      // The server still serves the tool (a new worker, a fresh instance).
      expect((await call(`${server}.ok`)).json).toMatchObject({ is_error: false, content: 'ok' });
    }
  });
});
