/**
 * An agent's rollout as it happens: strategy, state, a canary's stage and weight with both
 * versions' figures, a shadow rollout's report, and what happened when (the agent's rollout
 * events). The view follows the server's event stream (rollout.*) and, while a rollout runs,
 * refreshes its figures every few seconds, so a promotion by the CLI or by the canary's judge
 * shows without a reload. Promote and roll back ask first, showing the diff they make live.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, get } from '../../api';
import { ConfirmDialog } from '../../components/confirm';
import { ErrorBox, Loading } from '../../components/feedback';
import { LiveStatus } from '../../components/live-status';
import { percent, time } from '../../format';
import { useLive } from '../../hooks';
import { can } from '../../session';
import { DiffView } from './code-view';
import {
  agentPath,
  type CanaryStatus,
  type NodeRollout,
  type Rollout,
  type RolloutStatus,
  type ShadowReport,
  type VersionSource,
  type WindowFigures,
} from './types';

export const ROLLOUT_EVENTS = ['rollout.started', 'rollout.stage_advanced', 'rollout.promoted', 'rollout.rolled_back'];
/** While a rollout runs its figures change with every request, which sends no event. */
const RUNNING_POLL_MS = 2000;
/** Without the event stream (no observe:read, or refused): how often the view is read again. */
const IDLE_POLL_MS = 10_000;

interface RolloutEvent {
  id: number;
  time: string;
  type: string;
  data: { old_state?: string | null; new_state?: string; reason?: string | null } | null;
}

/**
 * Follows `name`'s rollout events (and polls while `running`); `reload` is called on each poll and
 * event (at most once every half second), `onEvent` on events only. Returns the stream's state,
 * or undefined without observe:read.
 */
export function useRolloutLive(name: string, running: boolean, reload: () => void, onEvent?: () => void) {
  const observe = can('observe:read');
  const fn = useRef(reload);
  fn.current = reload;
  const evented = useRef(onEvent);
  evented.current = onEvent;
  const pending = useRef<ReturnType<typeof setTimeout>>();
  const live = useLive(
    observe
      ? {
          path: '/api/v1/events/stream',
          query: { agent: name, type: ROLLOUT_EVENTS.join(',') },
          onEvent: (e) => {
            if (!ROLLOUT_EVENTS.includes(e.event) || pending.current !== undefined) return;
            pending.current = setTimeout(() => {
              pending.current = undefined;
              fn.current();
              evented.current?.();
            }, 500);
          },
        }
      : undefined,
    [observe, name],
  );
  const streaming = observe && live?.state !== 'stopped';
  const every = running ? RUNNING_POLL_MS : streaming ? undefined : IDLE_POLL_MS;
  useEffect(() => {
    if (every === undefined) return;
    const t = setInterval(() => document.visibilityState === 'visible' && fn.current(), every);
    return () => clearInterval(t);
  }, [every]);
  useEffect(() => () => clearTimeout(pending.current), []);
  return observe ? live : undefined;
}

/** The text of a version (for the diffs the confirmations show). */
export function useVersionSources(
  name: string,
  versions: readonly number[],
): { sources?: VersionSource[]; error?: unknown } {
  const key = JSON.stringify([name, versions]);
  const [out, setOut] = useState<{ key?: string; sources?: VersionSource[]; error?: unknown }>({});
  useEffect(() => {
    const ac = new AbortController();
    Promise.all(versions.map((v) => get<VersionSource>(agentPath(name, `/versions/${v}`), undefined, ac.signal))).then(
      (sources) => setOut({ key, sources }),
      (error: unknown) => !ac.signal.aborted && setOut({ key, error }),
    );
    return () => ac.abort();
  }, [key]);
  // Only what answers these versions: effects run after the browser paints, so texts loaded for
  // other versions would otherwise be drawn for a frame under these versions' heading.
  return out.key === key ? out : {};
}

