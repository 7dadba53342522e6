/**
 * An agent's rollout (followed live, rollout.tsx) and its versions, newest first: any version's
 * text can be viewed or compared with the live one, and a principal that may change agents rolls
 * back to one after confirming the diff that makes live.
 */
import { useState } from 'preact/hooks';
import { api } from '../../api';
import { ConfirmDialog } from '../../components/confirm';
import { ErrorBox, Loading } from '../../components/feedback';
import { time } from '../../format';
import { useApi } from '../../hooks';
import { can } from '../../session';
import { actionError, RolloutCard, useRolloutLive, useVersionSources, VersionDiff } from './rollout';
import { agentPath, type RolloutStatus, type Versions } from './types';

export function AgentVersions({ name, onChanged }: { name: string; onChanged: () => void }) {
  const versions = useApi<Versions>(agentPath(name, '/versions'), { limit: 50 });
  const rollout = useApi<RolloutStatus>(agentPath(name, '/rollout'));
  const ro = rollout.data;
  const running = ro?.running === true;
  const reload = () => {
    rollout.reload();
    versions.reload();
  };
  // A rollout event may change what is live: the agent's other views read it again too.
  const live = useRolloutLive(name, running, reload, onChanged);
  /** The version shown, and the one it is compared with (none: its text alone). */
  const [shown, setShown] = useState<{ version: number; base?: number | undefined }>();
  const [asking, setAsking] = useState<number>();
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<string>();
  const [error, setError] = useState<unknown>();
  const writer = can('agents:write');
  const current = versions.data?.current ?? null;

  const rollbackTo = async (to: number) => {
    setBusy(true);
    setError(undefined);
    setResult(undefined);
    try {
      const r = await api<{ restored: { version: number }; version: { version: number } }>(
        'POST',
        agentPath(name, '/rollback'),
        { json: { to } },
      );
      setResult(`Rolled back to version ${r.restored.version} (recorded as version ${r.version.version}).`);
    } catch (e) {
      setError(actionError(e, 'roll back'));
    } finally {
      setBusy(false);
      setAsking(undefined);
      reload();
      onChanged();
    }
  };

  return (
    <div>
      <ErrorBox error={rollout.error} />
      {ro ? (
        <RolloutCard
          name={name}
          status={ro}
          live={live}
          onChanged={() => {
            reload();
            onChanged();
          }}
        />
      ) : (
        !rollout.error && <Loading what="the rollout" />
      )}

      <h3 id="versions-title">Versions</h3>
      {result && (
        <p class="notice" role="status" data-testid="rollback-result">
          {result}
        </p>
      )}
      <ErrorBox error={error ?? versions.error} />
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
                <th scope="col">Text</th>
                {writer && <th scope="col">Action</th>}
              </tr>
            </thead>
            <tbody>
              {versions.data.versions.map((v) => (
                <tr key={v.version}>
                  <td>
                    {v.version}
                    {v.semver && <span class="muted"> ({v.semver})</span>}
                    {v.version === current && (
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
                  <td class="actions">
                    <button
                      type="button"
                      class="text-button"
                      onClick={() => setShown({ version: v.version })}
                      aria-label={`View version ${v.version}`}
                    >
                      View
                    </button>
                    {current !== null && v.version !== current && (
                      <>
                        {' · '}
                        <button
                          type="button"
                          class="text-button"
                          onClick={() => setShown({ version: v.version, base: current })}
                          aria-label={`Diff with live: version ${v.version}`}
                        >
                          Diff with live
                        </button>
                      </>
                    )}
                  </td>
                  {writer && (
                    <td>
                      {v.version !== current &&
                        current !== null &&
                        ro !== undefined &&
                        !running &&
                        v.origin === 'api' && (
                          <button
                            type="button"
                            class="secondary"
                            disabled={busy}
                            onClick={() => setAsking(v.version)}
                            aria-label={`Roll back to this: version ${v.version}`}
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
      {shown && versions.data && (
        <section class="card" aria-labelledby="version-shown-title" data-testid="version-shown">
          <div class="row">
            <h4 id="version-shown-title">
              {shown.base === undefined
                ? `Version ${shown.version}`
                : `Version ${shown.version} against version ${shown.base}${shown.base === current ? ' (live)' : ''}`}
            </h4>
            <span class="spacer" />
            <label for="compare-base" class="inline">
              Compare with
            </label>
            <select
              id="compare-base"
              value={shown.base === undefined ? '' : String(shown.base)}
              onChange={(e) => {
                const v = (e.target as HTMLSelectElement).value;
                setShown({ version: shown.version, base: v === '' ? undefined : Number(v) });
              }}
            >
              <option value="">nothing: show its text</option>
              {versions.data.versions
                .filter((v) => v.version !== shown.version)
                .map((v) => (
                  <option key={v.version} value={String(v.version)}>
                    version {v.version}
                    {v.version === current ? ' (live)' : ''}
                  </option>
                ))}
            </select>
            <button type="button" class="secondary" onClick={() => setShown(undefined)}>
              Close
            </button>
          </div>
          {shown.base === undefined ? (
            <VersionText name={name} version={shown.version} />
          ) : (
            <VersionDiff name={name} from={shown.base} to={shown.version} />
          )}
        </section>
      )}
      {asking !== undefined && current !== null && (
        <ConfirmDialog
          title={`Roll ${name} back to version ${asking}?`}
          confirmLabel={`Roll back to version ${asking}`}
          danger
          busy={busy}
          onConfirm={() => void rollbackTo(asking)}
          onCancel={() => setAsking(undefined)}
        >
          <p>
            Version {asking}'s text becomes live again (recorded as a new version), replacing version {current}. What
            changes:
          </p>
          <VersionDiff name={name} from={current} to={asking} />
        </ConfirmDialog>
      )}
    </div>
  );
}

function VersionText({ name, version }: { name: string; version: number }) {
  const { sources, error } = useVersionSources(name, [version]);
  if (error) return <ErrorBox error={error} />;
  if (!sources) return <Loading what={`version ${version}`} />;
  return (
    <pre class="source" tabIndex={0} aria-label={`The text of version ${version}`} data-testid="version-text">
      {sources[0]!.source}
    </pre>
  );
}
