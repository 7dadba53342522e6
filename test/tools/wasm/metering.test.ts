/**
 * Host calls are metered: a module looping on a host function (here the log) is stopped by its
 * fuel or its deadline like any loop, writes at most LOG_LINES_PER_CALL lines a call (the rest
 * dropped, counted and noted in one line), and a call on a worker never holds the main thread —
 * whether the module is WebAssembly or JavaScript.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ToolRegistry } from '../../../src/tools/index.js';
import {
  DEFAULT_TOOL_CAPS,
  LOG_LINES_PER_CALL,
  type LogLevel,
  type WasmToolServer,
} from '../../../src/tools/servers/index.js';
import { MemoryToolAuditSink } from '../../../src/audit/index.js';
import { GuestLog, LOG_BYTES_PER_CALL, LOG_LINE_MAX } from '../../../src/tools/servers/meter.js';
import { jsServer } from '../js/helpers.js';
import { ctx, EXTISM_IMPORTS, server } from './helpers.js';

/** `stall` logs "still here" forever; `ok` logs one line and returns. */
const LOGGER_WAT = `(module ${EXTISM_IMPORTS}
  (import "extism:host/env" "log_info" (func $log_info (param i64)))
  (memory (export "memory") 1)
  (func $line (result i64) (local $p i64)
    (local.set $p (call $alloc (i64.const 10)))
    ${[...'still here'].map((c, i) => `(call $store_u8 (i64.add (local.get $p) (i64.const ${i})) (i32.const ${c.charCodeAt(0)}))`).join('\n    ')}
    (local.get $p))
  (func (export "stall") (result i32) (local $p i64)
    (local.set $p (call $line))
    (loop $l (call $log_info (local.get $p)) (br $l))
    (i32.const 0))
  (func (export "ok") (result i32)
    (call $log_info (call $line))
    (i32.const 0)))`;

const LOGGER_JS = `
export function stall() { for (;;) caxton.log('info', 'still here'); }
export function ok() { caxton.log('info', 'still here'); return 'ok'; }
`;

type Line = { level: LogLevel; message: string; server: string };
const DROPPED =
  /^\d+ log lines \(\d+ bytes\) of this call were dropped: a call may log at most 1000 lines and 262144 bytes$/;

/** How a 2 s call with a billion units of fuel looping on host calls ends, in the sandbox's words. */
const STOPPED_2S =
  /failed \((timeout|fuel_exhausted)\): the call (exceeded its deadline \(limit 2000 ms\)|ran out of fuel \(limit 1000000000 units)/;

/** The log lines of one call: at most the per-call bound, and one line noting the rest. */
function expectBounded(lines: Line[]): void {
  expect(lines.length).toBe(LOG_LINES_PER_CALL + 1);
  expect(lines.slice(0, -1).every((l) => l.message === 'still here')).toBe(true);
  expect(lines.at(-1)).toMatchObject({ level: 'warn', message: expect.stringMatching(DROPPED) });
  expect(Number(/^(\d+)/.exec(lines.at(-1)!.message)![1])).toBeGreaterThan(0);
}

/** Runs `tool` while counting the ticks of a 10 ms timer on this (the main) thread. */
async function callCountingTicks(registry: ToolRegistry, tool: string) {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 10);
  try {
    const t0 = performance.now();
    const r = await registry.invoke([tool], tool, {}, ctx());
    return { r, ticks, ms: performance.now() - t0 };
  } finally {
    clearInterval(timer);
  }
}

