/**
 * What the Conversations, Message and Dead-letter pages share: the API's shapes
 * (src/api/routes/messaging-routes.ts) and small renderers for a message's fields and content.
 */
import { when } from '../format';
import { Link } from '../router';

export { when };

/** A stored FIPA-ACL message (aclMessageSchema). */
export interface AclMessage {
  id: string;
  performative: string;
  sender: string;
  receivers: string[];
  capability?: string;
  reply_to?: string[];
  content: unknown;
  language?: string;
  encoding?: string;
  ontology?: string;
  protocol?: string;
  conversation_id: string;
  reply_with?: string;
  in_reply_to?: string;
  reply_by?: string;
  params: Record<string, string>;
  timestamp: string;
  chain: string[];
  routed_to?: string[];
}

export type ConversationState = 'initiated' | 'in_progress' | 'completed' | 'failed' | 'expired';
export const STATES: readonly ConversationState[] = ['initiated', 'in_progress', 'completed', 'failed', 'expired'];
export const isTerminal = (s: string): boolean => s === 'completed' || s === 'failed' || s === 'expired';

export interface Conversation {
  id: string;
  protocol: string | null;
  state: ConversationState;
  initiator: string;
  participants: string[];
  capability: string | null;
  turns: number;
  max_turns: number;
  created_at: string;
  updated_at: string;
  expires_at: string | null;
  reason: string | null;
}

export interface Delivery {
  id: number;
  message_id: string;
  receiver: string;
  state: 'pending' | 'done' | 'dead';
  attempts: number;
  next_at: number;
  last_error: string | null;
  updated_at: string;
  /** Each failed attempt, oldest first (the server keeps the last few). */
  attempt_errors: { at: string; error: string }[];
}

export type DeadLetter = Delivery & { message: Omit<AclMessage, 'routed_to'> };

/** The message's content as text: strings as they are, anything else as indented JSON. */
export function contentText(c: unknown): string {
  if (typeof c === 'string') return c;
  try {
    return JSON.stringify(c, null, 2) ?? String(c);
  } catch {
    return String(c);
  }
}

/** "+0.00 s", "+12.4 s", "+3 min 5 s": the time since `from`. */
export function offsetText(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) ms = 0;
  if (ms < 10_000) return `+${(ms / 1000).toFixed(2)} s`;
  if (ms < 60_000) return `+${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return `+${Math.floor(s / 60)} min ${s % 60} s`;
}

/** Where a message went: its named receivers, else where it was routed, else the capability it addressed. */
export function targetsOf(m: Pick<AclMessage, 'receivers' | 'routed_to' | 'capability'>): string[] {
  if (m.receivers.length > 0) return m.receivers;
  if (m.routed_to && m.routed_to.length > 0) return m.routed_to;
  return [m.capability ? `capability ${m.capability}` : '(nobody)'];
}

export function StateBadge({ state }: { state: string }) {
  return <span class={`badge state-${state}`}>{state.replace('_', ' ')}</span>;
}

/** One message's fields as a description list: ids link to their pages. */
export function MessageFields({ m, offset }: { m: AclMessage | Omit<AclMessage, 'routed_to'>; offset?: string }) {
  const routed = 'routed_to' in m ? m.routed_to : undefined;
  const params = Object.entries(m.params ?? {});
  return (
    <>
      <dl class="fields">
        <dt>Performative</dt>
        <dd>
          <span class={`perf perf-${m.performative}`}>{m.performative}</span>
        </dd>
        <dt>From</dt>
        <dd>{m.sender}</dd>
        <dt>To</dt>
        <dd>
          {m.receivers.length > 0 ? m.receivers.join(', ') : m.capability ? `capability ${m.capability}` : '—'}
          {routed && routed.length > 0 && m.receivers.length === 0 && (
            <span class="muted"> (routed to {routed.join(', ')})</span>
          )}
        </dd>
        <dt>Message id</dt>
        <dd>
          <Link to={`/messages/${encodeURIComponent(m.id)}`}>
            <code>{m.id}</code>
          </Link>
        </dd>
        <dt>Conversation</dt>
        <dd>
          <Link to={`/conversations/${encodeURIComponent(m.conversation_id)}?m=${encodeURIComponent(m.id)}`}>
            <code>{m.conversation_id}</code>
          </Link>
        </dd>
        <dt>In reply to</dt>
        <dd>
          {m.in_reply_to ? (
            <Link to={`/messages/${encodeURIComponent(m.in_reply_to)}`}>
              <code>{m.in_reply_to}</code>
            </Link>
          ) : (
            '—'
          )}
        </dd>
        {m.reply_with && (
          <>
            <dt>Reply with</dt>
            <dd>
              <code>{m.reply_with}</code>
            </dd>
          </>
        )}
        {m.protocol && (
          <>
            <dt>Protocol</dt>
            <dd>{m.protocol}</dd>
          </>
        )}
        <dt>Sent</dt>
        <dd>
          {when(m.timestamp)}
          {offset && <span class="muted"> ({offset} from the first message)</span>}
        </dd>
        {m.reply_by && (
          <>
            <dt>Reply by</dt>
            <dd>{when(m.reply_by)}</dd>
          </>
        )}
        {m.chain.length > 0 && (
          <>
            <dt>Chain</dt>
            <dd>{m.chain.join(' → ')}</dd>
          </>
        )}
        {params.length > 0 && (
          <>
            <dt>Parameters</dt>
            <dd>{params.map(([k, v]) => `${k}=${v}`).join(', ')}</dd>
          </>
        )}
      </dl>
      <h3>Content</h3>
      <pre class="source" data-testid="message-content">
        {contentText(m.content)}
      </pre>
    </>
  );
}