/** A diff between two versions, loaded: `from`'s text against `to`'s. */
export function VersionDiff({ name, from, to }: { name: string; from: number; to: number }) {
  const { sources, error } = useVersionSources(name, [from, to]);
  if (error) return <ErrorBox error={error} />;
  if (!sources) return <Loading what={`versions ${from} and ${to}`} />;
  return (
    <DiffView
      original={sources[0]!.source}
      modified={sources[1]!.source}
      format={sources[1]!.format}
      label={`Changes from version ${from} to version ${to}`}
    />
  );
}

/** The server's refusal of a promote or rollback, in the console's words when the rollout changed meanwhile. */
export function actionError(e: unknown, what: string): unknown {
  if (e instanceof ApiError && e.code === 'no_rollout')
    return new Error(
      `Nothing to ${what}: no rollout is running any more (it ended meanwhile; its outcome is shown above).`,
    );
  return e;
}

export function RolloutCard({
  name,
  status,
  live,
  onChanged,
}: {
  name: string;
  status: RolloutStatus;
  live: ReturnType<typeof useRolloutLive>;
  onChanged: () => void;
}) {
  const [asking, setAsking] = useState<'promote' | 'rollback'>();
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<string>();
  const [error, setError] = useState<unknown>();
  const writer = can('agents:write');
  // On a cluster every node reads the same rollout rows: what this node answers is the cluster's rollout.
  const node: NodeRollout = status;
  const running = status.running;
  const r = node.rollout ?? undefined;
  const candidate = r?.candidate_version;
  const stable = r?.stable_version ?? status.live_version ?? undefined;

  const act = async (what: 'promote' | 'rollback') => {
    setBusy(true);
    setError(undefined);
    setResult(undefined);
    try {
      if (what === 'promote') {
        const out = await api<{ rollout: { candidate_version: number }; version: { version: number } }>(
          'POST',
          agentPath(name, '/promote'),
        );
        setResult(
          `Promoted: version ${out.rollout.candidate_version} is live (recorded as version ${out.version.version}).`,
        );
      } else {
        const out = await api<{ restored: { version: number }; rollout?: { state: string } }>(
          'POST',
          agentPath(name, '/rollback'),
          { json: {} },
        );
        setResult(
          out.rollout
            ? `Rolled back: the rollout ended (${out.rollout.state.replace('_', ' ')}); version ${out.restored.version} stays live.`
            : `Rolled back to version ${out.restored.version}.`,
        );
      }
    } catch (e) {
      setError(actionError(e, what === 'promote' ? 'promote' : 'roll back'));
    } finally {
      setBusy(false);
      setAsking(undefined);
      onChanged();
    }
  };

  return (
    <div class="card" aria-labelledby="rollout-title" data-testid="rollout">
      <div class="row">
        <h3 id="rollout-title">Rollout</h3>
        <span class="spacer" />
        {live && <LiveStatus state={live} label="Rollout events" />}
      </div>
      <p>
        Live version: <strong data-testid="live-version">{status.live_version ?? 'none'}</strong>
      </p>
      {r ? (
        <p>
          {running ? 'Running' : 'Last'} {r.strategy} rollout #{r.id}: version {r.candidate_version} beside version{' '}
          {r.stable_version} —{' '}
          <span class={`badge ${r.state}`} data-testid="rollout-state">
            {r.state.replace('_', ' ')}
          </span>
          {r.state === 'running' && (
            <>
              {' '}
              (reachable as{' '}
              <code>
                {name}@{r.candidate_version}
              </code>
              )
            </>
          )}
          {r.ended_at && (
            <span class="muted">
              {' '}
              · ended {time(r.ended_at)}
              {r.ended_by ? ` by ${r.ended_by}` : ''}
            </span>
          )}
          {r.reason && <span class="muted"> · {r.reason}</span>}
        </p>
      ) : (
        <p class="muted">
          No rollout yet. Deploy a new version with the blue-green, canary or shadow strategy (Edit) to run it beside
          the live one.
        </p>
      )}
      {r?.strategy === 'canary' && <CanaryView rollout={r} canary={node.canary} running={r.state === 'running'} />}
      {node.shadow && <ShadowView report={node.shadow} />}
      {running && writer && candidate !== undefined && (
        <div class="row">
          <button type="button" disabled={busy} onClick={() => setAsking('promote')}>
            Promote version {candidate}
          </button>
          <button type="button" class="danger" disabled={busy} onClick={() => setAsking('rollback')}>
            Roll back
          </button>
        </div>
      )}
      {running && !writer && <p class="muted small">Promoting or rolling back needs the permission agents:write.</p>}
      {result && (
        <p class="notice" role="status" data-testid="rollout-result">
          {result}
        </p>
      )}
      <ErrorBox error={error} />
      {asking && candidate !== undefined && stable !== undefined && (
        <ConfirmDialog
          title={
            asking === 'promote'
              ? `Promote version ${candidate} of ${name}?`
              : `Roll back the rollout of version ${candidate}?`
          }
          confirmLabel={asking === 'promote' ? `Promote version ${candidate}` : 'Roll back the rollout'}
          danger={asking === 'rollback'}
          busy={busy}
          onConfirm={() => void act(asking)}
          onCancel={() => setAsking(undefined)}
        >
          <p>
            {asking === 'promote'
              ? `Version ${candidate} becomes the live version for every conversation; version ${stable} stops answering. What changes:`
              : `Version ${candidate} stops answering; version ${stable} stays live for every conversation. The candidate's changes, which are dropped:`}
          </p>
          <VersionDiff name={name} from={stable} to={candidate} />
        </ConfirmDialog>
      )}
      <RolloutHistory name={name} changed={`${r?.id}:${r?.state}:${r?.stage}`} />
    </div>
  );
}

