/**
 * The operator's caps over tool manifests (`[tools.limits]`) with ToolServerManager on a
 * real SQLite file and real modules — refused at deploy naming field, value and cap; a per-server
 * grant may raise one server's; limits a manifest leaves out are lowered to the caps; the caps
 * also decide which servers run on a worker thread. And the config section itself.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadServerConfig, toolGrantSchema } from '../../../src/config/index.js';
import { CaxtonError } from '../../../src/shared/errors.js';
import { openDatabase } from '../../../src/storage/index.js';
import { ToolRegistry } from '../../../src/tools/index.js';
import { DEFAULT_TOOL_CAPS, ToolServerManager } from '../../../src/tools/servers/index.js';
import { auditRegistryCalls, MemoryToolAuditSink } from '../../../src/audit/index.js';
import { makeTempDir, removeTempDirs } from '../../helpers/tmp.js';
import { ctx, OK_WAT, wat } from '../wasm/helpers.js';

afterAll(removeTempDirs);

const MiB = 1024 * 1024;
const JS = new TextEncoder().encode("export function ok() { return 'ok'; }\n");
const jsManifest = (name: string, limits = '') =>
  `name = "${name}"\nversion = "1.0.0"\ndescription = "d"\nmodule = "tool.js"\n[[tools]]\nname = "ok"\ndescription = "ok"\n${limits ? `[limits]\n${limits}\n` : ''}`;
const wasmManifest = (name: string, limits = '') =>
  `name = "${name}"\nversion = "1.0.0"\ndescription = "d"\n[[tools]]\nname = "ok"\ndescription = "ok"\n${limits ? `[limits]\n${limits}\n` : ''}`;

async function manager(opts: Partial<ConstructorParameters<typeof ToolServerManager>[0]> = {}) {
  const tools = new ToolRegistry();
  const m = new ToolServerManager({ db: openDatabase(makeTempDir()), tools, builtinDir: false, ...opts });
  await m.start();
  return { m, tools };
}

async function deployError(fn: () => Promise<unknown>): Promise<CaxtonError> {
  try {
    await fn();
  } catch (e) {
    if (e instanceof CaxtonError) return e;
    throw e;
  }
  throw new Error('expected the deploy to be refused');
}

describe('[tools.limits]: operator caps over manifests', () => {
  it('refuses a manifest stating more than a cap (validation_failed → 422), naming field, value, cap and how to raise it; nothing changes', async () => {
    const { m, tools } = await manager();
    const e = await deployError(() =>
      m.deploy(
        jsManifest('greedy', 'memory = "1GiB"\nfuel = 2_000_000_000\ntimeout = "30s"\nmax_output = "64MiB"'),
        JS,
      ),
    );
    expect(e.code).toBe('validation_failed');
    expect(e.message).toBe(
      'caxton-tool.toml: the package asks for more than this server allows:\n' +
        "limits.memory: limits.memory = 1GiB is above the operator's cap of 128MiB; ask for at most 128MiB, or have the operator raise [tools.limits] memory (every server) or [tools.greedy] limits.memory (this one) in caxton.toml\n" +
        "limits.fuel: limits.fuel = 2000000000 is above the operator's cap of 1000000000; ask for at most 1000000000, or have the operator raise [tools.limits] fuel (every server) or [tools.greedy] limits.fuel (this one) in caxton.toml\n" +
        "limits.timeout: limits.timeout = 30s is above the operator's cap of 10s; ask for at most 10s, or have the operator raise [tools.limits] timeout (every server) or [tools.greedy] limits.timeout (this one) in caxton.toml\n" +
        "limits.max_output: limits.max_output = 64MiB is above the operator's cap of 16MiB; ask for at most 16MiB, or have the operator raise [tools.limits] max_output (every server) or [tools.greedy] limits.max_output (this one) in caxton.toml",
    );
    expect((e.details as { errors: { field: string; code: string }[] }).errors.map((i) => [i.field, i.code])).toEqual([
      ['limits.memory', 'above_operator_cap'],
      ['limits.fuel', 'above_operator_cap'],
      ['limits.timeout', 'above_operator_cap'],
      ['limits.max_output', 'above_operator_cap'],
    ]);
    expect(m.list()).toEqual([]);
    expect(tools.list()).toEqual([]);
  });

  it('applies to WebAssembly packages and to packages stored before the caps were lowered (listed as failed at start)', async () => {
    const bytes = await wat(OK_WAT);
    const db = openDatabase(makeTempDir());
    const first = new ToolServerManager({ db, tools: new ToolRegistry(), builtinDir: false });
    await first.start();
    await first.deploy(wasmManifest('roomy', 'memory = "64MiB"'), bytes);
    first.close();
    const e = await deployError(() =>
      new ToolServerManager({
        db,
        tools: new ToolRegistry(),
        builtinDir: false,
        caps: { ...DEFAULT_TOOL_CAPS, memory: 16 * MiB },
      }).deploy(wasmManifest('big', 'memory = "32MiB"'), bytes),
    );
    expect(e.message).toMatch(/limits\.memory = 32MiB is above the operator's cap of 16MiB/);
    const lowered = new ToolServerManager({
      db,
      tools: new ToolRegistry(),
      builtinDir: false,
      caps: { ...DEFAULT_TOOL_CAPS, memory: 16 * MiB },
    });
    expect(await lowered.start()).toEqual({ loaded: 0, failed: 1 });
    expect(lowered.list()[0]).toMatchObject({
      name: 'roomy',
      state: 'failed',
      error: expect.stringMatching(/limits\.memory = 64MiB is above the operator's cap of 16MiB/),
    });
    lowered.close();
  });

  it("the operator's per-server grant decides for that server, even above [tools.limits]; limits left out are lowered to the caps", async () => {
    const grants = { big: toolGrantSchema.parse({ limits: { memory: '512MiB', timeout: '60s' } }) };
    const { m } = await manager({ grants, caps: { ...DEFAULT_TOOL_CAPS, max_input: 64 * 1024 } });
    const big = await m.deploy(jsManifest('big', 'memory = "1GiB"\ntimeout = "30s"'), JS);
    // memory: min(manifest 1GiB, grant 512MiB); timeout: min(manifest 30s, grant 60s); the rest: caps.
    expect(big.server.limits).toMatchObject({ memory: 512 * MiB, timeout_ms: 30_000, max_input: 64 * 1024 });
    // A manifest without [limits]: defaults (1 MiB input), lowered to the 64 KiB cap, not refused.
    const plain = await m.deploy(wasmManifest('plain'), await wat(OK_WAT));
    expect(plain.server.limits).toMatchObject({ max_input: 64 * 1024, memory: 16 * MiB });
    m.close();
  });

  it('JavaScript servers and WebAssembly servers above in_thread_fuel run on a worker thread; small WebAssembly ones in the server thread', async () => {
    const audit = new MemoryToolAuditSink();
    const { m } = await manager({ audit });
    const bytes = await wat(OK_WAT);
    await m.deploy(jsManifest('js'), JS);
    await m.deploy(wasmManifest('small', 'fuel = 1_000_000'), bytes);
    await m.deploy(wasmManifest('large', 'fuel = 1_000_001'), bytes);
    expect(['js', 'small', 'large'].map((n) => [n, m.server(n)!.offThread])).toEqual([
      ['js', true],
      ['small', false],
      ['large', true],
    ]);
    for (const n of ['js', 'small', 'large'])
      expect(await m.call(`${n}.ok`, {})).toMatchObject({ content: 'ok', is_error: false, outcome: 'ok' });
    expect(audit.records.map((r) => [r.tool, r.outcome])).toEqual([
      ['js.ok', 'ok'],
      ['small.ok', 'ok'],
      ['large.ok', 'ok'],
    ]);
    m.close();
  });

  it('an agent allowlist refusal reaches the audit through the host registry (outcome not_allowed), with no call made', async () => {
    const audit = new MemoryToolAuditSink();
    const { m, tools } = await manager({ audit });
    // As the server does at start (src/server/components/tool-audit-component.ts).
    auditRegistryCalls(tools, audit);
    await m.deploy(jsManifest('js'), JS);
    const r = await tools.invoke(['other.*'], 'js.ok', { x: 1 }, ctx({ agent: 'intruder', conversation_id: 'c-1' }));
    expect(r).toEqual({
      content: 'tool "js.ok" is not allowed for agent "intruder"; allowed tools: other.*',
      is_error: true,
      refused: true,
    });
    expect(audit.records).toEqual([
      expect.objectContaining({
        agent: 'intruder',
        conversation_id: 'c-1',
        server: 'js',
        tool: 'js.ok',
        outcome: 'not_allowed',
        fuel_used: 0,
        input_bytes: 7,
        args_digest: expect.stringMatching(/^[0-9a-f]{64}$/),
      }),
    ]);
    expect(m.server('js')!.stats().calls).toBe(0);
    m.close();
  });
});

describe('caxton.toml [tools.limits]', () => {
  it('has protective defaults, reads sizes and durations, and leaves [tools.NAME] grants as they were', () => {
    const dir = makeTempDir();
    const file = join(dir, 'caxton.toml');
    writeFileSync(
      file,
      '[tools.limits]\nmemory = "256MiB"\ntimeout = "30s"\nin_thread_fuel = 0\n\n[tools.csv_parser]\nlimits = { memory = "8MiB" }\n',
    );
    const c = loadServerConfig({ file, env: {} });
    expect(c.tools.limits).toEqual({
      memory: 256 * MiB,
      fuel: 1_000_000_000,
      timeout: 30_000,
      max_input: 8 * MiB,
      max_output: 16 * MiB,
      max_state: MiB,
      in_thread_fuel: 0,
    });
    expect(c.tools.csv_parser!.limits.memory).toBe(8 * MiB);
    expect(loadServerConfig({ env: {}, cwd: dir }).tools.limits).toEqual({
      memory: 128 * MiB,
      fuel: 1_000_000_000,
      timeout: 10_000,
      max_input: 8 * MiB,
      max_output: 16 * MiB,
      max_state: MiB,
      in_thread_fuel: 1_000_000,
    });
    expect(loadServerConfig({ env: { CAXTON_TOOLS__LIMITS__TIMEOUT: '20s' }, cwd: dir }).tools.limits.timeout).toBe(
      20_000,
    );
  });

  it('names the field of a bad value', () => {
    const dir = makeTempDir();
    const file = join(dir, 'caxton.toml');
    writeFileSync(file, '[tools.limits]\nmemory = "lots"\nfuel = -1\n');
    expect(() => loadServerConfig({ file, env: {} })).toThrow(/tools\.limits\.memory[\s\S]*tools\.limits\.fuel/);
  });
});
