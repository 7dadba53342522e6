/**
 * A durable run's steps as the server committed them (GET /api/v1/runs/ID, docs/runs.md): each
 * model turn's reply with its tokens and finish reason, each tool call with its labelled arguments
 * and result, calls that were interrupted, where the run resumed, and the calls waiting for a
 * person with Approve and Deny (POST /api/v1/runs/ID/approve|deny).
 */
import { Fragment } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api';
import { ErrorBox } from '../components/feedback';
import { when } from '../format';
import { can } from '../session';
import { ToolResult } from './agents/tool-result';
import { entriesOf, type Approval, type CallView, type DurableRun, type ModelStep, type Sent } from './run-entries';

export type { DurableRun };

const json = (v: unknown): string => JSON.stringify(v, null, 2);
const ms = (n: number) => (n < 1 ? 'under 1 ms' : `${Math.round(n)} ms`);

/** The step a timeline span leads to; `n` changes on every choice, so choosing the same span again scrolls again. */
export interface Highlight {
  key: string;
  n: number;
}

/** The DOM id of an entry's list item. */
export const stepDomId = (key: string): string => `step-${key.replace(/[^A-Za-z0-9_-]/g, '_')}`;

/** The steps of a run, in order. `running`: a call without an end is still running rather than cut off. */
export function RunSteps({ run, highlight }: { run: DurableRun; highlight?: Highlight | undefined }) {
  const { entries, unlocated } = entriesOf(run);
  const running = run.status === 'running';
  const callCount = entries.filter((e) => e.kind === 'call').length;
  const lastModel = entries.findLastIndex((e) => e.kind === 'model');
  const answer = run.response?.content;
  useEffect(() => {
    if (highlight === undefined) return;
    const el = document.getElementById(stepDomId(highlight.key));
    el?.scrollIntoView({ block: 'center' });
    el?.focus({ preventScroll: true });
  }, [highlight]);
  const item = (key: string, cls: string, testid?: string) => ({
    id: stepDomId(key),
    tabIndex: -1,
    class: `run-step${cls}${highlight?.key === key ? ' highlighted' : ''}`,
    'data-highlighted': highlight?.key === key ? 'true' : undefined,
    'data-testid': testid,
  });
  return (
    <section aria-labelledby="steps-title" data-testid="run-steps">
      <h2 id="steps-title">Steps, as recorded</h2>
      {unlocated > 0 && (
        <p class="notice" data-testid="resume-unlocated">
          Resumed {unlocated === 1 ? 'once' : `${unlocated} times`} after an interruption between two steps: it went on
          from its last recorded step (a finished call is not run again; the model is asked again only for a reply that
          was not recorded). The steps do not record where.
        </p>
      )}
      {entries.length === 0 ? (
        <p class="muted">No steps recorded yet.</p>
      ) : (
        <ol class="run-steps">
          {entries.map((e, i) => {
            if (e.kind === 'context')
              return (
                <li key={i} {...item(e.key, '')}>
                  <details>
                    <summary>Memory context given to the first prompt</summary>
                    <pre class="source">{e.text}</pre>
                  </details>
                </li>
              );
            if (e.kind === 'resumed')
              return (
                <li key={i} {...item(e.key, ' resume-gap', 'resume-gap')}>
                  {e.why}
                </li>
              );
            if (e.kind === 'model')
              return (
                <li key={i} {...item(e.key, ' model-turn', 'model-turn')}>
                  <ModelTurn
                    step={e.step}
                    sent={e.sent}
                    isAnswer={i === lastModel && answer === e.step.reply.content}
                  />
                </li>
              );
            return (
              <li key={i} {...item(e.key, '')}>
                <ToolCallStep call={e.call} running={running} open={callCount <= 6 || highlight?.key === e.key} />
              </li>
            );
          })}
        </ol>
      )}
    </section>
  );
}

/** A call's arguments, one labelled line each. */
function Arguments({ args, testid }: { args: Record<string, unknown> | undefined; testid: string }) {
  if (args === undefined) return <p data-testid={testid}>—</p>;
  const entries = Object.entries(args);
  if (entries.length === 0)
    return (
      <p class="muted" data-testid={testid}>
        no arguments
      </p>
    );
  return (
    <dl class="fields" data-testid={testid}>
      {entries.map(([k, v]) => (
        <Fragment key={k}>
          <dt>{k}</dt>
          <dd>
            <code class="argument">{typeof v === 'string' ? v : json(v)}</code>
          </dd>
        </Fragment>
      ))}
    </dl>
  );
}