function Figures({ f }: { f: WindowFigures }) {
  return (
    <>
      <td>{f.requests}</td>
      <td>{f.errors}</td>
      <td>{percent(f.error_rate)}</td>
      <td>{f.p99_ms === null ? '—' : `${Math.round(f.p99_ms)} ms`}</td>
    </>
  );
}

function CanaryView({ rollout, canary, running }: { rollout: Rollout; canary: CanaryStatus | null; running: boolean }) {
  const stages = rollout.plan?.stages ?? [];
  const at = canary?.stage ?? rollout.stage;
  return (
    <div data-testid="canary">
      <ol class="stages" aria-label="Canary stages">
        {stages.map((s, i) => {
          const state =
            rollout.state === 'promoted' || i < at
              ? 'done'
              : i === at && running
                ? 'current'
                : rollout.state === 'rolled_back' && i === at
                  ? 'failed'
                  : 'next';
          return (
            <li key={i} class={`stage ${state}`} {...(state === 'current' && { 'aria-current': 'step' })}>
              {s} %<span class="visually-hidden"> ({state})</span>
            </li>
          );
        })}
      </ol>
      {running && canary ? (
        <>
          <p data-testid="canary-stage">
            Stage {canary.stage + 1} of {stages.length}: the candidate gets <strong>{canary.weight} %</strong> of new
            conversations
            {canary.waiting_for ? <> · waiting for {canary.waiting_for}</> : null} · this stage holds until{' '}
            {time(canary.hold_ends_at)}
          </p>
          <div class="table-wrap" tabIndex={0} role="region" aria-labelledby="canary-figures">
            <table data-testid="canary-figures">
              <caption id="canary-figures">This stage's figures, stable against candidate</caption>
              <thead>
                <tr>
                  <th scope="col">Version</th>
                  <th scope="col">Requests</th>
                  <th scope="col">Errors</th>
                  <th scope="col">Error rate</th>
                  <th scope="col">p99</th>
                </tr>
              </thead>
              <tbody>
                <tr>
                  <th scope="row">stable {rollout.stable_version}</th>
                  <Figures f={canary.stable} />
                </tr>
                <tr>
                  <th scope="row">candidate {rollout.candidate_version}</th>
                  <Figures f={canary.candidate} />
                </tr>
              </tbody>
            </table>
          </div>
          {rollout.plan && (
            <p class="muted small">
              Judged after {rollout.plan.min_requests} candidate requests and {Math.round(rollout.plan.hold_ms / 1000)}{' '}
              s per stage; rolls back above +{percent(rollout.plan.max_error_rate_increase)} errors or{' '}
              {rollout.plan.max_latency_ratio}× the stable p99.
            </p>
          )}
        </>
      ) : running ? (
        <p class="muted">The canary's checks are running: the candidate gets no traffic until they pass.</p>
      ) : null}
    </div>
  );
}

