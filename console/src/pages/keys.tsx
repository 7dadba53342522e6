/**
 * API keys (/ui/keys, keys:manage): every key with its role, scope, limits and state; one key's
 * use against its limits; create (the secret is shown once, here, and never again), rotate (a
 * new secret, shown once; the old one stops at once) and revoke, each asked first. A refused
 * field's message is shown under that field.
 */
import { Fragment } from 'preact';
import { useState } from 'preact/hooks';
import { api } from '../api';
import { ConfirmDialog } from '../components/confirm';
import { ErrorBox, Loading } from '../components/feedback';
import { fieldErrors } from '../form-errors';
import { time } from '../format';
import { useApi } from '../hooks';
import type { PageProps } from '../pages';
import { setQuery } from '../router';

const ROLES = ['admin', 'operator', 'developer', 'invoker', 'viewer'] as const;
const ROLE_WORDS: Record<(typeof ROLES)[number], string> = {
  admin: 'admin: everything, including keys',
  operator: 'operator: runs the server; no keys',
  developer: 'developer: deploys agents, writes memory',
  invoker: 'invoker: reads, runs and messages agents',
  viewer: 'viewer: reads; changes nothing',
};

interface ApiKey {
  id: string;
  name: string;
  role: string;
  scope: { agents?: string[]; capabilities?: string[]; memory?: string[]; tools?: string[] };
  limits: Record<string, number>;
  created_at: string;
  created_by: string | null;
  expires_at: string | null;
  revoked_at: string | null;
  rotated_at: string | null;
  last_used_at: string | null;
  state: 'active' | 'expired' | 'revoked';
}

interface Usage {
  requests: { used: number; limit?: number };
  executions: { running: number; limit?: number };
  tokens: { used: number; limit?: number; period_ms: number; resets_at: string };
}

const LIMITS = [
  { id: 'requests_per_minute', label: 'Requests per minute' },
  { id: 'concurrent_executions', label: 'Concurrent executions' },
  { id: 'tokens_per_minute', label: 'Tokens per minute' },
] as const;

const list = (s: string): string[] | undefined => {
  const xs = s
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '');
  return xs.length > 0 ? xs : undefined;
};

function scopeText(s: ApiKey['scope']): string {
  const parts = (['agents', 'capabilities', 'memory', 'tools'] as const)
    .filter((k) => s[k] !== undefined)
    .map((k) => `${k}: ${s[k]!.join(', ')}`);
  return parts.length > 0 ? parts.join('; ') : 'everything its role allows';
}

