/** A progress indicator on stderr: a rewritten line on a TTY, a line every 10 % otherwise. */
export function progress(label: string, total: number): { update(done: number): void; end(): void } {
  const tty = process.stderr.isTTY === true;
  const t0 = Date.now();
  let lastPct = 0;
  let lastDraw = 0;
  const line = (done: number) => {
    const pct = Math.floor((done / total) * 100);
    const secs = (Date.now() - t0) / 1000;
    const rate = secs > 0 ? Math.round(done / secs) : 0;
    return `${label}: ${done}/${total} (${pct}%) ${secs.toFixed(1)}s ${rate}/s`;
  };
  return {
    update(done) {
      const pct = Math.floor((done / total) * 100);
      if (tty) {
        const now = Date.now();
        if (now - lastDraw < 100 && done < total) return;
        lastDraw = now;
        process.stderr.write(`\r${line(done)}\x1b[K`);
      } else if (pct >= lastPct + 10 || done === total) {
        lastPct = pct - (pct % 10);
        process.stderr.write(`${line(done)}\n`);
      }
    },
    end() {
      if (tty) process.stderr.write('\n');
    },
  };
}

/** A status line on stderr (stdout carries only the result tables). */
export function note(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}