function ShadowView({ report }: { report: ShadowReport }) {
  const ms = (v: number | null) => (v === null ? '—' : `${Math.round(v)} ms`);
  return (
    <div data-testid="shadow">
      <p>
        Shadow report: {report.compared} live requests compared ({report.comparison}), {report.agreements} agreed (
        {percent(report.agreement_rate)})
        {report.mean_similarity !== null && <>, mean similarity {report.mean_similarity.toFixed(2)}</>};{' '}
        {report.candidate_errors} candidate errors, {report.skipped} skipped.
      </p>
      <div class="table-wrap" tabIndex={0} role="region" aria-labelledby="shadow-figures">
        <table>
          <caption id="shadow-figures">Latency and tokens, stable against candidate</caption>
          <thead>
            <tr>
              <th scope="col">Version</th>
              <th scope="col">p50</th>
              <th scope="col">p99</th>
              <th scope="col">Tokens</th>
            </tr>
          </thead>
          <tbody>
            {(['stable', 'candidate'] as const).map((k) => (
              <tr key={k}>
                <th scope="row">{k}</th>
                <td>{ms(report[k].p50_ms)}</td>
                <td>{ms(report[k].p99_ms)}</td>
                <td>{report[k].tokens}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {report.disagreements.length > 0 && (
        <details>
          <summary>Disagreements ({report.disagreements.length})</summary>
          <ul class="disagreements">
            {report.disagreements.map((d, i) => (
              <li key={i}>
                <p>
                  <strong>Request:</strong> {d.request}
                </p>
                <p>
                  <strong>Stable:</strong> {d.stable_answer}
                </p>
                <p>
                  <strong>Candidate:</strong> {d.candidate_error ? `error: ${d.candidate_error}` : d.candidate_answer}
                </p>
              </li>
            ))}
          </ul>
        </details>
      )}
    </div>
  );
}

const EVENT_WORDS: Record<string, string> = {
  'rollout.started': 'Started',
  'rollout.stage_advanced': 'Next stage',
  'rollout.promoted': 'Promoted',
  'rollout.rolled_back': 'Rolled back',
};

/** What happened to the agent's rollouts, newest first (needs observe:read: the event store). */
function RolloutHistory({ name, changed }: { name: string; changed: string }) {
  const [events, setEvents] = useState<RolloutEvent[]>();
  const [error, setError] = useState<unknown>();
  const observe = can('observe:read');
  useEffect(() => {
    if (!observe) return;
    const ac = new AbortController();
    get<{ events: RolloutEvent[] }>(
      '/api/v1/events',
      { agent: name, type: ROLLOUT_EVENTS.join(','), limit: 50 },
      ac.signal,
    ).then(
      (r) => {
        setEvents(r.events);
        setError(undefined);
      },
      (e: unknown) => !ac.signal.aborted && setError(e),
    );
    return () => ac.abort();
  }, [name, changed, observe]);
  if (!observe) return null;
  return (
    <>
      <h4 id="rollout-history">What happened</h4>
      {error ? (
        <ErrorBox error={error} />
      ) : !events ? (
        <Loading what="rollout events" />
      ) : events.length === 0 ? (
        <p class="muted">No rollout events recorded.</p>
      ) : (
        <ol class="timeline" aria-labelledby="rollout-history" data-testid="rollout-history">
          {events.map((e) => (
            <li key={e.id}>
              <time dateTime={e.time}>{time(e.time)}</time> <strong>{EVENT_WORDS[e.type] ?? e.type}</strong>
              {e.data?.new_state && <>: {e.data.new_state}</>}
              {e.data?.reason && <span class="muted"> ({e.data.reason})</span>}
            </li>
          ))}
        </ol>
      )}
    </>
  );
}
