/**
 * CPU time of processes and of the whole machine, read from /proc (Linux only; elsewhere every
 * figure is NaN): enough to say which process a benchmark's time went to, and how busy the
 * machine was while it ran.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';

/** Clock ticks per second of /proc's figures (USER_HZ: 100 on every mainstream Linux). */
const TICKS = 100;

/**
 * CPU seconds of `pid` (utime + stime) plus those of its children that ended and were waited for
 * (cutime + cstime: how the PostgreSQL postmaster keeps the time of backends that exited), or NaN
 * when it is gone (or not Linux).
 */
export function processCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12]) + Number(rest[13]) + Number(rest[14])) / TICKS;
  } catch {
    return Number.NaN;
  }
}

/**
 * Times the threads of `pid` gave up a core to wait (the voluntary context switches of each
 * /proc/PID/task/TID/status, summed), or NaN when it is gone (or not Linux). At a low message rate
 * each wait ends in a wake-up that runs on cold caches, and that, not the work, is most of what a
 * message costs: a process's wakes per message say how often it was woken for one.
 */
export function processWakes(pid: number): number {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return Number.NaN;
  }
  let n = 0;
  for (const t of tasks) {
    try {
      const m = /^voluntary_ctxt_switches:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8'));
      if (m) n += Number(m[1]);
    } catch {
      // Exited meanwhile.
    }
  }
  return n;
}

/** The ids of the running processes whose command name (/proc/PID/comm) is `comm`. */
function pidsNamed(comm: string): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/comm`, 'utf8').trim() === comm) out.push(Number(e));
    } catch {
      // Exited meanwhile.
    }
  }
  return out;
}

/**
 * `pid` and every live process descended from it (children, their children...), read from the
 * parent pid of each /proc/PID/stat: the PostgreSQL postmaster and its backends, a node and any
 * process it started.
 */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [pid];
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid);
      if (list) list.push(Number(e));
      else children.set(ppid, [Number(e)]);
    } catch {
      // Exited meanwhile.
    }
  }
  const out: number[] = [];
  const todo = [pid];
  while (todo.length > 0) {
    const p = todo.pop()!;
    out.push(p);
    todo.push(...(children.get(p) ?? []));
  }
  return out;
}

/** The first running process whose command line contains every one of `parts`. */
export function pidWithArgs(comm: string, ...parts: string[]): number | undefined {
  for (const pid of pidsNamed(comm)) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (parts.every((p) => cmd.includes(p))) return pid;
    } catch {
      // Exited meanwhile.
    }
  }
  return undefined;
}

/** Busy and total seconds of all CPUs since boot (/proc/stat), for the machine's utilisation over an interval. */
function machineSeconds(): { busy: number; total: number } {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const total = v.reduce((a, b) => a + b, 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    return { busy: (total - idle) / TICKS, total: total / TICKS };
  } catch {
    return { busy: Number.NaN, total: Number.NaN };
  }
}

export interface CpuShare {
  /** CPU seconds the process (or group) used over the interval. */
  cpu_s: number;
  /** That as a percentage of one core over the interval's wall time (200 % = two cores busy). */
  pct_of_core: number;
  /** Times its threads gave up a core to wait (processWakes) over the interval. */
  wakes: number;
}

export interface CpuReport {
  wall_s: number;
  /** Per named process or group. */
  processes: Record<string, CpuShare>;
  /** The whole machine: busy CPU seconds, and its share of all cores (100 % = every core busy). */
  machine: { busy_s: number; pct_of_all_cores: number; cores: number };
}

/**
 * Samples CPU time now; `stop()` samples again and reports the difference. `groups` maps a name to
 * the pids whose time it sums, asked at both ends: a process first seen at the end started during
 * the interval and counts whole; one gone by the end is lost, unless its parent is in the group and
 * waited for it (the PostgreSQL postmaster and its backends).
 */
export async function cpuMeter(
  groups: Record<string, () => number[] | Promise<number[]>>,
): Promise<{ stop(): Promise<CpuReport> }> {
  const sample = async () => {
    const per: Record<string, Map<number, readonly [number, number]>> = {};
    for (const [name, pids] of Object.entries(groups))
      per[name] = new Map((await pids()).map((p) => [p, [processCpuSeconds(p), processWakes(p)] as const]));
    return per;
  };
  const s0 = await sample();
  const t0 = performance.now();
  const m0 = machineSeconds();
  const self0 = process.cpuUsage();
  const selfWakes0 = process.resourceUsage().voluntaryContextSwitches;
  return {
    async stop() {
      const s1 = await sample();
      const m1 = machineSeconds();
      const self = process.cpuUsage(self0);
      const wall = (performance.now() - t0) / 1000;
      const share = (cpu: number, wakes: number): CpuShare => ({
        cpu_s: Math.round(cpu * 100) / 100,
        pct_of_core: Math.round((cpu / wall) * 1000) / 10,
        wakes,
      });
      const processes: Record<string, CpuShare> = {};
      for (const [name, end] of Object.entries(s1)) {
        let cpu = 0;
        let wakes = 0;
        for (const [pid, [t1, w1]] of end) {
          const [t, w] = s0[name]!.get(pid) ?? [0, 0];
          if (Number.isFinite(t) && Number.isFinite(t1)) cpu += t1 - t;
          if (Number.isFinite(w) && Number.isFinite(w1)) wakes += w1 - w;
        }
        processes[name] = share(cpu, wakes);
      }
      processes['bench driver (this process)'] = share(
        (self.user + self.system) / 1e6,
        process.resourceUsage().voluntaryContextSwitches - selfWakes0,
      );
      const cores = cpus().length;
      const busy = m1.busy - m0.busy;
      return {
        wall_s: Math.round(wall * 100) / 100,
        processes,
        machine: {
          busy_s: Math.round(busy * 100) / 100,
          pct_of_all_cores: Math.round((busy / (m1.total - m0.total)) * 1000) / 10,
          cores,
        },
      };
    },
  };
}

/**
 * CPU ms one thread has run (by default the main thread of `pid`, its event loop), from the
 * scheduler's own account (/proc/PID/task/TID/schedstat, ns): unlike wall time it does not grow
 * while the thread waits for a core, and unlike process CPU it leaves out the other threads
 * (GC helpers, workers). NaN when it is gone (or not Linux).
 */
export function threadCpuMs(pid: number, tid = pid): number {
  try {
    return Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
  } catch {
    return Number.NaN;
  }
}

/** Resident memory of the processes, KiB, summed (0 for one that exited meanwhile). */
export function rssKiB(...pids: number[]): number {
  let kib = 0;
  for (const pid of pids) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) kib += Number(m[1]);
    } catch {
      // Exited meanwhile (a replaced pool process).
    }
  }
  return kib;
}
