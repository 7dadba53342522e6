/**
 * Loading a part of the console (a page, the editor) that is its own file. A fetch of it can fail
 * for a moment (a dropped connection, a server restarting) or for good (the server was updated
 * and the file this tab knows of is gone). The browser's own message ("Failed to fetch
 * dynamically imported module: URL") tells a user neither, so a failed load is tried again a few
 * times and then reported in words, with what to do.
 */

/** A part of the console that could not be loaded after every try. */
export class ChunkLoadError extends Error {
  constructor(what: string, cause: unknown) {
    super(
      `The ${what} could not be loaded from the server: the connection failed, or the console was updated ` +
        'since this tab opened it. Try again, or reload the console to get its current version.',
      { cause },
    );
    this.name = 'ChunkLoadError';
  }
}

/** Waits before each new try (milliseconds): short, since the user is waiting for the page. */
const RETRY_DELAYS = [300, 1000, 2500];

/** `load()`, tried again after a failure; rejects with a ChunkLoadError naming `what` once every try failed. */
export async function loadChunk<T>(what: string, load: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await load();
    } catch (e) {
      const delay = RETRY_DELAYS[attempt];
      if (delay === undefined) throw new ChunkLoadError(what, e);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
