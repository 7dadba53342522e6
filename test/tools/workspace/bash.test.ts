/**
 * workspace.bash (the command line's parse and allowlist: shell.test.ts): real commands in a real bubblewrap sandbox: the time limit, the output
 * limit, an environment without the server's secrets, no writes outside the workspace (nor
 * inside without the write grant), /root and the server's other files not visible, no network.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeSandbox } from '../../../src/tools/workspace/index.js';
import { serverConfigSchema } from '../../../src/config/index.js';
import { limitReached, processLimitBy } from '../../../src/tools/workspace/bash-limits.js';
import { hasSystem } from '../../helpers/system.js';
import { ctx, tempDir, tools } from './helpers.js';

describe('the resource limits', () => {
  const parse = (bash: Record<string, unknown>) => serverConfigSchema.safeParse({ workspace: { bash } });
  it('default to 512 MiB per process, 64 processes and 64 MiB files', () => {
    const r = parse({});
    expect(r.success && r.data.workspace.bash).toMatchObject({
      memory: 512 * 1024 ** 2,
      processes: 64,
      file_size: 64 * 1024 ** 2,
    });
    expect(parse({ memory: '2GiB', processes: 8, file_size: '1MiB' }).data?.workspace.bash).toMatchObject({
      memory: 2 * 1024 ** 3,
      processes: 8,
      file_size: 1024 ** 2,
    });
  });

  it('refuses bad values naming the field and what is expected', () => {
    const issue = (bash: Record<string, unknown>) => {
      const r = parse(bash);
      expect(r.success).toBe(false);
      return r.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    };
    expect(issue({ memory: 'lots' })).toMatch(/workspace\.bash\.memory: expected a size/);
    expect(issue({ memory: '1MiB' })).toMatch(/workspace\.bash\.memory: size "1MiB" is out of range/);
    expect(issue({ processes: 1 })).toMatch(/workspace\.bash\.processes: at least 4/);
    expect(issue({ processes: 'many' })).toMatch(/workspace\.bash\.processes: expected a whole number/);
    expect(issue({ file_size: '10GiB' })).toMatch(/workspace\.bash\.file_size: size "10GiB" is out of range/);
  });

  it('name the limit a command ran into from its exit and output', () => {
    const l = { memory: 1024 ** 2 * 256, processes: 16, file_size: 1024 ** 2 };
    expect(limitReached(153, null, '', false, l)?.message).toContain('[workspace.bash] file_size');
    expect(limitReached(null, 'SIGXFSZ', '', false, l)?.message).toContain('file-size limit');
    expect(limitReached(0, null, 'ok', true, l)?.message).toContain('[workspace.bash] processes');
    expect(limitReached(2, null, 'sh: 0: Cannot fork', false, l)?.message).toContain('at most 16 processes');
    expect(limitReached(1, null, 'MemoryError', false, l)).toMatchObject({ outcome: 'out_of_memory' });
    // An exit without a sign of a limit is an ordinary failure, and a success mentioning memory is a success.
    expect(limitReached(1, null, 'No such file', false, l)).toBeUndefined();
    expect(limitReached(0, null, 'MemoryError is a Python exception', false, l)).toBeUndefined();
  });
});

describe('the sandbox probe', () => {
  it('names what is missing when bwrap is not installed', () => {
    const p = probeSandbox(['/nonexistent/bin/bwrap']);
    expect(p.ok).toBe(false);
    expect(p.problem).toContain('bubblewrap (bwrap) is not installed');
    expect(p.problem).toContain('apt-get install bubblewrap');
  });

  it.skipIf(!hasSystem('bwrap'))('finds a working bwrap here and times one start', () => {
    const p = probeSandbox();
    expect(p).toMatchObject({ ok: true, disable_userns: true });
    expect(p.start_ms).toBeGreaterThan(0);
  });
});

describe.skipIf(!hasSystem('bwrap'))('workspace.bash in the sandbox', () => {
  let root: string;
  let web: ReturnType<typeof createServer>;
  let port: number;
  const secret = 'sk-test-secret-value';
  beforeAll(async () => {
    root = tempDir();
    writeFileSync(join(root, 'hello.txt'), 'hello from the workspace\n');
    process.env.CAXTON_TEST_SECRET_TOKEN = secret;
    web = createServer((_req, res) => res.end('reached'));
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
    port = (web.address() as AddressInfo).port;
  });
  afterAll(() => {
    delete process.env.CAXTON_TEST_SECRET_TOKEN;
    web.close();
  });
  const bash = (bash: Record<string, unknown>, write = false) =>
    tools({
      path: root,
      write,
      bash: {
        enabled: true,
        commands: [
          'cat',
          'ls',
          'echo',
          'env',
          'sleep',
          'yes',
          'head',
          'touch',
          'wc',
          'grep',
          'sh',
          'id',
          'python3',
          'bash',
          'getent',
        ],
        ...bash,
      },
    })('bash');

  it('is refused unless [workspace.bash] enabled, naming the setting', async () => {
    const r = await tools({ path: root })('bash').invoke({ command: 'ls' }, ctx());
    expect(r.is_error).toBe(true);
    expect(r.content).toContain('[workspace.bash] enabled = true');
  });

  it('runs a pipeline in the workspace and returns its output; a non-zero exit is an error with the code', async () => {
    const r = await bash({}).invoke({ command: 'cat hello.txt | wc -l && ls', description: 'Count lines' }, ctx());
    expect(r).toEqual({ content: '1\nhello.txt' });
    const fail = await bash({}).invoke({ command: 'cat missing.txt' }, ctx());
    expect(fail.is_error).toBe(true);
    expect(fail.content).toMatch(/No such file[\s\S]*Exit code 1$/);
  });

  it("stops a command at the time limit (the operator's, or the smaller one asked for)", async () => {
    const t0 = Date.now();
    const r = await bash({ timeout: '10s' }).invoke({ command: 'sleep 30', timeout: 500 }, ctx());
    expect(r.is_error).toBe(true);
    expect(r.content).toContain('timed out after 500 ms');
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('stops a command past the output limit', async () => {
    const r = await bash({ max_output: '2KiB' }).invoke({ command: 'yes caxton' }, ctx());
    expect(r.is_error).toBe(true);
    expect(r.content).toContain('Output exceeded 2048 bytes');
    expect(r.content.length).toBeLessThan(2200);
  });

  it("runs with a minimal environment: none of the server's variables", async () => {
    const r = await bash({}).invoke({ command: 'env' }, ctx());
    expect(r.content).not.toContain(secret);
    expect(r.content).not.toContain('CAXTON_TEST_SECRET_TOKEN');
    expect(r.content.split('\n').sort()).toEqual(
      [
        'HOME=/tmp',
        'LANG=C.UTF-8',
        'PATH=/usr/local/bin:/usr/bin:/bin',
        'PWD=' + root,
        'TERM=dumb',
        'TMPDIR=/tmp',
      ].sort(),
    );
  });

  it("cannot read /root or the server's files, and cannot write outside the workspace", async () => {
    const ls = await bash({}).invoke({ command: 'ls /root' }, ctx());
    expect(ls.is_error).toBe(true);
    const outside = tempDir('caxton-outside-');
    const w = await bash({}, true).invoke(
      { command: `touch ${outside}/escaped; touch /usr/escaped; echo ok > /tmp/scratch && cat /tmp/scratch` },
      ctx(),
    );
    expect(w.content).toContain('ok');
    expect(existsSync(join(outside, 'escaped'))).toBe(false);
    expect(existsSync('/usr/escaped')).toBe(false);
    expect(existsSync('/tmp/scratch')).toBe(false);
    const id = await bash({}).invoke({ command: 'id -u' }, ctx());
    expect(id.content).toBe('65534');
    // No user namespace of its own to regain capabilities in.
    const nested = await bash({ commands: ['unshare'] }).invoke({ command: 'unshare -r true' }, ctx());
    expect(nested.is_error).toBe(true);
  });

  it('writes in the workspace only with [workspace] write = true', async () => {
    const ro = await bash({}).invoke({ command: 'echo x > made-ro.txt' }, ctx());
    expect(ro.is_error).toBe(true);
    expect(existsSync(join(root, 'made-ro.txt'))).toBe(false);
    const rw = await bash({}, true).invoke({ command: 'echo x > made-rw.txt' }, ctx());
    expect(rw.is_error).toBeUndefined();
    expect(readFileSync(join(root, 'made-rw.txt'), 'utf8')).toBe('x\n');
  });

  it('stops a memory bomb at [workspace.bash] memory, naming the limit and the setting', async () => {
    const r = await bash({ memory: '256MiB' }).invoke(
      { command: `python3 -c "x=' '*3_000_000_000"`, timeout: 20_000 },
      ctx(),
    );
    expect(r.is_error).toBe(true);
    expect(r.content).toContain('MemoryError');
    expect(r.content).toMatch(
      /memory limit: at most 256 MiB per process \(\[workspace\.bash\] memory in caxton\.toml\)[^\n]*$/,
    );
    // The sandbox still runs the next command.
    expect(await bash({}).invoke({ command: 'echo alive' }, ctx())).toEqual({ content: 'alive' });
  });

  // Root with no writable pids cgroup has no process limit (RLIMIT_NPROC does not bind root; docs/workspace.md).
  it.skipIf(!processLimitBy())(
    'refuses processes past [workspace.bash] processes, naming the limit and the setting',
    async () => {
      // Bounded even if the limit failed: 200 sleeps at most, all killed at the 5 s time limit.
      const r = await bash({ processes: 16 }).invoke(
        {
          command: `sh -c 'i=0; while [ $i -lt 200 ]; do sleep 5 & i=$((i+1)); done; wait'`,
          timeout: 5_000,
        },
        ctx(),
      );
      expect(r.is_error).toBe(true);
      expect(r.content).toMatch(
        /process limit: at most 16 processes at once \(\[workspace\.bash\] processes in caxton\.toml\)[^\n]*$/,
      );
      // A command within the limit runs as before.
      expect(await bash({ processes: 16 }).invoke({ command: 'echo a | cat | wc -c' }, ctx())).toEqual({
        content: '2',
      });
    },
  );

  it('stops a write at [workspace.bash] file_size, naming the limit, and leaves no bigger file', async () => {
    const r = await bash({ file_size: '1MiB' }, true).invoke({ command: 'head -c 100000000 /dev/zero > big' }, ctx());
    expect(r.is_error).toBe(true);
    expect(r.content).toMatch(
      /file-size limit: no file may grow past 1 MiB \(\[workspace\.bash\] file_size in caxton\.toml\)[^\n]*$/,
    );
    expect(statSync(join(root, 'big')).size).toBeLessThanOrEqual(1024 * 1024);
    // Within the limit a write goes through.
    const small = await bash({ file_size: '1MiB' }, true).invoke({ command: 'head -c 1000 /dev/zero > small' }, ctx());
    expect(small.is_error).toBeUndefined();
    expect(statSync(join(root, 'small')).size).toBe(1000);
  });

  it('has no network unless [workspace.bash] network = true', async () => {
    const probe = `python3 -c "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:${port}/').read().decode())"`;
    const off = await bash({}).invoke({ command: probe }, ctx());
    expect(off.is_error).toBe(true);
    expect(off.content).not.toContain('reached');
    // With the network shared the command reaches the host's loopback.
    const on = await bash({ network: true }).invoke({ command: probe }, ctx());
    expect(on.content).toBe('reached');
  });
});