export default function Keys({ query }: PageProps) {
  const all = query.get('all') === '1';
  const keys = useApi<{ keys: ApiKey[] }>('/api/v1/keys', { all: all ? 'true' : undefined });
  const [secret, setSecret] = useState<{ name: string; secret: string; why: 'created' | 'rotated' }>();
  const [asking, setAsking] = useState<{ key: ApiKey; what: 'revoke' | 'rotate' }>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const [result, setResult] = useState<string>();
  const [usageOf, setUsageOf] = useState<string>();

  const act = async (key: ApiKey, what: 'revoke' | 'rotate') => {
    setBusy(true);
    setError(undefined);
    setResult(undefined);
    try {
      if (what === 'revoke') {
        await api('DELETE', `/api/v1/keys/${encodeURIComponent(key.id)}`);
        setResult(`Revoked ${key.name}: it stopped working.`);
      } else {
        const r = await api<{ secret: string }>('POST', `/api/v1/keys/${encodeURIComponent(key.id)}/rotate`);
        setSecret({ name: key.name, secret: r.secret, why: 'rotated' });
      }
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
      setAsking(undefined);
      keys.reload();
    }
  };

  return (
    <section aria-labelledby="keys-title">
      <h1 id="keys-title">API keys</h1>
      {secret && (
        <div class="notice secret" role="status" data-testid="new-secret-box">
          <p>
            {secret.why === 'created' ? 'Created' : 'Rotated'} <strong>{secret.name}</strong>. Copy its key now: it is
            shown only this once and cannot be read again.
          </p>
          <p>
            <code data-testid="new-secret">{secret.secret}</code>
          </p>
          <div class="row">
            <button
              type="button"
              class="secondary"
              onClick={() => void navigator.clipboard?.writeText(secret.secret).catch(() => {})}
            >
              Copy
            </button>
            <button type="button" class="secondary" onClick={() => setSecret(undefined)}>
              Done, hide it
            </button>
          </div>
        </div>
      )}
      <CreateKey
        onCreated={(name, s) => {
          setSecret({ name, secret: s, why: 'created' });
          keys.reload();
        }}
      />
      <div class="row">
        <h2 id="keys-list-title">Keys</h2>
        <span class="spacer" />
        <label class="inline">
          <input
            type="checkbox"
            checked={all}
            onChange={(e) => setQuery({ all: (e.target as HTMLInputElement).checked ? '1' : undefined })}
          />{' '}
          Show revoked keys
        </label>
      </div>
      {result && (
        <p class="notice" role="status" data-testid="keys-result">
          {result}
        </p>
      )}
      <ErrorBox error={error ?? keys.error} />
      {!keys.data ? (
        !keys.error && <Loading what="keys" />
      ) : (
        <div class="table-wrap" tabIndex={0} role="region" aria-labelledby="keys-list-title">
          <table data-testid="keys">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Role</th>
                <th scope="col">Scope</th>
                <th scope="col">Limits</th>
                <th scope="col">State</th>
                <th scope="col">Last used</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {keys.data.keys.map((k) => (
                <tr key={k.id} data-testid={`key-${k.name}`}>
                  <td>
                    {k.name}
                    <span class="muted small"> ({k.id})</span>
                  </td>
                  <td>{k.role}</td>
                  <td>{scopeText(k.scope)}</td>
                  <td>
                    {Object.keys(k.limits).length === 0
                      ? 'none'
                      : Object.entries(k.limits)
                          .map(([n, v]) => `${n.replace(/_/g, ' ')}: ${v}`)
                          .join('; ')}
                  </td>
                  <td>
                    <span class={`badge key-${k.state}`}>{k.state}</span>
                    {k.expires_at && <span class="muted small"> · expires {time(k.expires_at)}</span>}
                  </td>
                  <td>{k.last_used_at ? time(k.last_used_at) : 'never'}</td>
                  <td class="actions">
                    <button
                      type="button"
                      class="text-button"
                      aria-label={`Use of ${k.name}`}
                      onClick={() => setUsageOf(usageOf === k.id ? undefined : k.id)}
                    >
                      Use
                    </button>
                    {k.state === 'active' && (
                      <>
                        {' · '}
                        <button
                          type="button"
                          class="text-button"
                          aria-label={`Rotate ${k.name}`}
                          onClick={() => setAsking({ key: k, what: 'rotate' })}
                        >
                          Rotate
                        </button>
                        {' · '}
                        <button
                          type="button"
                          class="text-button danger-link"
                          aria-label={`Revoke ${k.name}`}
                          onClick={() => setAsking({ key: k, what: 'revoke' })}
                        >
                          Revoke
                        </button>
                      </>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {usageOf !== undefined && <KeyUsage id={usageOf} onClose={() => setUsageOf(undefined)} />}
      {asking && (
        <ConfirmDialog
          title={asking.what === 'revoke' ? `Revoke ${asking.key.name}?` : `Rotate ${asking.key.name}?`}
          confirmLabel={asking.what === 'revoke' ? `Revoke ${asking.key.name}` : `Rotate ${asking.key.name}`}
          danger={asking.what === 'revoke'}
          busy={busy}
          onConfirm={() => void act(asking.key, asking.what)}
          onCancel={() => setAsking(undefined)}
        >
          <p>
            {asking.what === 'revoke'
              ? 'The key stops working at once, for every client that uses it. This cannot be undone.'
              : 'The key gets a new secret, shown once; the old secret stops working at once, so every client using it needs the new one.'}
          </p>
        </ConfirmDialog>
      )}
    </section>
  );
}

function KeyUsage({ id, onClose }: { id: string; onClose: () => void }) {
  const r = useApi<{ key: ApiKey; usage?: Usage }>(`/api/v1/keys/${encodeURIComponent(id)}`);
  const u = r.data?.usage;
  const of = (used: number, limit?: number) => (limit === undefined ? `${used} (no limit)` : `${used} of ${limit}`);
  return (
    <section class="card" aria-labelledby="usage-title" data-testid="key-usage">
      <div class="row">
        <h2 id="usage-title">Use of {r.data?.key.name ?? id}</h2>
        <span class="spacer" />
        <button type="button" class="secondary" onClick={() => r.reload()}>
          Refresh
        </button>
        <button type="button" class="secondary" onClick={onClose}>
          Close
        </button>
      </div>
      <ErrorBox error={r.error} />
      {!r.data ? (
        !r.error && <Loading what="its use" />
      ) : !u ? (
        <p class="muted">The server keeps no figures of use.</p>
      ) : (
        <dl class="facts">
          <div>
            <dt>Requests in the last minute</dt>
            <dd>{of(u.requests.used, u.requests.limit)}</dd>
          </div>
          <div>
            <dt>Executions running</dt>
            <dd>{of(u.executions.running, u.executions.limit)}</dd>
          </div>
          <div>
            <dt>Tokens this period</dt>
            <dd>
              {of(u.tokens.used, u.tokens.limit)} · resets {time(u.tokens.resets_at)}
            </dd>
          </div>
          <div>
            <dt>Created</dt>
            <dd>
              {time(r.data.key.created_at)}
              {r.data.key.created_by && <> by {r.data.key.created_by}</>}
              {r.data.key.rotated_at && <> · rotated {time(r.data.key.rotated_at)}</>}
            </dd>
          </div>
        </dl>
      )}
    </section>
  );
}

function CreateKey({ onCreated }: { onCreated: (name: string, secret: string) => void }) {
  const [name, setName] = useState('');
  const [role, setRole] = useState<(typeof ROLES)[number]>('viewer');
  const [expires, setExpires] = useState('');
  const [agents, setAgents] = useState('');
  const [limits, setLimits] = useState<Record<string, string>>({});
  const [fields, setFields] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);

  const onSubmit = async (e: Event) => {
    e.preventDefault();
    setFields({});
    setError(undefined);
    // What the console can tell at once, it tells under the field without asking the server.
    const mine: Record<string, string> = {};
    if (name.trim() === '') mine.name = 'Give the key a name (what or who uses it).';
    const lim: Record<string, number> = {};
    for (const l of LIMITS) {
      const v = (limits[l.id] ?? '').trim();
      if (v === '') continue;
      if (!/^\d+$/.test(v) || Number(v) < 1) mine[`limits.${l.id}`] = 'A whole number, at least 1 (empty: no limit).';
      else lim[l.id] = Number(v);
    }
    if (Object.keys(mine).length > 0) return setFields(mine);
    setBusy(true);
    try {
      const r = await api<{ key: ApiKey; secret: string }>('POST', '/api/v1/keys', {
        json: {
          name: name.trim(),
          role,
          ...(expires.trim() !== '' && { expires: expires.trim() }),
          ...(list(agents) && { agents: list(agents) }),
          ...(Object.keys(lim).length > 0 && { limits: lim }),
        },
      });
      onCreated(r.key.name, r.secret);
      setName('');
      setExpires('');
      setAgents('');
      setLimits({});
    } catch (err) {
      const f = fieldErrors(err);
      if (f) {
        // "agents.2" is the agents field.
        const out: Record<string, string> = {};
        for (const [k, v] of Object.entries(f)) out[k.startsWith('agents') ? 'agents' : k] ??= v;
        setFields(out);
      } else setError(err);
    } finally {
      setBusy(false);
    }
  };

  const field = (id: string, label: string, value: string, set: (v: string) => void, hint?: string) => {
    const key = id === 'name' || id === 'expires' || id === 'agents' ? id : `limits.${id}`;
    const describedBy = [hint && `key-${id}-hint`, fields[key] && `key-${id}-error`].filter(Boolean).join(' ');
    return (
      <div class="field">
        <label for={`key-${id}`}>{label}</label>
        <input
          id={`key-${id}`}
          value={value}
          autoComplete="off"
          {...(describedBy && { 'aria-describedby': describedBy })}
          aria-invalid={fields[key] ? true : undefined}
          onInput={(e) => set((e.target as HTMLInputElement).value)}
        />
        {hint && (
          <p id={`key-${id}-hint`} class="muted small">
            {hint}
          </p>
        )}
        {fields[key] && (
          <p id={`key-${id}-error`} class="field-error" role="alert">
            {fields[key]}
          </p>
        )}
      </div>
    );
  };

  return (
    <form class="card key-form" aria-labelledby="create-key-title" onSubmit={(e) => void onSubmit(e)} noValidate>
      <h2 id="create-key-title">Create a key</h2>
      <div class="form-grid">
        {field('name', 'Name', name, setName)}
        <div class="field">
          <label for="key-role">Role</label>
          <select
            id="key-role"
            value={role}
            onChange={(e) => setRole((e.target as HTMLSelectElement).value as (typeof ROLES)[number])}
          >
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {ROLE_WORDS[r]}
              </option>
            ))}
          </select>
        </div>
        {field('expires', 'Expires after', expires, setExpires, 'A duration such as 30d or 12h; empty: never.')}
        {field(
          'agents',
          'Agents it may use',
          agents,
          setAgents,
          'Names or patterns, comma-separated (support-*); empty: all.',
        )}
        {LIMITS.map((l) => (
          <Fragment key={l.id}>
            {field(
              l.id,
              l.label,
              limits[l.id] ?? '',
              (v) => setLimits((x) => ({ ...x, [l.id]: v })),
              'Empty: no limit.',
            )}
          </Fragment>
        ))}
      </div>
      <ErrorBox error={error} />
      <button type="submit" disabled={busy}>
        Create key
      </button>
    </form>
  );
}
