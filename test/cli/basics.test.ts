import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertBuilt,
  cleanup,
  expectExit,
  expectNoStackTrace,
  freePorts,
  PACKAGE_VERSION,
  parseJson,
  runCli,
  tempDir,
} from './helpers/cli.js';

let cwd: string;
beforeAll(() => {
  assertBuilt();
  cwd = tempDir();
});
afterAll(cleanup);

describe('caxton: help, version and usage errors', () => {
  it('--help exits 0 and lists every command and the exit codes', async () => {
    const r = await runCli(['--help'], { cwd });
    expectExit(r, 0);
    for (const cmd of ['serve', 'agent', 'health', 'status', 'config', 'init'])
      expect(r.stdout).toMatch(new RegExp(`^\\s+${cmd}\\b`, 'm'));
    expect(r.stdout).toContain('--server <url>');
    expect(r.stdout).toContain('--json');
    expect(r.stdout).toMatch(/Exit codes: 0 success, 1 failure, 2 usage error/);
  });

  it('agent --help lists the agent subcommands', async () => {
    const r = await runCli(['agent', '--help'], { cwd });
    expectExit(r, 0);
    for (const cmd of ['validate', 'deploy', 'list', 'show', 'remove'])
      expect(r.stdout).toMatch(new RegExp(`^\\s+${cmd}\\b`, 'm'));
  });

  it('--version and -V print the package version', async () => {
    const [long, short] = await Promise.all([runCli(['--version'], { cwd }), runCli(['-V'], { cwd })]);
    for (const r of [long, short]) {
      expectExit(r, 0);
      expect(r.stdout.trim()).toBe(PACKAGE_VERSION);
    }
  });

  it('an unknown command exits 2 and names it', async () => {
    const r = await runCli(['deploy-everything'], { cwd });
    expectExit(r, 2);
    expect(r.stderr).toMatch(/unknown command 'deploy-everything'/);
    expectNoStackTrace(r);
  });

  it('an unknown subcommand exits 2', async () => {
    const r = await runCli(['agent', 'explode'], { cwd });
    expectExit(r, 2);
    expect(r.stderr).toMatch(/unknown command 'explode'/);
  });

  it('an unknown option exits 2, globally and on a subcommand', async () => {
    const [global, sub] = await Promise.all([
      runCli(['--frobnicate', 'status'], { cwd }),
      runCli(['agent', 'list', '--frobnicate'], { cwd }),
    ]);
    for (const r of [global, sub]) {
      expectExit(r, 2);
      expect(r.stderr).toMatch(/unknown option '--frobnicate'/);
      expectNoStackTrace(r);
    }
  });

  it('a missing required argument exits 2 and names the argument', async () => {
    const [validate, show, init] = await Promise.all([
      runCli(['agent', 'validate'], { cwd }),
      runCli(['agent', 'show'], { cwd }),
      runCli(['init'], { cwd }),
    ]);
    expectExit(validate, 2);
    expect(validate.stderr).toMatch(/missing required argument 'file'/);
    expectExit(show, 2);
    expect(show.stderr).toMatch(/missing required argument 'name'/);
    expectExit(init, 2);
    expect(init.stderr).toMatch(/missing required argument 'dir'/);
  });

  it('an option value that is not a port number is a usage error (exit 2), not a crash', async () => {
    const r = await runCli(['config', 'show', '--port', 'eighty'], { cwd });
    expectExit(r, 2);
    expect(r.stderr).toMatch(/--port must be a port number/);
    expect(r.stderr).toContain('"eighty"');
    expectNoStackTrace(r);
  });
});

describe('caxton: a finished command exits', () => {
  it('even while something still holds the event loop (a stray timer, an idle socket)', async () => {
    // The preloaded module leaves a timer that would keep a process that waits for its loop to
    // drain alive for ever: a command that has done its work exits anyway, with its output whole.
    const r = await runCli(['config', 'show', '--json'], {
      cwd,
      env: { NODE_OPTIONS: '--import=data:text/javascript,setInterval(()=>{},60000)' },
      timeoutMs: 10_000,
    });
    expectExit(r, 0);
    expect(() => JSON.parse(r.stdout) as unknown).not.toThrow();
  });
});

describe('caxton: no server running', () => {
  it('agent list against a dead port exits 1 with "cannot reach the Caxton server" and a hint, no stack trace', async () => {
    const [port] = (await freePorts(1)) as [number];
    const r = await runCli(['agent', 'list', '--server', `http://127.0.0.1:${port}`], { cwd });
    expectExit(r, 1);
    expect(r.stderr).toContain(`cannot reach the Caxton server at http://127.0.0.1:${port}`);
    expect(r.stderr).toContain('connection refused');
    expect(r.stderr).toMatch(/caxton serve/);
    expect(r.stdout).toBe('');
    expectNoStackTrace(r);
  });

  it('--json reports the unreachable server as a JSON error on stdout, exit 1', async () => {
    const [port] = (await freePorts(1)) as [number];
    const r = await runCli(['--json', 'status', '--server', `http://127.0.0.1:${port}`], { cwd });
    expectExit(r, 1);
    const body = parseJson<{ error: { code: string; details: { cause: string } } }>(r);
    expect(body.error.code).toBe('server_unreachable');
    expect(body.error.details.cause).toBe('ECONNREFUSED');
  });

  it('$CAXTON_SERVER_URL is used when --server is absent (and the default URL is not)', async () => {
    const [port] = (await freePorts(1)) as [number];
    const r = await runCli(['health'], { cwd, env: { CAXTON_SERVER_URL: `http://127.0.0.1:${port}` } });
    expectExit(r, 1);
    expect(r.stderr).toContain(`cannot reach the Caxton server at http://127.0.0.1:${port}`);
  });

  it('a port fetch refuses to use is reported by its reason, not as "TypeError"', async () => {
    const r = await runCli(['agent', 'list', '--server', 'http://127.0.0.1:1'], { cwd });
    expectExit(r, 1);
    expect(r.stderr).toContain('cannot reach the Caxton server at http://127.0.0.1:1');
    expect(r.stderr).not.toContain('TypeError');
    expectNoStackTrace(r);
  });
});