/**
 * One model turn: what it was sent (reconstructed: the server records replies, not prompts) and
 * what it answered. `isAnswer`: the reply is the run's answer, which the page shows under its own heading.
 */
function ModelTurn({ step, sent, isAnswer }: { step: ModelStep; sent: Sent; isAnswer: boolean }) {
  const r = step.reply;
  return (
    <>
      <h3>Model turn {step.turn}</h3>
      <h4>Sent</h4>
      <p class="small muted" data-testid="turn-sent-note">
        Reconstructed from{' '}
        {sent.first
          ? `the run's request${sent.memory ? ' and its memory context (above)' : ''}: the agent's system prompt and user prompt template, and any history the request carried, were applied by the server and are not recorded.`
          : `the results of turn ${step.turn - 1}'s calls, which the model was sent after everything before (its own reply included).`}
      </p>
      <ul class="sent-messages" data-testid="turn-sent">
        {sent.messages.map((m, i) =>
          m.role === 'user' ? (
            <li key={i}>
              <strong>user</strong>
              <pre class="source">{m.content}</pre>
            </li>
          ) : (
            <li key={i}>
              <strong>tool result</strong>{' '}
              <span class="small muted">
                {m.name} ({m.call_id}){m.is_error && ', an error'}
              </span>
              <pre class="source">{m.content}</pre>
            </li>
          ),
        )}
        {sent.unrecorded.length > 0 && (
          <li class="small muted">
            and the results of {sent.unrecorded.join(', ')}, which the caller gave and the steps do not hold
          </li>
        )}
      </ul>
      <h4>Received</h4>
      <dl class="fields" data-testid="turn-received">
        <dt>Model</dt>
        <dd>
          {r.model} ({r.provider}), {ms(r.latency_ms)}
        </dd>
        <dt>Tokens</dt>
        <dd data-testid="turn-tokens">
          {r.usage.input_tokens} in · {r.usage.output_tokens} out · {r.usage.total_tokens} in all
        </dd>
        <dt>Finish reason</dt>
        <dd data-testid="turn-finish">{r.finish_reason}</dd>
        <dt>Content</dt>
        <dd>
          {isAnswer ? (
            <span class="muted small">the run's answer (below)</span>
          ) : r.content === '' ? (
            <span class="muted small">none</span>
          ) : (
            <pre class="source" data-testid="turn-content">
              {r.content}
            </pre>
          )}
        </dd>
      </dl>
      {r.tool_calls.map((c) => (
        <div key={c.id} data-testid="turn-tool-call">
          <h4>
            Asked to call {c.name} <span class="small muted">({c.id})</span>
          </h4>
          <Arguments args={c.arguments} testid="turn-call-arguments" />
        </div>
      ))}
    </>
  );
}

function ToolCallStep({ call, running, open }: { call: CallView; running: boolean; open: boolean }) {
  const end = call.end;
  const a = call.approval;
  const state = end
    ? end.interrupted
      ? 'interrupted: outcome unknown, not run again'
      : end.is_error
        ? `failed in ${ms(end.duration_ms)}`
        : `result in ${ms(end.duration_ms)}`
    : a && a.decision === null
      ? 'waiting for approval'
      : call.starts > 0
        ? running
          ? 'running'
          : 'started, no result recorded'
        : 'not run';
  const failed = end !== undefined && end.is_error;
  return (
    <details
      class={`tool-call${failed ? ' failed' : ''}${end?.interrupted ? ' interrupted' : ''}`}
      data-testid="step-tool-call"
      open={open || end?.interrupted === true || (a !== undefined && a.decision === null)}
    >
      <summary>
        <strong>Tool call {call.name}</strong> <span class="small muted">{state}</span>
        {end?.interrupted && <span class="badge run-interrupted">interrupted</span>}
      </summary>
      <dl class="fields">
        <dt>Turn, call</dt>
        <dd>
          {call.turn}, <code>{call.id}</code>
        </dd>
        {a && (
          <>
            <dt>Approval</dt>
            <dd data-testid="step-approval">
              asked {when(a.requested_at)}
              {a.decision !== null && (
                <>
                  ; {a.decision} by {a.decided_by}
                  {a.decided_at !== null && <> {when(a.decided_at)}</>}
                  {a.reason !== null && <>: “{a.reason}”</>}
                </>
              )}
            </dd>
          </>
        )}
      </dl>
      <h4>Arguments</h4>
      <Arguments args={call.arguments} testid="step-arguments" />
      {end && (
        <>
          <h4>{end.is_error ? 'Error' : 'Result'}</h4>
          <ToolResult text={end.result} />
        </>
      )}
    </details>
  );
}

