/**
 * Replaying, discarding or purging many dead letters at once (POST /api/v1/dead-letters/replay,
 * /discard, /purge): a filter by receiver, sender, reason and time, a count first (a dry run),
 * then a confirmation that names that count. The server takes only the dead letters the caller
 * may read, as for one replay.
 */
import { useLayoutEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError } from '../api';
import { FieldError } from '../components/issues';

interface BulkResult {
  dry_run: boolean;
  matched: number;
  /** Replay's. */
  replayed?: { id: number; message_id: string; receiver: string; conversation_id: string }[];
  failed?: { id: number; error: string }[];
  /** Discard's and purge's. */
  discarded?: number[];
  conversations?: number;
}

type Action = 'replay' | 'discard' | 'purge';
const ACTIONS: readonly Action[] = ['replay', 'discard', 'purge'];

const ACTION_LABELS: Record<Action, string> = {
  replay: 'Replay: deliver them again',
  discard: 'Discard: delete them (their conversations stay)',
  purge: 'Purge: delete them with their finished conversations',
};

/** What the confirmation says each action does, after "Replay 2 dead letters to brittle?". */
const CONSEQUENCE: Record<Action, string> = {
  replay: 'Each is queued again with fresh attempts, and a conversation that failed because of it is reopened.',
  discard: 'They are deleted and cannot be replayed; their conversations and messages stay.',
  purge:
    'They are deleted and cannot be replayed, and so is each conversation they belong to, with its messages, once nothing else of it is pending.',
};

const capital = (a: Action): string => a[0]!.toUpperCase() + a.slice(1);

const FIELDS = ['receiver', 'sender', 'reason', 'since', 'until'] as const;
type Field = (typeof FIELDS)[number];

const LABELS: Record<Field, string> = {
  receiver: 'To (exact agent name)',
  sender: 'From (exact name)',
  reason: 'Reason (text in the error)',
  since: 'Failed after',
  until: 'Failed before',
};

const plural = (n: number): string => `${n} dead letter${n === 1 ? '' : 's'}`;

/** What the filter says, in words ("to brittle, from planner"). */
function described(v: Record<Field, string>): string {
  const parts: string[] = [];
  if (v.receiver) parts.push(`to ${v.receiver}`);
  if (v.sender) parts.push(`from ${v.sender}`);
  if (v.reason) parts.push(`whose error contains "${v.reason}"`);
  if (v.since) parts.push(`failed after ${v.since.replace('T', ' ')}`);
  if (v.until) parts.push(`failed before ${v.until.replace('T', ' ')}`);
  return parts.join(', ');
}

