import { Transform, type TransformCallback } from 'node:stream';

/** One frame of the NATS protocol: its operation, the words of its line, its payload (MSG/HMSG/PUB/HPUB). */
export interface NatsFrame {
  op: string;
  args: string[];
  payload: Buffer | undefined;
}

/**
 * A filter of one direction of a NATS connection (for `startTcpProxy`): it passes every frame
 * unchanged but loses the next frames that match — the network, or a server, losing one while
 * the connection stays up. A frame is a line (INFO, CONNECT, SUB, PING, …) or, for MSG, HMSG, PUB
 * and HPUB, a line and its payload (the last number of the line is the payload's size).
 */
export interface NatsFrameDropper {
  /** A new filter for one connection. */
  readonly filter: () => Transform;
  /** Loses the next `count` frames that `match`. */
  drop(match: (f: NatsFrame) => boolean, count?: number): void;
  /** Frames lost so far. */
  readonly dropped: number;
}

const WITH_PAYLOAD = new Set(['MSG', 'HMSG', 'PUB', 'HPUB']);

export function natsFrameDropper(): NatsFrameDropper {
  let pending: { match: (f: NatsFrame) => boolean; count: number } | undefined;
  let dropped = 0;
  const shouldDrop = (f: NatsFrame): boolean => {
    if (!pending?.match(f)) return false;
    if (--pending.count <= 0) pending = undefined;
    dropped++;
    return true;
  };
  class Filter extends Transform {
    #buf: Buffer = Buffer.alloc(0);
    override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
      this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk;
      for (;;) {
        const eol = this.#buf.indexOf('\r\n');
        if (eol < 0) break;
        const args = this.#buf.subarray(0, eol).toString('latin1').split(' ');
        const op = args[0]!.toUpperCase();
        let size = eol + 2;
        let payload: Buffer | undefined;
        if (WITH_PAYLOAD.has(op)) {
          const bytes = Number(args[args.length - 1]);
          if (this.#buf.length < size + bytes + 2) break;
          payload = this.#buf.subarray(size, size + bytes);
          size += bytes + 2;
        }
        if (!shouldDrop({ op, args, payload })) this.push(this.#buf.subarray(0, size));
        this.#buf = this.#buf.subarray(size);
      }
      done();
    }
  }
  return {
    filter: () => new Filter(),
    drop(match, count = 1) {
      pending = { match, count };
    },
    get dropped() {
      return dropped;
    },
  };
}