/** The calls a run waits on, each with Approve and Deny (a denial asks for the reason the model is given). */
export function PendingApprovals({ run, onDecided }: { run: DurableRun; onDecided: () => void }) {
  const pending = run.status === 'awaiting_approval' ? run.approvals.filter((a) => a.decision === null) : [];
  if (pending.length === 0) return null;
  const allowed = can('agents:invoke');
  return (
    <section aria-labelledby="approvals-title" class="approvals" data-testid="pending-approvals">
      <h2 id="approvals-title">Waiting for approval</h2>
      {!allowed && <p class="muted">Your key lacks the permission agents:invoke needed to approve or deny a call.</p>}
      <ul>
        {pending.map((a) => (
          <PendingApproval
            key={`${a.turn}:${a.call_id}`}
            runId={run.id}
            a={a}
            allowed={allowed}
            onDecided={onDecided}
          />
        ))}
      </ul>
    </section>
  );
}

function PendingApproval({
  runId,
  a,
  allowed,
  onDecided,
}: {
  runId: string;
  a: Approval;
  allowed: boolean;
  onDecided: () => void;
}) {
  const [denying, setDenying] = useState(false);
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const reasonRef = useRef<HTMLTextAreaElement>(null);
  const denyRef = useRef<HTMLButtonElement>(null);
  const base = `approval-${a.turn}-${a.call_id.replace(/[^A-Za-z0-9_-]/g, '_')}`;
  useEffect(() => {
    if (denying) reasonRef.current?.focus();
  }, [denying]);
  const decide = async (verb: 'approve' | 'deny') => {
    setBusy(true);
    setError(undefined);
    try {
      await api('POST', `/api/v1/runs/${encodeURIComponent(runId)}/${verb}`, {
        json: { call_id: a.call_id, ...(verb === 'deny' && reason.trim() !== '' && { reason: reason.trim() }) },
      });
      onDecided();
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  };
  return (
    <li class="approval" data-testid="pending-approval">
      <h3 id={`${base}-title`}>
        {a.tool}{' '}
        <span class="small muted">
          (turn {a.turn}, call {a.call_id})
        </span>
      </h3>
      <p class="small muted">Asked {when(a.requested_at)}</p>
      <h4 id={`${base}-args`}>Arguments</h4>
      <div aria-labelledby={`${base}-args`} role="group">
        <Arguments args={a.arguments} testid="approval-arguments" />
      </div>
      {allowed && !denying && (
        <p class="row">
          <button type="button" disabled={busy} onClick={() => void decide('approve')}>
            Approve
          </button>
          <button type="button" class="danger" ref={denyRef} disabled={busy} onClick={() => setDenying(true)}>
            Deny…
          </button>
        </p>
      )}
      {allowed && denying && (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void decide('deny');
          }}
        >
          <label for={`${base}-reason`}>Why deny it? The model is told this reason.</label>
          <textarea
            id={`${base}-reason`}
            ref={reasonRef}
            rows={3}
            required
            maxLength={2000}
            value={reason}
            onInput={(e) => setReason((e.target as HTMLTextAreaElement).value)}
          />
          <p class="row">
            <button type="submit" class="danger" disabled={busy || reason.trim() === ''}>
              Deny the call
            </button>
            <button
              type="button"
              class="secondary"
              disabled={busy}
              onClick={() => {
                setDenying(false);
                setTimeout(() => denyRef.current?.focus());
              }}
            >
              Cancel
            </button>
          </p>
        </form>
      )}
      <ErrorBox error={error} />
    </li>
  );
}
