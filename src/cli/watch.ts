import type { Command } from 'commander';
import { usageError } from './errors.js';
import { positiveInt } from './number-flags.js';

export interface WatchOptions {
  watch?: boolean;
  interval?: number;
  count?: number;
}

/** A duration flag such as "2s" or "500ms", between `min` and `max` ms. */
export function durationFlag(flag: string, min: number, max: number) {
  return (v: string): number => {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(v.trim());
    const ms = m ? Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : 1000) : NaN;
    if (!(ms >= min && ms <= max))
      throw usageError(
        `${flag} expects a duration between ${min / 1000}s and ${max / 1000}s (e.g. "2s", "500ms"), got "${v}"`,
      );
    return ms;
  };
}

/** Adds `--watch`, `--interval` and `--count` (the refresh loop of `watchLoop`). */
export function addWatchOptions(cmd: Command): Command {
  return cmd
    .option('-w, --watch', 'refresh until Ctrl-C')
    .option(
      '--interval <duration>',
      'with --watch: time between refreshes (default 2s)',
      durationFlag('--interval', 200, 3_600_000),
    )
    .option('--count <n>', 'with --watch: stop after this many refreshes', positiveInt('--count'));
}

/**
 * Runs `show` once, or with --watch every `interval` until Ctrl-C (or `count` refreshes, or
 * `show` returns false). `show(clear)`: clear is true when the screen should be redrawn (a TTY);
 * `between` runs between two refreshes (a blank line when the output is not a terminal).
 */
export async function watchLoop(
  opts: WatchOptions,
  isTty: boolean,
  show: (clear: boolean) => Promise<boolean | void>,
  between?: () => void,
): Promise<void> {
  if (!opts.watch) {
    await show(false);
    return;
  }
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    for (let n = 1; !stop.signal.aborted; n++) {
      if ((await show(isTty)) === false) break;
      if (opts.count !== undefined && n >= opts.count) break;
      between?.();
      await new Promise<void>((r) => {
        const t = setTimeout(r, opts.interval ?? 2000);
        stop.signal.addEventListener('abort', () => (clearTimeout(t), r()), { once: true });
      });
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
