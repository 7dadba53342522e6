/**
 * Send: a message to an agent, or a call for proposals to every agent with a capability
 * (POST /api/v1/messages), then straight into its conversation's live diagram. The sender is the
 * signed-in principal; each problem the server names is shown under its field.
 */
import { useState } from 'preact/hooks';
import { api, ApiError } from '../api';
import { FieldError } from '../components/issues';
import { Link, navigate } from '../router';

type Kind = 'request' | 'cfp';

interface Sent {
  id: string;
  conversation_id: string;
  /** Not routed (no such agent, no provider of the capability): a failure reply is in the conversation. */
  failure?: { reason: string; message: string };
}

/** The form's field a server error is about (its details.field, or an issue's). */
function fieldOf(e: unknown): string | undefined {
  if (!(e instanceof ApiError)) return undefined;
  if (e.field !== undefined) return e.field.split('.')[0];
  const issues = e.details.issues;
  if (Array.isArray(issues)) {
    const f = (issues[0] as { field?: unknown } | undefined)?.field;
    if (typeof f === 'string') return f.split('.')[0];
  }
  return undefined;
}

export default function SendPage() {
  const [kind, setKind] = useState<Kind>('request');
  const [to, setTo] = useState('');
  const [content, setContent] = useState('');
  const [replyBy, setReplyBy] = useState('60');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const [failed, setFailed] = useState<{ message: string; conversation: string }>();

  const target = kind === 'request' ? 'receiver' : 'capability';
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    setFailed(undefined);
    try {
      const body =
        kind === 'request'
          ? { performative: 'request', receiver: to.trim(), content }
          : { performative: 'cfp', capability: to.trim(), content, reply_by: `${Number(replyBy) || 60}s` };
      const sent = await api<Sent>('POST', '/api/v1/messages', { json: body });
      if (sent.failure) setFailed({ message: sent.failure.message, conversation: sent.conversation_id });
      else navigate(`/conversations/${encodeURIComponent(sent.conversation_id)}`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const field = fieldOf(error);
  const toError = field === 'receiver' || field === 'receivers' || field === 'capability' ? error : undefined;
  const contentError = field === 'content' ? error : undefined;
  const replyByError = field === 'reply_by' ? error : undefined;
  const otherError = error !== undefined && !toError && !contentError && !replyByError ? error : undefined;

  return (
    <section aria-labelledby="send-title">
      <h1 id="send-title">Send</h1>
      <p class="muted">
        Ask one agent, or call for proposals from every agent with a capability; you follow the conversation as it
        happens.
      </p>
      <form class="send-form" onSubmit={submit} aria-label="Send a message">
        <fieldset>
          <legend>What to send</legend>
          <label class="inline">
            <input type="radio" name="kind" checked={kind === 'request'} onChange={() => setKind('request')} /> A
            message to an agent
          </label>
          <label class="inline">
            <input type="radio" name="kind" checked={kind === 'cfp'} onChange={() => setKind('cfp')} /> A call for
            proposals
          </label>
        </fieldset>
        <div>
          <label for="send-to">{kind === 'request' ? 'Agent' : 'Capability'}</label>
          <input
            id="send-to"
            required
            value={to}
            autoComplete="off"
            onInput={(e) => {
              setTo((e.target as HTMLInputElement).value);
              setFailed(undefined);
            }}
            {...((toError !== undefined || failed !== undefined) && {
              'aria-describedby': 'send-to-error',
              'aria-invalid': true,
            })}
          />
          <FieldError error={toError} id="send-to-error" />
          {failed && (
            <p class="field-error" id="send-to-error" role="alert">
              Not sent: {failed.message}.{' '}
              <Link to={`/conversations/${encodeURIComponent(failed.conversation)}`}>Its conversation</Link> records it.
            </p>
          )}
        </div>
        <div>
          <label for="send-content">Message</label>
          <textarea
            id="send-content"
            rows={4}
            required
            value={content}
            onInput={(e) => setContent((e.target as HTMLTextAreaElement).value)}
            {...(contentError !== undefined && { 'aria-describedby': 'send-content-error', 'aria-invalid': true })}
          />
          <FieldError error={contentError} id="send-content-error" />
        </div>
        {kind === 'cfp' && (
          <div>
            <label for="send-reply-by">Proposals due within (seconds)</label>
            <input
              id="send-reply-by"
              type="number"
              min={1}
              max={86400}
              step={1}
              value={replyBy}
              onInput={(e) => setReplyBy((e.target as HTMLInputElement).value)}
              {...(replyByError !== undefined && { 'aria-describedby': 'send-reply-by-error', 'aria-invalid': true })}
            />
            <FieldError error={replyByError} id="send-reply-by-error" />
          </div>
        )}
        <div class="row">
          <button type="submit" disabled={busy || to.trim() === '' || content.trim() === ''}>
            {busy ? 'Sending…' : kind === 'request' ? 'Send' : 'Call for proposals'}
          </button>
          <span class="muted small">
            Sent as you; the {target === 'receiver' ? 'agent' : 'agents'} answer in the conversation.
          </span>
        </div>
        <FieldError error={otherError} id="send-error" />
      </form>
    </section>
  );
}
