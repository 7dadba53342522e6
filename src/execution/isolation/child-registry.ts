import type { ChildProcess } from 'node:child_process';

/**
 * Every live child process of every pool, so they can be SIGKILLed when this process exits
 * (a child also exits by itself when its IPC channel closes, which covers the parent being
 * killed outright — unless the child is stuck in synchronous code).
 */
const live = new Set<ChildProcess>();
let hooked = false;

function killAll(): void {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
}

export function track(child: ChildProcess): void {
  if (!hooked) {
    hooked = true;
    process.once('exit', killAll);
  }
  live.add(child);
  child.once('exit', () => live.delete(child));
}
