/**
 * The resource limits of workspace.bash (ADR 0113): memory per process (RLIMIT_DATA), file size
 * (RLIMIT_FSIZE) and the number of processes, set by `prlimit` inside the sandbox so they bind
 * the command and nothing of the server. RLIMIT_NPROC binds only a server that does not run as
 * root (the kernel exempts uid 0, and bwrap maps the sandbox's user onto the server's), so a
 * writable pids cgroup (v2, or v1's pids hierarchy) holds the count wherever there is one.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CallOutcome } from '../../audit/index.js';
import { formatSize } from '../../shared/units.js';
import { pidAlive } from '../../shared/pid.js';

export interface BashLimits {
  memory: number;
  processes: number;
  file_size: number;
}

export const PRLIMIT_PATHS = ['/usr/bin/prlimit', '/bin/prlimit'];

/** The prlimit command the sandbox runs the shell under. */
export function prlimitArgs(prlimit: string, l: BashLimits): string[] {
  // The sandbox's user namespace also holds bwrap's init process, which is not the command's.
  return [prlimit, `--data=${l.memory}`, `--nproc=${l.processes + 1}`, `--fsize=${l.file_size}`, '--'];
}

/** A pids cgroup made for one command: where to enter it, and whether a fork was refused in it. */
export interface PidsGroup {
  /** The cgroup.procs file a process writes its pid into to enter. */
  procs: string;
  /** Whether the group refused a fork at its limit. */
  refused(): boolean;
  /** Removes the group once its processes are gone (the kernel may still be ending the last ones); gives up after 5 s. */
  remove(): Promise<void>;
}

let base: string | null | undefined;
let seq = 0;

/** Where this process may create pids cgroups, or null when nowhere (checked once, by making one). */
function pidsBase(): string | null {
  if (base !== undefined) return base;
  base = null;
  let lines: string[];
  try {
    lines = readFileSync('/proc/self/cgroup', 'utf8').split('\n');
  } catch {
    return base;
  }
  const candidates: string[] = [];
  for (const line of lines) {
    const [, controllers, path] = /^\d+:([^:]*):(.*)$/.exec(line) ?? [];
    if (path === undefined) continue;
    if (controllers === '') {
      for (const mount of ['/sys/fs/cgroup', '/sys/fs/cgroup/unified']) {
        const dir = join(mount, path);
        try {
          if (readFileSync(join(dir, 'cgroup.subtree_control'), 'utf8').split(/\s+/).includes('pids'))
            candidates.push(dir);
        } catch {
          // Not a cgroup2 mount, or pids not delegated here.
        }
      }
    } else if (controllers!.split(',').includes('pids')) candidates.push(join('/sys/fs/cgroup/pids', path));
  }
  for (const dir of candidates) {
    removeStale(dir);
    const probe = join(dir, `caxton-bash-${process.pid}-probe`);
    try {
      mkdirSync(probe);
      try {
        writeFileSync(join(probe, 'pids.max'), '8');
        base = dir;
        break;
      } finally {
        rmdirSync(probe);
      }
    } catch {
      // Not writable here: try the next one.
    }
  }
  return base;
}

/** Removes the groups a server that is no longer running left behind (an empty group only: rmdir refuses others). */
function removeStale(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(/^caxton-bash-(\d+)-/.exec(name)?.[1]);
    if (!pid || pid === process.pid || pidAlive(pid)) continue;
    try {
      rmdirSync(join(dir, name));
    } catch {
      // Still has processes, or not ours to remove.
    }
  }
}

/**
 * What holds `processes` here: a pids cgroup, RLIMIT_NPROC (a server not running as root), or
 * nothing (root with no writable pids cgroup: the kernel exempts root from RLIMIT_NPROC).
 */
export function processLimitBy(): 'pids cgroup' | 'RLIMIT_NPROC' | undefined {
  if (pidsBase()) return 'pids cgroup';
  return process.getuid?.() === 0 ? undefined : 'RLIMIT_NPROC';
}

/** A new pids cgroup limited to `max` processes, or undefined where this machine gives none. */
export function pidsGroup(max: number): PidsGroup | undefined {
  const at = pidsBase();
  if (!at) return undefined;
  const dir = join(at, `caxton-bash-${process.pid}-${++seq}`);
  try {
    mkdirSync(dir);
    writeFileSync(join(dir, 'pids.max'), String(max));
  } catch {
    try {
      rmdirSync(dir);
    } catch {
      // Never made.
    }
    return undefined;
  }
  return {
    procs: join(dir, 'cgroup.procs'),
    refused: () => {
      try {
        return /^max [1-9]/m.test(readFileSync(join(dir, 'pids.events'), 'utf8'));
      } catch {
        return false;
      }
    },
    remove: async () => {
      for (let tries = 0; tries < 100; tries++) {
        try {
          if (existsSync(dir)) rmdirSync(dir);
          return;
        } catch {
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    },
  };
}

/** Which limit a finished command ran into, as far as its exit and output tell, with the outcome to record. */
export function limitReached(
  code: number | null,
  signal: NodeJS.Signals | null,
  out: string,
  forkRefused: boolean,
  l: BashLimits,
): { message: string; outcome: CallOutcome } | undefined {
  // 153 = 128 + SIGXFSZ: the shell's report of a program stopped at the file-size limit.
  if (signal === 'SIGXFSZ' || code === 153 || /File size limit exceeded/.test(out))
    return {
      message: `The command reached the file-size limit: no file may grow past ${formatSize(l.file_size)} ([workspace.bash] file_size in caxton.toml); the write was stopped there.`,
      outcome: 'output_too_large',
    };
  const failed = code !== 0;
  if (
    forkRefused ||
    (failed && /Cannot fork|can't fork|fork: retry|Resource temporarily unavailable|can't start new thread/i.test(out))
  )
    return {
      message: `The command reached the process limit: at most ${l.processes} processes at once ([workspace.bash] processes in caxton.toml); a new process was refused.`,
      outcome: 'error',
    };
  if (
    failed &&
    /MemoryError|Cannot allocate memory|out of memory|bad_alloc|memory exhausted|Failed to reserve virtual memory|allocation failed|\bOOM\b/i.test(
      out,
    )
  )
    return {
      message: `The command reached the memory limit: at most ${formatSize(l.memory)} per process ([workspace.bash] memory in caxton.toml); an allocation was refused.`,
      outcome: 'out_of_memory',
    };
  return undefined;
}
