/** The state of a page's event stream, announced politely to screen readers. */
import type { LiveState } from '../live';

export function LiveStatus({ state, label = 'Live updates' }: { state: LiveState | undefined; label?: string }) {
  if (!state) return null;
  const text =
    state.state === 'open'
      ? `${label}: connected`
      : state.state === 'connecting'
        ? `${label}: connecting…`
        : state.state === 'retrying'
          ? `${label}: reconnecting in ${Math.round(state.inMs / 1000)} s (${state.reason})`
          : `${label}: stopped — ${state.error.explanation}`;
  return (
    <p class={`live ${state.state}`} role="status" aria-live="polite">
      {text}
    </p>
  );
}
