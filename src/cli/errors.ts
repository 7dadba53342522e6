/** Exit codes shared by every command. */
/** 3: a run answered, but every tool call it made was refused (not in the agent's tools, or not granted). */
export const EXIT = { ok: 0, failure: 1, usage: 2, refused: 3 } as const;

/** A failure the CLI reports as one clear message (plus optional detail lines), exit code 1. */
export class CliError extends Error {
  readonly exitCode: number;
  readonly lines: string[];
  readonly json: unknown;
  constructor(message: string, opts: { lines?: string[]; exitCode?: number; json?: unknown } = {}) {
    super(message);
    this.exitCode = opts.exitCode ?? EXIT.failure;
    this.lines = opts.lines ?? [];
    this.json = opts.json;
  }
}

export function usageError(message: string): CliError {
  return new CliError(message, { exitCode: EXIT.usage });
}
