/** An agent's versions (newest first) and its rollout, with promote and roll back for a principal that may change agents. */
import { useState } from 'preact/hooks';
import { api } from '../../api';
import { ErrorBox, Loading } from '../../components/feedback';
import { time } from '../../format';
import { useApi } from '../../hooks';
import { can } from '../../session';
import { agentPath, type RolloutStatus, type Versions } from './types';

export function AgentVersions({ name, onChanged }: { name: string; onChanged: () => void }) {
  const versions = useApi<Versions>(agentPath(name, '/versions'), { limit: 50 });
  const rollout = useApi<RolloutStatus>(agentPath(name, '/rollout'));
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<string>();
  const [error, setError] = useState<unknown>();
  const writer = can('agents:write');

  const act = async (what: 'promote' | 'rollback', to?: number) => {
    setBusy(true);
    setError(undefined);
    setResult(undefined);
    try {
      if (what === 'promote') {
        const r = await api<{ rollout: { candidate_version: number }; version: { version: number } }>(
          'POST',
          agentPath(name, '/promote'),
        );
        setResult(
          `Promoted: version ${r.rollout.candidate_version} is live (recorded as version ${r.version.version}).`,
        );
      } else {
        const r = await api<{
          restored: { version: number };
          version: { version: number };
          rollout?: { state: string };
        }>('POST', agentPath(name, '/rollback'), to === undefined ? {} : { json: { to } });
        setResult(
          r.rollout
            ? `Rolled back: the rollout ended (${r.rollout.state.replace('_', ' ')}); version ${r.restored.version} stays live.`
            : `Rolled back to version ${r.restored.version} (recorded as version ${r.version.version}).`,
        );
      }
      versions.reload();
      rollout.reload();
      onChanged();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  const ro = rollout.data;
  // A cluster node: a rollout another node runs is shown as that node reports it; promote and roll back work through this node.
  const there = ro?.elsewhere ?? undefined;
  const running = ro?.running === true || there != null;
  const r = there ? (there.status?.rollout ?? undefined) : ro?.rollout;
  return (
    <div>
      <h3 id="rollout-title">Rollout</h3>
      <ErrorBox error={rollout.error} />
      {ro && (
        <div class="card" aria-labelledby="rollout-title" data-testid="rollout">
          <p>
            Live version: <strong data-testid="live-version">{ro.live_version ?? 'none'}</strong>
          </p>
          {there && (
            <p data-testid="rollout-node">
              Runs on node <strong>{there.node}</strong>
              {there.status ? '' : ', which did not answer'}: its candidate, version {there.candidate_version}, answers
              here too.
            </p>
          )}
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
              {r.reason && <span class="muted"> · {r.reason}</span>}
            </p>
          ) : (
            <p class="muted">
              No rollout yet. Deploy a new version with the blue-green, canary or shadow strategy (Edit) to run it
              beside the live one.
            </p>
          )}
          {running && writer && (
            <div class="row">
              <button type="button" disabled={busy} onClick={() => void act('promote')}>
                Promote version {r?.candidate_version ?? there?.candidate_version}
              </button>
              <button type="button" class="danger" disabled={busy} onClick={() => void act('rollback')}>
                Roll back
              </button>
            </div>
          )}
          {running && !writer && (
            <p class="muted small">Promoting or rolling back needs the permission agents:write.</p>
          )}
        </div>
      )}
      {result && (
        <p class="notice" role="status" data-testid="rollout-result">
          {result}
        </p>
      )}
      <ErrorBox error={error} />

      <h3 id="versions-title">Versions</h3>
      <ErrorBox error={versions.error} />
      {!versions.data ? (
        !versions.error && <Loading what="versions" />
      ) : (
        <div class="table-wrap" tabIndex={0} role="region" aria-labelledby="versions-title">
          <table aria-labelledby="versions-title" data-testid="versions">
            <thead>
              <tr>
                <th scope="col">Version</th>
                <th scope="col">How</th>
                <th scope="col">By</th>
                <th scope="col">When</th>
                {writer && <th scope="col">Action</th>}
              </tr>
            </thead>
            <tbody>
              {versions.data.versions.map((v) => (
                <tr key={v.version}>
                  <td>
                    {v.version}
                    {v.semver && <span class="muted"> ({v.semver})</span>}
                    {v.version === versions.data!.current && (
                      <>
                        {' '}
                        <span class="badge promoted">live</span>
                      </>
                    )}
                  </td>
                  <td>
                    {v.how}
                    {v.restored_from !== null && <span class="muted"> of {v.restored_from}</span>}
                  </td>
                  <td>{v.deployed_by ?? '—'}</td>
                  <td>{time(v.deployed_at)}</td>
                  {writer && (
                    <td>
                      {v.version !== versions.data!.current && ro !== undefined && !running && v.origin === 'api' && (
                        <button
                          type="button"
                          class="secondary"
                          disabled={busy}
                          onClick={() => void act('rollback', v.version)}
                          aria-label={`Roll back to version ${v.version}`}
                        >
                          Roll back to this
                        </button>
                      )}
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}