describe.each([
  [
    'WebAssembly',
    (name: string, extra: string, opts: object) => server(name, ['stall', 'ok'], LOGGER_WAT, extra, opts),
  ],
  [
    'JavaScript',
    async (name: string, extra: string, opts: object) => jsServer(name, ['stall', 'ok'], LOGGER_JS, extra, opts),
  ],
])('a %s module looping on the log host call', (_kind, make) => {
  const servers: WasmToolServer[] = [];
  afterAll(() => servers.forEach((s) => s.close()));

  async function setup(name: string, limits: string, caps?: typeof DEFAULT_TOOL_CAPS) {
    const lines: Line[] = [];
    const audit = new MemoryToolAuditSink();
    const s = await make(name, `[limits]\n${limits}\n`, {
      audit,
      log: (level: LogLevel, message: string, server: string) => lines.push({ level, message, server }),
      ...(caps && { caps }),
    });
    servers.push(s);
    const registry = new ToolRegistry();
    s.register(registry);
    return { s, lines, audit, registry };
  }

  it('on a worker (2 s limit): ends at its deadline with its log bounded, and the main thread keeps turning', async () => {
    const { s, lines, audit, registry } = await setup(
      'looper',
      'fuel = 1_000_000_000\ntimeout = "2s"',
      DEFAULT_TOOL_CAPS,
    );
    expect(s.offThread).toBe(true);
    const { r, ticks, ms } = await callCountingTicks(registry, 'looper.stall');
    expect(r).toMatchObject({ is_error: true });
    // The sandbox stopped the guest (not the worker being ended past its deadline): the deadline,
    // or the fuel its host calls spent, whichever the machine's speed reaches first.
    expect(r.content).toMatch(STOPPED_2S);
    expectBounded(lines);
    expect(audit.records.at(-1)).toMatchObject({
      tool: 'looper.stall',
      outcome: expect.stringMatching(/^(timeout|fuel_exhausted)$/),
    });
    // Loosely: a 10 ms timer on this thread went on firing through a call of about 2 s.
    expect(ticks).toBeGreaterThan(20);
    console.log(`[metering] ${_kind} worker call: ${Math.round(ms)} ms, ${ticks} ticks of a 10 ms timer`);
    // The next call gets a budget of its own.
    lines.length = 0;
    expect((await registry.invoke(['looper.*'], 'looper.ok', {}, ctx())).is_error).toBeFalsy();
    expect(lines.map((l) => l.message)).toEqual(['still here']);
  }, 20_000);

  // 2 s: beside the whole suite a loop has logged fewer lines than the bound within 200 ms.
  it('on a worker, with more fuel than its 2 s can spend: ends at its deadline, its log bounded', async () => {
    const { s, lines, registry } = await setup('deadline', 'fuel = 2_000_000_000\ntimeout = "2s"', {
      ...DEFAULT_TOOL_CAPS,
      fuel: 2_000_000_000,
    });
    expect(s.offThread).toBe(true);
    const r = await registry.invoke(['deadline.*'], 'deadline.stall', {}, ctx());
    expect(r.content).toMatch(/failed \(timeout\): the call exceeded its deadline \(limit 2000 ms\)$/);
    expectBounded(lines);
  }, 20_000);

  it('with little fuel (within in_thread_fuel, so WebAssembly runs in the server thread): host calls spend it, so the loop ends by fuel, its log bounded', async () => {
    const { s, lines, registry } = await setup('inline', 'fuel = 1_000_000\ntimeout = "10s"', DEFAULT_TOOL_CAPS);
    if (_kind === 'WebAssembly') expect(s.offThread).toBe(false);
    const { r, ms } = await callCountingTicks(registry, 'inline.stall');
    console.log(`[metering] ${_kind} in-thread call: ${Math.round(ms)} ms`);
    expect(r.content).toMatch(/failed \(fuel_exhausted\): the call ran out of fuel \(limit 1000000 units/);
    expectBounded(lines);
  }, 20_000);
});

describe('GuestLog', () => {
  it('bounds the bytes of a call too: long lines are cut, and past the byte budget the rest are dropped and noted', () => {
    const got: [LogLevel, string][] = [];
    const log = new GuestLog((level, message) => got.push([level, message]));
    const long = 'x'.repeat(LOG_LINE_MAX * 2);
    for (let i = 0; i < 100; i++) if (log.accepts(long.length)) log.write('info', long);
    log.end();
    const kept = LOG_BYTES_PER_CALL / LOG_LINE_MAX;
    expect(got.length).toBe(kept + 1);
    expect(got[0]![1]).toBe(`${'x'.repeat(LOG_LINE_MAX)}…`);
    expect(got.at(-1)).toEqual([
      'warn',
      `${100 - kept} log lines (${(100 - kept) * long.length} bytes) of this call were dropped: a call may log at most 1000 lines and 262144 bytes`,
    ]);
    // The next call starts afresh, and a call that drops nothing notes nothing.
    got.length = 0;
    if (log.accepts(2)) log.write('error', 'hi');
    log.end();
    expect(got).toEqual([['error', 'hi']]);
  });
});
