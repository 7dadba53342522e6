/**
 * workspace.bash: Claude Code's Bash, run only when the operator grants it, as a real child
 * process inside a bubblewrap sandbox (ADR 0049): new namespaces (no network unless granted),
 * a read-only view of the system, the workspace bound at its own path (writable only with the
 * write grant), nothing else of the host's files, a minimal environment, a time limit, an
 * output limit, and limits on memory, processes and file size (ADR 0113). Before anything runs,
 * the line is parsed as the shell parses it (shell.ts) and every command anywhere in it is checked
 * against the operator's allowlist.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readlinkSync } from 'node:fs';
import type { AuditedResult, AuditedTool } from '../audited.js';
import { toolError } from '../audited.js';
import { changedSince, snapshotWorkspace } from './changes.js';
import { guarded, int, str } from './file-tools.js';
import { WorkspaceError, type Workspace } from './grant.js';
import { type BashLimits, limitReached, pidsGroup, PRLIMIT_PATHS, prlimitArgs } from './bash-limits.js';
import { parseCommandLine } from './shell.js';

export const BASH_NOT_GRANTED =
  'workspace.bash is not granted: set [workspace.bash] enabled = true and list the programs it may run in [workspace.bash] commands = ["ls", "cat", ...] in caxton.toml';

/**
 * Refusal text for the first command of `line` the allowlist does not hold (naming it and where it
 * stands), or for what in the line cannot be checked; undefined when every command is allowed.
 */
export async function checkAllowlist(line: string, allowed: readonly string[]): Promise<string | undefined> {
  const parsed = await parseCommandLine(line);
  if ('refused' in parsed)
    return `the command was refused: it has ${parsed.refused}. workspace.bash runs POSIX sh command lines in which every command is a program the operator allows`;
  if (parsed.commands.length === 0) return 'the command is empty';
  for (const c of parsed.commands) {
    if (!allowed.includes(c.name)) {
      const where = c.within === 'command' ? '' : ` (inside a ${c.within}, line ${c.line}, column ${c.column})`;
      return `the command "${c.name}"${where} is not allowed: the programs workspace.bash may run are ${allowed.length > 0 ? allowed.join(', ') : '(none)'}; the operator adds programs to [workspace.bash] commands in caxton.toml`;
    }
  }
  return undefined;
}

/** What the sandbox needs of the host: where bwrap is, or why it cannot run here. */
export interface SandboxProbe {
  ok: boolean;
  bwrap?: string;
  /** The prlimit that sets the command's resource limits inside the sandbox. */
  prlimit?: string;
  problem?: string;
  /** Time one start of an empty sandbox took (ms). */
  start_ms?: number;
  /** Whether this bwrap can forbid new user namespaces inside (`--disable-userns`, bubblewrap 0.8+). */
  disable_userns?: boolean;
}

let probed: SandboxProbe | undefined;

const BWRAP_PATHS = ['/usr/bin/bwrap', '/usr/local/bin/bwrap', '/bin/bwrap'];

/** Whether bubblewrap is installed (at one of `paths`) and can create its namespaces here; checked once per process for the usual paths. */
export function probeSandbox(paths: readonly string[] = BWRAP_PATHS): SandboxProbe {
  const usual = paths === BWRAP_PATHS;
  if (usual && probed) return probed;
  const result = probeAt(paths);
  if (usual) probed = result;
  return result;
}

