/**
 * The C and Rust tool SDKs (sdk/c/caxton.h, sdk/rust/caxton) and their templates, built with
 * Debian's toolchains exactly as the templates' READMEs say, deployed and called through the CLI
 * against a real server; and the sandbox's fuel, memory and time limits holding for a C module.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_TOOL_CAPS,
  LOG_LINES_PER_CALL,
  WasmToolServer,
  type WasmToolServerOptions,
} from '../../../src/tools/servers/index.js';
import { ctx } from './helpers.js';
import {
  assertBuilt,
  cleanup,
  expectExit,
  parseJson,
  repoRoot,
  runCli,
  startServe,
  tempDir,
  type CliResult,
  type ServeProcess,
} from '../../cli/helpers/cli.js';
import { hasSystem } from '../../helpers/system.js';
import { buildCFixture } from '../../helpers/wasm-c.js';

const haveC = hasSystem('wasm-c');
const haveRust = hasSystem('wasm-rust');

/** The build command a template's README prints (the first line of its first sh block after "## Build"). */
function readmeBuildCommand(dir: string): string {
  const readme = readFileSync(join(dir, 'README.md'), 'utf8');
  const block = /## Build[\s\S]*?```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
  const line = block.split('\n').find((l) => /^make\b/.test(l));
  if (!line) throw new Error(`no make line in ${dir}/README.md`);
  return line.replace(/\s+#.*$/, '').trim();
}

describe.skipIf(!haveC && !haveRust)('tool templates in C and Rust, through the CLI', () => {
  let cwd: string;
  let serve: ServeProcess;
  const cli = (...args: string[]): Promise<CliResult> =>
    runCli(['--server', serve.url, ...args], { cwd, timeoutMs: 60_000 });

  beforeAll(async () => {
    assertBuilt();
    cwd = tempDir('caxton-sdk-');
    writeFileSync(join(cwd, 'caxton.toml'), 'data_dir = "data"\nagents_dir = "agents"\n\n[logging]\nlevel = "warn"\n');
    mkdirSync(join(cwd, 'agents'));
    serve = await startServe({ cwd, args: ['--config', join(cwd, 'caxton.toml')] });
  });
  afterAll(cleanup);

  const cases = [
    {
      template: 'tool-c',
      have: haveC,
      sdkFile: 'include/caxton.h',
      deployed: 'deployed stats 0.1.0 (1 tool: stats.describe)',
      tool: 'stats.describe',
      args: { numbers: [3, 1.5, -2, 10] },
      want: { count: 4, sum: 12.5, mean: 3.125, min: -2, max: 10 },
    },
    {
      template: 'tool-rust',
      have: haveRust,
      sdkFile: 'caxton/src/lib.rs',
      deployed: 'deployed text 0.1.0 (1 tool: text.analyze)',
      tool: 'text.analyze',
      args: { text: 'Hello big World\nÜber alles' },
      want: { chars: 26, words: 5, lines: 2, slug: 'hello-big-world-über-alles' },
    },
  ];

  for (const c of cases) {
    it.skipIf(!c.have)(
      `${c.template}: init, the README's build, deploy and call`,
      async () => {
        const init = await runCli(['init', c.template, '--template', c.template], { cwd });
        expectExit(init, 0);
        expect(init.stdout).toContain(`cd ${c.template} && make`);
        const dir = join(cwd, c.template);
        // The SDK comes from sdk/ in the package, one copy for every template that uses it.
        const sdkSource = c.template === 'tool-c' ? 'sdk/c/caxton.h' : 'sdk/rust/caxton/src/lib.rs';
        expect(readFileSync(join(dir, c.sdkFile), 'utf8')).toBe(readFileSync(join(repoRoot, sdkSource), 'utf8'));

        const [cmd, ...args] = readmeBuildCommand(dir).split(/\s+/);
        execFileSync(cmd!, args, { cwd: dir, stdio: 'pipe', timeout: 180_000 });

        const deployed = await cli('tool', 'deploy', c.template);
        expectExit(deployed, 0);
        expect(deployed.stdout.trim()).toBe(c.deployed);
        const call = await cli('--json', 'tool', 'call', c.tool, '--args', JSON.stringify(c.args));
        expectExit(call, 0);
        const out = parseJson<{ content: string; outcome?: string }>(call);
        expect(JSON.parse(out.content)).toEqual(c.want);

        // A wrong argument is refused by the input schema before the module runs.
        const bad = await cli('tool', 'call', c.tool, '--args', '{}');
        expect(bad.stdout + bad.stderr).toMatch(/invalid_input|required/);
      },
      240_000,
    );
  }
});

describe.skipIf(!haveC)('a C module under the sandbox limits', () => {
  let dir: string;

  /** The hostile module as a package with these limits. */
  function load(limits: string, opts: WasmToolServerOptions = {}): WasmToolServer {
    const tools = ['spin', 'hog', 'stall', 'ok']
      .map((t) => `[[tools]]\nname = "${t}"\ndescription = "${t}"\ninput_schema = { type = "object" }\n`)
      .join('\n');
    writeFileSync(
      join(dir, 'caxton-tool.toml'),
      `name = "hostile"\nversion = "0.1.0"\ndescription = "misbehaves"\nmodule = "hostile.wasm"\n\n${tools}\n[limits]\n${limits}\n`,
    );
    return WasmToolServer.load(dir, opts);
  }
  const call = (server: WasmToolServer, tool: string) => server.callRaw(tool, new TextEncoder().encode('{}'));

  beforeAll(() => {
    dir = tempDir('caxton-sdk-hostile-');
    buildCFixture('hostile', join(dir, 'hostile.wasm'));
  });
  afterAll(cleanup);

  it('an endless loop runs out of fuel, and the next call works', () => {
    const server = load('memory = "2MiB"\nfuel = 2_000_000\ntimeout = "5s"');
    const r = call(server, 'spin');
    expect(r.outcome).toBe('fuel_exhausted');
    expect(r.fuel_used).toBeGreaterThanOrEqual(2_000_000);
    expect(call(server, 'ok').outcome).toBe('ok');
  });

  it('endless allocation stops at the memory cap, and the next call works', () => {
    const server = load('memory = "2MiB"\nfuel = 100_000_000\ntimeout = "5s"');
    const r = call(server, 'hog');
    expect(r.outcome).toBe('out_of_memory');
    expect(r.error).toMatch(/ran out of memory \(limit 2097152 bytes\)/);
    expect(new TextDecoder().decode(call(server, 'ok').output)).toBe('{"ok":true}');
  });

  it('an endless loop of log calls on a worker, 2 s limit: ends at its deadline, logs at most the per-call bound, and this thread keeps turning', async () => {
    const lines: string[] = [];
    // Under the operator's default caps, as the server runs it: this much fuel runs on a worker.
    const looper = load('memory = "2MiB"\nfuel = 1_000_000_000\ntimeout = "2s"', {
      caps: DEFAULT_TOOL_CAPS,
      log: (_level, message) => lines.push(message),
    });
    expect(looper.offThread).toBe(true);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const t0 = performance.now();
    const r = await looper.tools.find((t) => t.name === 'hostile.stall')!.invoke({}, ctx());
    clearInterval(timer);
    console.log(
      `[metering] C tool on a worker: ${Math.round(performance.now() - t0)} ms, ${ticks} ticks of a 10 ms timer`,
    );
    // The deadline, or the fuel its host calls spent, whichever the machine's speed reaches first.
    expect(r.content).toMatch(
      /failed \((timeout|fuel_exhausted)\): the call (exceeded its deadline \(limit 2000 ms\)|ran out of fuel \(limit 1000000000 units)/,
    );
    expect(lines.length).toBe(LOG_LINES_PER_CALL + 1);
    expect(lines.at(-1)).toMatch(
      /^\d+ log lines \(\d+ bytes\) of this call were dropped: a call may log at most 1000 lines/,
    );
    expect(ticks).toBeGreaterThan(20);
    looper.close();
  }, 30_000);

  it('an endless loop of host calls ends at the wall-clock limit', () => {
    const server = load('memory = "2MiB"\nfuel = 2_000_000_000\ntimeout = "300ms"');
    const r = call(server, 'stall');
    expect(r.outcome).toBe('timeout');
    expect(r.error).toMatch(/exceeded its deadline \(limit 300 ms\)/);
    expect(call(server, 'ok').outcome).toBe('ok');
  });
});
