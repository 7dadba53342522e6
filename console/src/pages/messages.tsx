/**
 * One message: GET /api/v1/messages/:id, its fields and content, links to its
 * conversation and the message it answers, and its deliveries (refreshed every 2 s while one is
 * pending, so a replayed dead letter is seen delivered).
 */
import { useEffect } from 'preact/hooks';
import { ErrorBox, Loading } from '../components/feedback';
import { useApi } from '../hooks';
import type { PageProps } from '../pages';
import { Link } from '../router';
import { MessageList } from './message-list';
import { type AclMessage, type Delivery, MessageFields, when } from './messaging-common';

type MessageDoc = AclMessage & { deliveries: Delivery[] };

export default function Messages({ params, query }: PageProps) {
  if (params.id === undefined) return <MessageList query={query} />;
  return <Message key={params.id} id={params.id} />;
}

function Message({ id }: { id: string }) {
  const doc = useApi<MessageDoc>(`/api/v1/messages/${encodeURIComponent(id)}`);
  const pending = doc.data?.deliveries.some((d) => d.state === 'pending') ?? false;
  useEffect(() => {
    if (!pending) return;
    const t = setInterval(() => document.visibilityState === 'visible' && doc.reload(), 2_000);
    return () => clearInterval(t);
  }, [pending]);

  const m = doc.data;
  return (
    <section class="msg-page" aria-labelledby="message-title">
      <p class="crumbs">
        <Link to="/messages">Messages</Link> /{' '}
        {m && (
          <>
            <Link to={`/conversations/${encodeURIComponent(m.conversation_id)}?m=${encodeURIComponent(m.id)}`}>
              conversation {m.conversation_id}
            </Link>{' '}
            /
          </>
        )}
      </p>
      <h1 id="message-title">{m ? `Message: ${m.performative} from ${m.sender}` : 'Message'}</h1>
      {doc.error !== undefined && !m && <ErrorBox error={doc.error} />}
      {!m && doc.error === undefined && <Loading what="the message" />}
      {m && (
        <>
          <MessageFields m={m} />
          <h2>Deliveries</h2>
          {m.deliveries.length === 0 ? (
            <p class="muted">No deliveries: the message was not routed to an agent.</p>
          ) : (
            <div class="table-wrap">
              <table data-testid="deliveries">
                <caption class="visually-hidden">Deliveries of message {m.id}</caption>
                <thead>
                  <tr>
                    <th scope="col">Receiver</th>
                    <th scope="col">State</th>
                    <th scope="col">Attempts</th>
                    <th scope="col">Last error</th>
                    <th scope="col">Updated</th>
                  </tr>
                </thead>
                <tbody>
                  {m.deliveries.map((d) => (
                    <tr key={d.id} data-testid="delivery-row" data-state={d.state}>
                      <td>{d.receiver}</td>
                      <td>
                        <span class={`badge delivery-${d.state}`}>{d.state}</span>
                        {d.state === 'dead' && (
                          <>
                            {' '}
                            <Link to={`/dead-letters/${d.id}`}>dead letter #{d.id}</Link>
                          </>
                        )}
                      </td>
                      <td>{d.attempts}</td>
                      <td class="error-text">{d.last_error ?? '—'}</td>
                      <td>{when(d.updated_at)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          {pending && (
            <p class="muted small" role="status">
              A delivery is pending: refreshed every 2 s.
            </p>
          )}
        </>
      )}
    </section>
  );
}