function probeAt(paths: readonly string[]): SandboxProbe {
  const bwrap = paths.find((p) => existsSync(p));
  if (!bwrap) {
    return {
      ok: false,
      problem: `bubblewrap (bwrap) is not installed (looked for ${paths.join(', ')}): install it (Debian/Ubuntu: apt-get install bubblewrap)`,
    };
  }
  const prlimit = PRLIMIT_PATHS.find((p) => existsSync(p));
  if (!prlimit) {
    return {
      ok: false,
      bwrap,
      problem: `prlimit is not installed (looked for ${PRLIMIT_PATHS.join(', ')}); it sets the memory, process and file-size limits: install util-linux`,
    };
  }
  const attempt = (disableUserns: boolean) => {
    const t0 = performance.now();
    const args = [
      ...systemBinds(false),
      '--unshare-all',
      '--unshare-user',
      ...(disableUserns ? ['--disable-userns'] : []),
      '--cap-drop',
      'ALL',
      '--die-with-parent',
      '--',
      '/bin/true',
    ];
    const r = spawnSync(bwrap, args, { timeout: 10_000, encoding: 'utf8', env: {} });
    return { r, ms: performance.now() - t0 };
  };
  // Older bubblewraps lack --disable-userns: the sandbox then goes without it.
  let { r, ms } = attempt(true);
  let disableUserns = true;
  if (r.status !== 0 && /unknown option/i.test(r.stderr ?? '')) {
    ({ r, ms } = attempt(false));
    disableUserns = false;
  }
  return r.status === 0
    ? { ok: true, bwrap, prlimit, start_ms: Math.round(ms * 10) / 10, disable_userns: disableUserns }
    : {
        ok: false,
        bwrap,
        problem: `bubblewrap cannot create its sandbox here (user namespaces may be disabled): ${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}`,
      };
}

/** Read-only binds of the system: /usr, the /bin and /lib links or directories, and the few /etc files programs need. */
function systemBinds(network: boolean): string[] {
  const args = ['--ro-bind', '/usr', '/usr'];
  for (const d of ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32']) {
    let st;
    try {
      st = lstatSync(d);
    } catch {
      continue;
    }
    if (st.isSymbolicLink()) args.push('--symlink', readlinkSync(d), d);
    else if (st.isDirectory()) args.push('--ro-bind', d, d);
  }
  const etc = [
    '/etc/alternatives',
    '/etc/ld.so.cache',
    '/etc/ld.so.conf',
    '/etc/ld.so.conf.d',
    '/etc/localtime',
    '/etc/nsswitch.conf',
    '/etc/passwd',
    '/etc/group',
    '/etc/ssl',
    '/etc/ca-certificates',
  ];
  if (network) etc.push('/etc/resolv.conf', '/etc/hosts');
  for (const f of etc) args.push('--ro-bind-try', f, f);
  args.push('--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp');
  return args;
}

/** The environment inside: nothing of the server's (no keys, no tokens). */
export const SANDBOX_ENV: Readonly<Record<string, string>> = {
  PATH: '/usr/local/bin:/usr/bin:/bin',
  HOME: '/tmp',
  TMPDIR: '/tmp',
  LANG: 'C.UTF-8',
  TERM: 'dumb',
};

export function sandboxArgs(
  root: string,
  opts: { write: boolean; network: boolean; hidden?: readonly string[]; disableUserns?: boolean },
): string[] {
  const args = [...systemBinds(opts.network), opts.write ? '--bind' : '--ro-bind', root, root];
  // The workspace's private directories (the server's data) are covered by an empty tmpfs.
  for (const h of opts.hidden ?? []) args.push('--tmpfs', h);
  args.push('--chdir', root, '--unshare-all');
  if (opts.network) args.push('--share-net');
  // Inside a user namespace as an unprivileged user, with no capabilities.
  args.push(
    '--unshare-user',
    '--uid',
    '65534',
    '--gid',
    '65534',
    '--cap-drop',
    'ALL',
    '--die-with-parent',
    '--new-session',
    '--clearenv',
  );
  // No user namespace of its own inside: no capabilities to regain there, less kernel to reach.
  if (opts.disableUserns) args.push('--disable-userns');
  for (const [k, v] of Object.entries(SANDBOX_ENV)) args.push('--setenv', k, v);
  return args;
}

