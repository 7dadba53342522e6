/**
 * A durable run's timeline from the times its steps were committed (`at`): each model turn, each
 * tool call, each wait for a person's approval and each gap before a resume, keyed like the steps
 * list's entries (run-entries.ts) so that a span leads to its step. Pure, tested without a browser
 * (test/console/console-helpers.test.ts), hence the .js import names.
 */
import { callEntryKey, modelKeys, resumeEntryKey, type Step } from './run-entries.js';

export interface Span {
  /** The key of the entry it belongs to. */
  key: string;
  label: string;
  kind: 'model' | 'tool' | 'approval' | 'gap';
  /** ms since the epoch. */
  start: number;
  end: number;
  failed: boolean;
  /** Still going (an approval nobody decided yet): its end is now. */
  open: boolean;
}

/**
 * When each step ended. Steps committed together share their `at`, the commit's time: they happened
 * one after another just before it, so each one's end is the commit's time less the durations of
 * the steps after it in the same commit (an idempotent call's end is committed with the turn's
 * other results, a reply with its first call's start).
 */
function endsOf(steps: readonly Step[]): (number | undefined)[] {
  const ends: (number | undefined)[] = steps.map(() => undefined);
  for (let i = steps.length - 1; i >= 0;) {
    const at = steps[i]!.at;
    if (at === undefined) {
      i--;
      continue;
    }
    let t = at;
    for (; i >= 0 && steps[i]!.at === at; i--) {
      const s = steps[i]!;
      ends[i] = t;
      if (s.kind === 'tool_end') t -= s.duration_ms;
      else if (s.kind === 'model') t -= s.reply.latency_ms;
    }
  }
  return ends;
}

/**
 * The spans of a run's steps, in step order; `untimed`: how many steps carry no time (recorded by
 * an older server). `startedAt`: when the run started, where the gap before a resume that came
 * before any step begins.
 */
export function spansOf(steps: readonly Step[], now: number, startedAt?: number): { spans: Span[]; untimed: number } {
  const ends = endsOf(steps);
  const spans: Span[] = [];
  const modelKey = modelKeys();
  const started = new Map<string, number>();
  const asked = new Map<string, { at: number; name: string; span?: Span }>();
  let untimed = 0;
  let resumes = 0;
  /** The end of the latest timed step so far. */
  let last = startedAt !== undefined && !Number.isNaN(startedAt) ? startedAt : undefined;
  steps.forEach((s, i) => {
    const end = ends[i];
    if (s.kind === 'model') {
      const key = modelKey(s.turn);
      if (end !== undefined)
        spans.push({
          key,
          label: `model turn ${s.turn}`,
          kind: 'model',
          start: end - s.reply.latency_ms,
          end,
          failed: false,
          open: false,
        });
    } else if (s.kind === 'resumed') {
      resumes++;
      // After a decision the run resumes at once: the wait is the approval's span.
      if (last !== undefined && steps[i - 1]?.kind !== 'approval')
        spans.push({
          key: resumeEntryKey(resumes),
          label: 'stopped, then resumed',
          kind: 'gap',
          start: last,
          end: s.at,
          failed: false,
          open: false,
        });
    } else if (end !== undefined) {
      if (s.kind === 'tool_start') started.set(callEntryKey(s.turn, s.id), end);
      else if (s.kind === 'tool_end') {
        const key = callEntryKey(s.turn, s.id);
        const from = started.get(key);
        if (s.interrupted === true) {
          // Its outcome, and so its end, is unknown: a mark where it started, if that is known.
          if (from !== undefined)
            spans.push({
              key,
              label: `tool ${s.name} (interrupted)`,
              kind: 'tool',
              start: from,
              end: from,
              failed: true,
              open: false,
            });
        } else
          spans.push({
            key,
            label: `tool ${s.name}`,
            kind: 'tool',
            start: from ?? end - s.duration_ms,
            end,
            failed: s.is_error,
            open: false,
          });
      } else if (s.kind === 'approval_requested') {
        const span: Span = {
          key: callEntryKey(s.turn, s.id),
          label: `waiting for approval of ${s.name}`,
          kind: 'approval',
          start: s.at,
          end: Math.max(s.at, now),
          failed: false,
          open: true,
        };
        asked.set(span.key, { at: s.at, name: s.name, span });
        spans.push(span);
      } else if (s.kind === 'approval') {
        const a = asked.get(callEntryKey(s.turn, s.id));
        if (a?.span !== undefined) {
          a.span.end = s.at;
          a.span.open = false;
          a.span.label = `approval of ${a.name}: ${s.decision} by ${s.by}`;
          a.span.failed = s.decision === 'denied';
        }
      }
    }
    if (end !== undefined) last = Math.max(last ?? end, end);
    else if (s.at === undefined) untimed++;
  });
  return { spans, untimed };
}

/**
 * Where a time falls on the drawn axis, in per cent: the waits (gaps, approvals) are drawn at a
 * fixed width whatever their length, so that a server down for an hour does not flatten the rest;
 * the time between them is drawn to scale.
 */
export function axisOf(spans: readonly Span[]): (t: number) => number {
  if (spans.length === 0) return () => 0;
  const t0 = Math.min(...spans.map((s) => s.start));
  const t1 = Math.max(...spans.map((s) => s.end));
  // The waits, merged where they overlap, in time order.
  const breaks: [number, number][] = [];
  for (const s of [...spans]
    .filter((x) => x.kind === 'gap' || x.kind === 'approval')
    .sort((a, b) => a.start - b.start)) {
    const prev = breaks.at(-1);
    if (prev !== undefined && s.start <= prev[1]) prev[1] = Math.max(prev[1], s.end);
    else if (s.end > s.start) breaks.push([s.start, s.end]);
  }
  const width = breaks.length === 0 ? 0 : Math.min(12, 40 / breaks.length);
  const active = Math.max(1, t1 - t0 - breaks.reduce((n, [a, b]) => n + (b - a), 0));
  const scale = (100 - width * breaks.length) / active;
  return (t) => {
    let pos = 0;
    let from = t0;
    for (const [a, b] of breaks) {
      if (t <= a) break;
      pos += (a - from) * scale;
      if (t < b) return pos + (width * (t - a)) / (b - a);
      pos += width;
      from = b;
    }
    return Math.min(100, pos + (t - from) * scale);
  };
}
