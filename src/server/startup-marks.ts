/**
 * `CAXTON_STARTUP_TRACE=1`: each phase of a start as a line on stderr,
 * `caxton startup: PHASE WALL_MS CPU_MS`: milliseconds since the process started, and the
 * process's CPU time so far (user + system, every thread). bench/startup.ts reads them for its
 * phase breakdown. Off, a phase costs one test of a constant.
 */
const ON = process.env.CAXTON_STARTUP_TRACE === '1';

export function startupMark(phase: string): void {
  if (!ON) return;
  const u = process.cpuUsage();
  process.stderr.write(
    `caxton startup: ${phase} ${performance.now().toFixed(1)} ${((u.user + u.system) / 1000).toFixed(1)}\n`,
  );
}

/** Whether the marks are on (the serve command then also marks its first answer). */
export const startupTraced = (): boolean => ON;
