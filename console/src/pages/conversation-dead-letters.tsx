/**
 * A failed conversation's dead letters: the deliveries of its messages that failed for good, each
 * linked to its page (attempts, error, replay). The API lists dead letters by receiver, so they
 * are read for each participant and kept when they belong to this conversation.
 */
import { useEffect, useState } from 'preact/hooks';
import { get } from '../api';
import { Link } from '../router';
import type { DeadLetter } from './messaging-common';

export function ConversationDeadLetters({ id, participants }: { id: string; participants: string[] }) {
  const [found, setFound] = useState<DeadLetter[]>();
  useEffect(() => {
    const ac = new AbortController();
    Promise.all(
      participants.map((p) =>
        get<{ dead_letters: DeadLetter[] }>('/api/v1/dead-letters', { receiver: p, limit: 200 }, ac.signal).then(
          (r) => r.dead_letters,
          () => [] as DeadLetter[],
        ),
      ),
    ).then(
      (lists) => {
        const seen = new Set<number>();
        setFound(
          lists
            .flat()
            .filter((d) => d.message.conversation_id === id && !seen.has(d.id) && seen.add(d.id) !== undefined),
        );
      },
      () => undefined,
    );
    return () => ac.abort();
  }, [id, participants.join('\n')]);
  if (!found || found.length === 0) return null;
  return (
    <p data-testid="conversation-dead-letters">
      Failed for good:{' '}
      {found.map((d, i) => (
        <span key={d.id}>
          {i > 0 && ', '}
          <Link to={`/dead-letters/${d.id}`}>
            dead letter #{d.id} to {d.receiver}
          </Link>
        </span>
      ))}{' '}
      — open one to see its attempts and replay it.
    </p>
  );
}
