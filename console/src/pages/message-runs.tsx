/**
 * The runs that handled a conversation's messages: each execution record names the message whose
 * delivery ran it (GET /api/v1/executions?conversation=…), so a message, an arrow of the sequence
 * diagram or a dead letter links to its run page. Without observe:read there are no links.
 */
import { useEffect, useRef } from 'preact/hooks';
import { useApi } from '../hooks';
import { Link } from '../router';
import { can } from '../session';
import { when } from './messaging-common';

export interface RunRef {
  id: string;
  agent: string;
  status: 'ok' | 'error';
  started_at: string;
  message_id: string | null;
}

/** A conversation's runs by the message each handled, oldest first; reloaded when `changed` does (a new message). */
export function useRunsOf(conversationId: string | undefined, changed?: unknown): Map<string, RunRef[]> {
  const runs = useApi<{ executions: RunRef[] }>(
    conversationId !== undefined && can('observe:read') ? '/api/v1/executions' : undefined,
    conversationId !== undefined ? { conversation: conversationId, limit: 1000 } : undefined,
  );
  const seen = useRef(changed);
  useEffect(() => {
    if (seen.current === changed) return;
    seen.current = changed;
    runs.reload();
  }, [changed]);
  const by = new Map<string, RunRef[]>();
  for (const e of [...(runs.data?.executions ?? [])].reverse()) {
    if (e.message_id === null) continue;
    const list = by.get(e.message_id);
    if (list) list.push(e);
    else by.set(e.message_id, [e]);
  }
  return by;
}

/** Links to the runs that handled one message (none: nothing). */
export function RunLinks({ runs, compact }: { runs: readonly RunRef[] | undefined; compact?: boolean }) {
  if (!runs || runs.length === 0) return compact ? <>—</> : null;
  return (
    <span class="run-links" data-testid="message-runs">
      {runs.map((r, i) => (
        <span key={r.id}>
          {i > 0 && ', '}
          <Link to={`/runs/${encodeURIComponent(r.id)}`} data-testid="run-link" title={when(r.started_at)}>
            {r.agent}'s run{r.status === 'error' ? ' (failed)' : ''}
            {!compact && `, ${when(r.started_at)}`}
          </Link>
        </span>
      ))}
    </span>
  );
}