export function BulkActions({ initialReceiver, onDone }: { initialReceiver: string; onDone: () => void }) {
  const [values, setValues] = useState<Record<Field, string>>({
    receiver: initialReceiver,
    sender: '',
    reason: '',
    since: '',
    until: '',
  });
  const [action, setAction] = useState<Action>('replay');
  const [count, setCount] = useState<number>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const [result, setResult] = useState<BulkResult>();
  const confirmRef = useRef<HTMLButtonElement>(null);
  const resultRef = useRef<HTMLDivElement>(null);
  useLayoutEffect(() => {
    if (count !== undefined && count > 0) confirmRef.current?.focus();
  }, [count]);
  useLayoutEffect(() => {
    if (result) resultRef.current?.focus();
  }, [result]);

  const body = (dryRun: boolean) => {
    const b: Record<string, unknown> = { dry_run: dryRun };
    for (const f of FIELDS) {
      const v = values[f].trim();
      if (!v) continue;
      // The time inputs hold local times; the server takes instants.
      b[f] = f === 'since' || f === 'until' ? new Date(v).toISOString() : v;
    }
    return b;
  };
  const empty = FIELDS.every((f) => values[f].trim() === '');
  const run = async (dryRun: boolean) => {
    setBusy(true);
    setError(undefined);
    try {
      const r = await api<BulkResult>('POST', `/api/v1/dead-letters/${action}`, { json: body(dryRun) });
      if (dryRun) {
        setCount(r.matched);
        setResult(undefined);
      } else {
        setCount(undefined);
        setResult(r);
        onDone();
      }
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const errorField = error instanceof ApiError ? error.field : undefined;
  const fieldOf = (f: Field) => (errorField === f ? error : undefined);
  const generalError = error !== undefined && !FIELDS.includes(errorField as Field) ? error : undefined;

  return (
    <details class="bulk" data-testid="bulk-replay">
      <summary>Replay, discard or purge many</summary>
      <form
        aria-label="Act on many dead letters"
        onSubmit={(e) => {
          e.preventDefault();
          void run(true);
        }}
      >
        <fieldset class="bulk-action">
          <legend>What to do</legend>
          {ACTIONS.map((a) => (
            <label key={a}>
              <input
                type="radio"
                name="bulk-action"
                value={a}
                checked={action === a}
                onChange={() => {
                  setAction(a);
                  setCount(undefined);
                }}
              />{' '}
              {ACTION_LABELS[a]}
            </label>
          ))}
        </fieldset>
        <div class="bulk-fields">
          {FIELDS.map((f) => (
            <div key={f}>
              <label for={`bulk-${f}`}>{LABELS[f]}</label>
              <input
                id={`bulk-${f}`}
                name={f}
                type={f === 'since' || f === 'until' ? 'datetime-local' : 'text'}
                value={values[f]}
                onInput={(e) => {
                  setValues({ ...values, [f]: (e.target as HTMLInputElement).value });
                  setCount(undefined);
                }}
                {...(fieldOf(f) !== undefined && { 'aria-describedby': `bulk-${f}-error`, 'aria-invalid': true })}
              />
              <FieldError error={fieldOf(f)} id={`bulk-${f}-error`} />
            </div>
          ))}
        </div>
        {count === undefined || count === 0 ? (
          <>
            <button type="submit" disabled={busy || empty}>
              {busy ? 'Counting…' : 'Count them…'}
            </button>
            {empty && <span class="muted small"> Give at least one filter.</span>}
            {count === 0 && (
              <p role="status" data-testid="bulk-none">
                No dead letters match.
              </p>
            )}
          </>
        ) : (
          <div class="confirm" role="group" aria-labelledby="bulk-q">
            <p id="bulk-q" data-testid="bulk-question">
              {capital(action)} {plural(count)} {described(values)}? {CONSEQUENCE[action]}
            </p>
            <button
              type="button"
              ref={confirmRef}
              disabled={busy}
              class={action === 'replay' ? undefined : 'danger'}
              onClick={() => void run(false)}
            >
              {busy ? 'Working…' : `Yes, ${action} ${plural(count)}`}
            </button>{' '}
            <button type="button" class="secondary" disabled={busy} onClick={() => setCount(undefined)}>
              Cancel
            </button>
          </div>
        )}
        <FieldError error={generalError} id="bulk-error" />
      </form>
      {result && (
        <div class="notice ok" role="status" tabIndex={-1} ref={resultRef} data-testid="bulk-result">
          {result.replayed !== undefined ? (
            <p>
              Replayed {plural(result.replayed.length)}
              {(result.failed?.length ?? 0) > 0 && `; ${result.failed!.length} could not be`}.
            </p>
          ) : (
            <p>
              Deleted {plural(result.discarded?.length ?? 0)}
              {(result.conversations ?? 0) > 0 &&
                ` and ${result.conversations} conversation${result.conversations === 1 ? '' : 's'}`}
              {result.matched > (result.discarded?.length ?? 0) &&
                `; ${result.matched - (result.discarded?.length ?? 0)} were replayed or deleted meanwhile`}
              .
            </p>
          )}
          {(result.failed?.length ?? 0) > 0 && (
            <ul>
              {result.failed!.map((f) => (
                <li key={f.id}>
                  #{f.id}: {f.error}
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
    </details>
  );
}
