/**
 * A durable run's timeline from its steps' times (run-spans.ts): model turns, tool calls, waits
 * for approval and the gaps before resumes, each label a button that scrolls to its step in the
 * list below and highlights it. Waits are drawn shortened, with their real length beside them.
 */
import { gapText, type Step } from './run-entries';
import { axisOf, spansOf } from './run-spans';

export function StepTimeline({
  steps,
  createdAt,
  onSelect,
}: {
  steps: Step[];
  createdAt: string;
  onSelect: (key: string) => void;
}) {
  const { spans, untimed } = spansOf(steps, Date.now(), Date.parse(createdAt));
  if (spans.length === 0)
    return untimed > 0 ? (
      <p class="muted small" data-testid="no-step-times">
        Its steps were recorded without their times (by an older server), so there is no timeline of them.
      </p>
    ) : null;
  const pos = axisOf(spans);
  return (
    <section aria-labelledby="timeline-title" data-testid="run-timeline">
      <h2 id="timeline-title">Timeline</h2>
      <p class="small muted">
        From the times its steps were committed; a step without its own start is placed before the next commit. Waits
        (the server stopped, a person deciding) are drawn shortened, hatched, with their length.
        {untimed > 0 && ` ${untimed} older step${untimed === 1 ? ' has' : 's have'} no time and are not drawn.`} Choose
        a span to see its step.
      </p>
      <ol class="waterfall step-timeline">
        {spans.map((s, i) => {
          const left = pos(s.start);
          return (
            <li
              key={`${s.key}-${i}`}
              data-testid="timeline-span"
              data-kind={s.kind}
              data-step={s.key}
              class={s.failed ? 'failed' : undefined}
            >
              <span class="waterfall-label">
                <button type="button" class="span-button" onClick={() => onSelect(s.key)}>
                  {s.label}
                </button>
              </span>
              <span class="waterfall-track" aria-hidden="true">
                <span
                  class={`waterfall-bar span-${s.kind}`}
                  style={{ left: `${left}%`, width: `${Math.max(0.5, pos(s.end) - left)}%` }}
                />
              </span>
              <span class="waterfall-time small muted">
                {s.kind === 'tool' && s.end === s.start ? 'unknown' : gapText(s.end - s.start)}
                {s.open && ' so far'}
              </span>
            </li>
          );
        })}
      </ol>
    </section>
  );
}
