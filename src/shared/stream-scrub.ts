/**
 * Scrubbing a text that arrives in pieces (a model's streamed answer). Scrubbing each piece on its
 * own misses a secret split across pieces, and every piece of it reaches the client. A
 * StreamScrubber reads the pieces as one text: it releases what no secret can still be
 * completing, and holds back the rest — at most the longest form of the longest secret minus one
 * character, and in ordinary text only the few last characters that begin some form of a secret.
 * Everything released, joined, reads exactly as the whole text scrubbed at once (`scrubSecrets`):
 * the same "***" in the same places, text around them intact.
 */
import { withSpansReplaced } from './secret-matcher.js';
import { secretScrubber, type SecretScrubber } from './secrets.js';

export class StreamScrubber {
  readonly #fixed: SecretScrubber | undefined;
  #scrubber: SecretScrubber;
  /** Text read and not yet released, and the automaton's state after it. */
  #held = '';
  #state = 0;
  /** The matches in #held ([start, end) pairs, merged, ordered). */
  #spans: number[] = [];

  /** Without a scrubber, the process-wide one, re-read at every piece (registering only adds secrets). */
  constructor(fixed?: SecretScrubber) {
    this.#fixed = fixed;
    this.#scrubber = fixed ?? secretScrubber();
  }

  /** Reads the next piece; returns the text that can be released now, scrubbed (possibly ''). */
  push(piece: string): string {
    const matcher = this.#current().matcher;
    if (!matcher) return piece; // no secret, so nothing was ever held
    const offset = this.#held.length;
    this.#held += piece;
    this.#state = matcher.scan(piece, this.#state, offset, this.#spans);
    // The last characters that begin a form of a secret may yet complete it.
    let cut = this.#held.length - matcher.pending(this.#state);
    // A match reaching the cut — or touching it: adjacent matches become one "***" — is held whole.
    for (let k = this.#spans.length - 2; k >= 0; k -= 2) {
      if (this.#spans[k + 1]! < cut) break;
      if (this.#spans[k]! < cut) {
        cut = this.#spans[k]!;
        break;
      }
    }
    return this.#release(cut);
  }

  /** The end of the text (or of a part of it that stands alone): releases everything held, scrubbed. */
  flush(): string {
    const out = this.#release(this.#held.length);
    this.#state = 0;
    return out;
  }

  /** The process-wide scrubber, rescanning the held text when secrets were registered meanwhile. */
  #current(): SecretScrubber {
    const now = this.#fixed ?? secretScrubber();
    if (now !== this.#scrubber) {
      this.#scrubber = now;
      this.#spans = [];
      this.#state = now.matcher ? now.matcher.scan(this.#held, 0, 0, this.#spans) : 0;
    }
    return now;
  }

  /** Releases #held up to `cut` (no match straddles it), scrubbed. */
  #release(cut: number): string {
    if (cut === 0) return '';
    const spans = this.#spans;
    let k = 0;
    while (k < spans.length && spans[k]! < cut) k += 2;
    const out = withSpansReplaced(this.#held, spans.slice(0, k), cut);
    this.#spans = spans.slice(k).map((p) => p - cut);
    this.#held = this.#held.slice(cut);
    return out;
  }
}
