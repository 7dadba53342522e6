import { createWriteStream, mkdirSync, openSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import { CaxtonError } from '../shared/errors.js';

/**
 * `[audit] jsonl`: every audit row also appended to a file as one JSON line, for shipping to a log
 * pipeline (Vector, Fluent Bit, a SIEM). The file is opened append-only (O_APPEND: lines from
 * this process never overwrite what is there, and an external rotator may move it) and created
 * 0600, since rows name principals and client addresses. An existing file keeps its mode: the
 * operator chose it. Writes are asynchronous and in order; a failed write is reported once per
 * failure through onError and the rows stay in SQLite.
 */
export class JsonlAppender {
  readonly #stream: WriteStream;
  #failed = false;

  constructor(
    readonly path: string,
    onError: (e: unknown) => void,
  ) {
    let fd: number;
    try {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      fd = openSync(path, 'a', 0o600);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new CaxtonError(
        'invalid_config',
        `[audit] jsonl: cannot open "${path}" for appending (${err.code ?? err.message}); fix the path or its permissions, or remove the setting`,
        {
          field: 'audit.jsonl',
          path,
        },
      );
    }
    this.#stream = createWriteStream(path, { fd, flags: 'a' });
    this.#stream.on('error', (e) => {
      if (this.#failed) return;
      this.#failed = true;
      onError(e);
    });
  }

  write(lines: string): void {
    if (this.#stream.destroyed || this.#stream.writableEnded) return;
    this.#stream.write(lines);
  }

  /** Resolves once every line written so far is in the file and the file is closed. */
  close(): Promise<void> {
    if (this.#stream.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      this.#stream.once('close', () => resolve());
      this.#stream.end();
    });
  }
}
