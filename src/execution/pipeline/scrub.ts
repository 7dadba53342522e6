/**
 * The pipeline's scrub stage: everything an execution hands back — the response, the streamed
 * events (the streamed text as one text: scrubbedEvents), the error — scrubbed of the configured
 * secrets (ADR 0017). They carry provider and tool text, and go on to responses, messages, events
 * and memory; in worker and process mode this is where that text first reaches the server.
 */
import { scrubError, scrubSecretsIn } from '../../shared/secrets.js';
import { StreamScrubber } from '../../shared/stream-scrub.js';
import type { AgentResponse, ExecutionEvent } from '../types.js';

/** Runs `run` with `opts.onEvent` scrubbed, and scrubs what it answers or throws. */
export async function scrubbed<O extends { onEvent?: ((e: ExecutionEvent) => void) | undefined }>(
  opts: O,
  run: (opts: O) => Promise<AgentResponse>,
): Promise<AgentResponse> {
  const events = opts.onEvent && scrubbedEvents(opts.onEvent);
  let res: AgentResponse;
  try {
    res = scrubSecretsIn(await run(events ? { ...opts, onEvent: events.emit } : opts));
    events?.end();
  } catch (e) {
    try {
      events?.end();
    } catch {
      // The execution's own error is the one to report.
    }
    throw scrubError(e);
  }
  return res;
}

/**
 * An execution's events as its caller receives them, scrubbed of the configured secrets. The
 * streamed text is scrubbed as one text, not token by token: a secret the model streams in pieces
 * holds no secret in any one piece (src/shared/stream-scrub.ts). The text held back is released
 * before any other event, so the caller sees everything in the order it happened, and by `end()`.
 */
export function scrubbedEvents(onEvent: (e: ExecutionEvent) => void): {
  emit: (e: ExecutionEvent) => void;
  end: () => void;
} {
  const text = new StreamScrubber();
  const release = (t: string): void => {
    if (t !== '') onEvent({ type: 'token', text: t });
  };
  return {
    emit(e) {
      if (e.type === 'token') return release(text.push(e.text));
      release(text.flush());
      onEvent(scrubSecretsIn(e));
    },
    end: () => release(text.flush()),
  };
}

/** The response as callers see it: the per-turn figures are the execution record's only. */
export function withoutTurns(res: AgentResponse): AgentResponse {
  if (res.model_turns !== undefined) delete res.model_turns;
  return res;
}