export function bashTool(ws: Workspace): AuditedTool {
  return {
    name: 'workspace.bash',
    description:
      'Runs a shell command in the workspace directory, in a sandbox: only the programs the operator allows, no network unless granted, files outside the workspace not visible, writes only with the write grant. Any POSIX sh command line (pipes, &&, ||, ;, subshells, variables, here-documents, redirections) whose every command, wherever it stands, is an allowed program. Returns the output (stdout and stderr) and the exit code.',
    input_schema: {
      type: 'object',
      properties: {
        command: { type: 'string', description: 'The command to execute' },
        timeout: { type: 'number', description: "Optional timeout in milliseconds (at most the operator's limit)" },
        description: {
          type: 'string',
          description: 'Clear, concise description of what this command does in 5-10 words',
        },
      },
      required: ['command'],
    },
    invoke: (args, ctx) =>
      guarded(async () => {
        const root = ws.root();
        const cfg = ws.bash;
        if (!cfg.enabled) return toolError(BASH_NOT_GRANTED, 'denied');
        const command = str(args, 'command')!;
        const refusal = await checkAllowlist(command, cfg.commands);
        if (refusal) return toolError(refusal, 'denied');
        const asked = int(args, 'timeout', 1, 600_000);
        const sandbox = probeSandbox();
        if (!sandbox.ok) return toolError(`workspace.bash cannot run: ${sandbox.problem}`, 'denied');
        const timeoutMs = Math.max(1, Math.min(asked ?? cfg.timeout, cfg.timeout, ctx.deadline - Date.now() - 100));
        const before = snapshotWorkspace(ws);
        const result = await run(
          sandbox.bwrap!,
          [
            ...sandboxArgs(root, {
              write: ws.writable,
              network: cfg.network,
              hidden: ws.hidden(),
              disableUserns: sandbox.disable_userns === true,
            }),
            '--',
            ...prlimitArgs(sandbox.prlimit!, cfg),
            '/bin/sh',
            '-c',
            command,
          ],
          timeoutMs,
          cfg.max_output,
          cfg,
          ctx.signal,
        );
        // Whatever its exit, a command may have left files: they are named for the run's record.
        const files = changedSince(ws, before);
        return files.length > 0 ? { ...result, files } : result;
      }),
  };
}

function run(
  bwrap: string,
  args: string[],
  timeoutMs: number,
  maxOutput: number,
  limits: BashLimits,
  signal: AbortSignal,
): Promise<AuditedResult> {
  return new Promise((resolve, reject) => {
    // In a pids cgroup where there is one: the shell enters it and becomes bwrap, so every process
    // of the command is counted from the first. bwrap's own two processes are not the command's.
    const group = pidsGroup(limits.processes + 2);
    const child = group
      ? spawn('/bin/sh', ['-c', 'echo $$ > "$0" && exec "$@"', group.procs, bwrap, ...args], {
          env: {},
          stdio: ['ignore', 'pipe', 'pipe'],
          detached: true,
        })
      : spawn(bwrap, args, { env: {}, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const chunks: Buffer[] = [];
    let bytes = 0;
    let stopped: 'timeout' | 'output' | 'cancelled' | undefined;
    const kill = (why: typeof stopped) => {
      stopped ??= why;
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    };
    const take = (b: Buffer) => {
      if (stopped === 'output') return;
      if (bytes + b.length > maxOutput) {
        chunks.push(b.subarray(0, maxOutput - bytes));
        bytes = maxOutput;
        kill('output');
        return;
      }
      chunks.push(b);
      bytes += b.length;
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    const timer = setTimeout(() => kill('timeout'), timeoutMs);
    const onAbort = () => kill('cancelled');
    signal.addEventListener('abort', onAbort, { once: true });
    child.once('error', (e) => {
      void group?.remove();
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      resolve(toolError(`workspace.bash could not start the sandbox: ${e.message}`, 'io_error'));
    });
    child.once('close', async (code, sig) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      const forkRefused = group?.refused() ?? false;
      await group?.remove();
      const out = Buffer.concat(chunks).toString('utf8');
      if (stopped === 'cancelled')
        return reject(new WorkspaceError('cancelled: the execution was cancelled or timed out', 'timeout'));
      if (stopped === 'timeout')
        return resolve(
          toolError(
            `${out}${out.endsWith('\n') || out === '' ? '' : '\n'}Command timed out after ${timeoutMs} ms and was stopped${forkRefused ? `\n${limitReached(null, null, '', true, limits)!.message}` : ''}`,
            'timeout',
          ),
        );
      if (stopped === 'output')
        return resolve(
          toolError(`${out}\n… Output exceeded ${maxOutput} bytes; the command was stopped`, 'output_too_large'),
        );
      const body = out === '' ? '(no output)' : out.replace(/\n$/, '');
      const limit = limitReached(code, sig, out, forkRefused, limits);
      if (limit) return resolve(toolError(`${body}\nExit code ${code ?? sig}\n${limit.message}`, limit.outcome));
      if (code === 0) return resolve({ content: body });
      resolve(toolError(`${body}\nExit code ${code ?? sig}`, 'error'));
    });
  });
}
